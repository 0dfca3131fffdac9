/**
 * Built-in profiles compiled to JSON at build time (scripts/gen-schema.mjs writes
 * dist/profiles/<name>.json with the SHA-256 of the YAML it came from). Parsing YAML cold costs
 * more than everything else `stack validate` does; a stale or missing compiled copy is ignored.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from './builtin.js';

export const PRECOMPILED_DIR = path.join(PACKAGE_ROOT, 'dist', 'profiles');

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function precompiledValue(name: string, text: string): unknown {
  try {
    const compiled = JSON.parse(readFileSync(path.join(PRECOMPILED_DIR, `${name}.json`), 'utf8')) as { sha256: string; value: unknown };
    return compiled.sha256 === sha256(text) ? compiled.value : undefined;
  } catch {
    return undefined;
  }
}
