/** `stack ui` masks as the CLI does: known secret values as `••••`; files holding unknown secrets line by line. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../engine/helpers.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import { createMasker } from '../../src/ui/mask.js';

/** A one-service process stack declaring `variables`. */
function normalizeProfileForTest(dir: string, variables: Record<string, unknown>) {
  return mkDeploymentProfile(
    { name: 'm', runtime: 'process', discovery: { backend: 'memory' }, variables, services: { app: { command: ['true'] } } } as never,
    { cwd: dir },
  );
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function folder(): Promise<string> {
  const { dir, cleanup } = await tempDir('stack-ui-mask-');
  cleanups.push(cleanup);
  return dir;
}

describe('createMasker', () => {
  it('masks stored and given secret values in any text, as written and as formats escape them', async () => {
    const dir = await folder();
    const stateDir = path.join(dir, '.stack', 'm');
    await mkdir(stateDir, { recursive: true });
    await writeFile(path.join(stateDir, 'secrets.json'), JSON.stringify({ version: 1, secrets: { token: 'stored-secret-1' } }), { mode: 0o600 });
    const profile = normalizeProfileForTest(dir, {
      token: { type: 'secret', generate: { bytes: 8 } },
      pw: { type: 'secret' },
      name: { type: 'string', default: 'visible' },
    });
    const masker = createMasker(profile, { stateDir, cwd: dir, vars: ['pw=given "quoted" pw'] });
    expect(masker.unknownSecrets).toEqual([]);
    expect(masker.text('a stored-secret-1 b')).toBe('a •••• b');
    expect(masker.text(JSON.stringify({ pw: 'given "quoted" pw' }))).toBe('{"pw":"••••"}');
    expect(masker.text('visible stays')).toBe('visible stays');
    expect(masker.text('postgres://app:s3cr3t-pw@db:5432/app')).toBe('postgres://app:••••@db:5432/app'); // as the CLI masks URLs
    expect(masker.configFile('TOKEN=stored-secret-1\nNAME=visible\n', true)).toBe('TOKEN=••••\nNAME=visible\n');
  });

  it('masks every value of a secret file when a secret value is not known here', async () => {
    const dir = await folder();
    const profile = normalizeProfileForTest(dir, { pw: { type: 'secret' } });
    const masker = createMasker(profile, { stateDir: path.join(dir, '.stack', 'm'), cwd: dir });
    expect(masker.unknownSecrets).toEqual(['pw']);
    expect(masker.configFile('PASSWORD=whatever-it-was\nNAME: db\n\nplain line\n', true)).toBe('PASSWORD=••••\nNAME: ••••\n\n••••\n');
    // A base64 block (a PEM key) is not read as `KEY=value`: no part of its lines shows.
    expect(masker.configFile('key: |\n  MIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4w\n  Ag==\n', true)).toBe('key: ••••\n  ••••\n  ••••\n');
    expect(masker.configFile('NAME=db\n', false)).toBe('NAME=db\n'); // a file written without secrets (not 0600)
  });
});
