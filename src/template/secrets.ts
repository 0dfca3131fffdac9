/**
 * Secret variables: generated once, kept in `<stateDir>/secrets.json` (mode 0600, atomic write) so
 * every later run renders the same values, and masked as `••••` wherever text could be printed.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../errors.js';
import type { VariableSpec } from '../profile/types.js';
import { atomicWrite } from '../util/fs.js';
import { BASIC_SPELLERS, createRedactor as createTextRedactor, type Redactor } from '../util/redact.js';
import { FORMAT_SPELLERS } from '../formats/spell.js';

export { MASK, MIN_MASKABLE } from '../util/redact.js';
export const SECRETS_FILE = 'secrets.json';

/** `.stack/<stack>` under the working directory unless the profile names one. */
export { stateDirOf } from '../profile/paths.js';

export function generateSecret(spec: NonNullable<VariableSpec['generate']>): string {
  return randomBytes(spec.bytes).toString(spec.encoding);
}

/** Stored secret values, by variable name; none when the file does not exist yet. */
export function readSecrets(stateDir: string): Record<string, string> {
  const file = path.join(stateDir, SECRETS_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const secrets = (parsed as { secrets?: unknown } | undefined)?.secrets;
  if (!secrets || typeof secrets !== 'object' || Array.isArray(secrets) || !Object.values(secrets).every((v) => typeof v === 'string')) {
    // Never quote the file: it holds secrets.
    throw new InvalidInputError([
      { code: 'invalid_secrets_file', file, message: 'not a secrets file written by stack ({"version":1,"secrets":{…}}); fix or remove it' },
    ]);
  }
  return { ...(secrets as Record<string, string>) };
}

/** Add values to the stored secrets (mode 0600, atomic). */
export async function saveSecrets(stateDir: string, values: Record<string, string>): Promise<void> {
  if (Object.keys(values).length === 0) return;
  const merged = { ...readSecrets(stateDir), ...values };
  await atomicWrite(path.join(stateDir, SECRETS_FILE), `${JSON.stringify({ version: 1, secrets: merged }, null, 2)}\n`, 0o600);
}

/**
 * A function masking every secret value in a text: the value as written, and as each output format
 * spells it (src/formats/spell.ts), longest first; see src/util/redact.ts.
 */
export function createRedactor(values: Iterable<string>): Redactor {
  return createTextRedactor(values, [...BASIC_SPELLERS, ...FORMAT_SPELLERS]);
}
