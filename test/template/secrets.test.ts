/**
 * No secret value in any output, whatever the format makes of it: a multi-line secret (a PEM key)
 * as a YAML block scalar, JSON- or TOML-escaped, ENV-quoted; environment values whose names look
 * secret (`{{env.API_TOKEN}}`); passwords inside URLs. Printed by `render --out -`, `--json`,
 * `--check` diffs and error messages — and a file holding one is 0600.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/errors.js';
import type { TemplateFormat } from '../../src/profile/types.js';
import { renderStackConfigs } from '../../src/template/render.js';
import { createRedactor, MASK } from '../../src/util/redact.js';
import { runStack } from '../helpers/cli.js';
import { profileIn, tempDir, writeFiles } from './helpers.js';

/** A PEM-shaped secret: 64-character lines and a short last one (not a real key). */
const PEM = [
  '-----BEGIN PRIVATE KEY-----',
  'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj',
  'MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu',
  'NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ',
  'Zg==',
  '-----END PRIVATE KEY-----',
].join('\n');
const BODY_LINES = PEM.split('\n').filter((l) => !l.startsWith('-----'));

const expectNoPem = (text: string) => {
  for (const line of BODY_LINES) expect(text).not.toContain(line);
  // Nor any 12-character piece of it, as JSON- or URL-escaping would leave.
  for (const line of BODY_LINES.slice(0, 3)) for (let i = 0; i + 12 <= line.length; i += 12) expect(text).not.toContain(line.slice(i, i + 12));
};

/** A profile whose one service `web` renders the given template entries (YAML lines) with the secret `tlsKey`. */
const PEM_PROFILE_WITH = (templates: string) => `name: pem
runtime: process
variables:
  tlsKey: { type: secret }
services:
  web:
    command: [web]
    templates:
${templates}`;

const PEM_PROFILE = (format: TemplateFormat, extra = '') =>
  PEM_PROFILE_WITH(`      - destination: out.${format}
        format: ${format}
        data: { name: web, key: '{{secret "tlsKey"}}'${format === 'ini' || format === 'env' ? '' : ', list: ["{{secret \\"tlsKey\\"}}"]'} }
${extra}`);

describe('a multi-line secret, in every format', () => {
  it.each(['yaml', 'json', 'toml', 'ini', 'env'] as const)('%s: the printable form holds no line of it; the file is 0600', (format) => {
    const { dir, profile } = profileIn(PEM_PROFILE(format));
    const { files, problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: { tlsKey: PEM } });
    expect(problems).toEqual([]);
    const file = files[0]!;
    expect(file).toMatchObject({ secret: true, mode: 0o600 });
    expect(file.content).toContain(BODY_LINES[0]); // the real file has the key
    expectNoPem(file.masked);
    expect(file.masked).toContain(MASK);
  });

  it('the printable form is masked at the data level: even a value too short to search for is masked', () => {
    const { dir, profile } = profileIn(PEM_PROFILE('yaml'));
    const { files } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: { tlsKey: 'q7\nZ9' } });
    expect(files[0]!.content).toContain('q7\n');
    expect(files[0]!.masked).toBe(`name: web\nkey: ${MASK}\nlist:\n  - ${MASK}\n`);
  });

  it('an error message quoting a line of rendered output is masked too', () => {
    const { dir, profile } = profileIn(
      PEM_PROFILE_WITH(`      - { destination: out.yaml, format: yaml, template: "key: {{secret \\"tlsKey\\"}}\\n" }
`),
    );
    const { problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: { tlsKey: PEM } });
    expect(problems.length).toBeGreaterThan(0);
    expectNoPem(problems.map(formatProblem).join('\n'));
  });

  it('the redactor masks every spelling: raw, lines, JSON, YAML double-quoted (trailing-space escapes), URL-encoded', () => {
    const value = 'pass word "quoted" \\ end  \nsecond line here';
    const redact = createRedactor([value]);
    for (const spelled of [value, JSON.stringify(value), encodeURIComponent(value), '"pass word \\"quoted\\" \\\\ end \\ \\nsecond line here"']) {
      expect(redact(`before ${spelled} after`)).not.toMatch(/pass word|second line here/);
    }
  });
});

describe('secret-looking environment values and URL passwords', () => {
  const PROFILE = `name: envs
runtime: process
variables:
  dbUrl: { type: url, default: "postgres://app:db-pa55word-1@127.0.0.1:5432/app" }
services:
  api:
    command: [api]
    templates:
      - { destination: api.env, format: env, data: { TOKEN: "{{env.API_TOKEN}}", HOST: "{{env.HOST_NAME}}" } }
      - { destination: db.yaml, format: yaml, data: { database: "{{dbUrl}}", other: "{{env.DATABASE_URL}}" } }
      - { destination: plain.env, format: env, data: { HOST: "{{env.HOST_NAME}}" } }
`;
  const ENV = { API_TOKEN: 'tok-abcdef-123456', HOST_NAME: 'example.test', DATABASE_URL: 'postgres://u:env-pa55word-2@db/x' };
  const LEAKS = ['tok-abcdef-123456', 'db-pa55word-1', 'env-pa55word-2'];

  it('a file holding {{env.API_TOKEN}} or a URL password is 0600 and its printable form is masked', () => {
    const { dir, profile } = profileIn(PROFILE);
    const { files, problems } = renderStackConfigs(profile, { cwd: dir, env: ENV, secrets: {} });
    expect(problems).toEqual([]);
    const byName = Object.fromEntries(files.map((f) => [f.destination, f]));
    expect(byName['api.env']).toMatchObject({ secret: true, mode: 0o600 });
    expect(byName['db.yaml']).toMatchObject({ secret: true, mode: 0o600 });
    expect(byName['plain.env']).toMatchObject({ secret: false, mode: 0o644 });
    expect(byName['api.env']!.content).toContain('tok-abcdef-123456');
    for (const f of files) for (const leak of LEAKS) expect(f.masked).not.toContain(leak);
    expect(byName['db.yaml']!.masked).toContain(`postgres://app:${MASK}@127.0.0.1:5432/app`);
  });

  it('`stack render` prints none of them: --out -, --json, --check diffs', async () => {
    const cwd = tempDir();
    writeFiles(cwd, { 'stack.yaml': PROFILE });
    const shown = await runStack(['render', '--out', '-'], { cwd, env: ENV });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`TOKEN=${MASK}`);
    const json = await runStack(['render', '--out', '-', '--json'], { cwd, env: ENV });
    expect(json.code, json.stderr).toBe(0);
    expect(() => JSON.parse(json.stdout)).not.toThrow();
    const written = await runStack(['render', '--out', 'out'], { cwd, env: ENV });
    expect(written.code, written.stderr).toBe(0);
    expect(statSync(path.join(cwd, 'out/api/api.env')).mode & 0o777).toBe(0o600);
    // An edited file: the diff must show neither the old nor the new values.
    const file = path.join(cwd, 'out/api/api.env');
    writeFileSync(file, readFileSync(file, 'utf8').replace('HOST=example.test', 'HOST=changed.test'), { mode: 0o600 });
    const check = await runStack(['render', '--out', 'out', '--check'], { cwd, env: ENV });
    expect(check.code).toBe(1);
    expect(check.stdout).toContain('+HOST=example.test');
    for (const r of [shown, json, written, check]) for (const leak of LEAKS) expect(r.stdout + r.stderr).not.toContain(leak);
  });

  it('`stack render` with a PEM secret: no line of it in --out -, --json or a --check diff', async () => {
    const cwd = tempDir();
    writeFiles(cwd, { 'stack.yaml': PEM_PROFILE('yaml'), 'vars.yaml': `tlsKey: ${JSON.stringify(PEM)}\n` });
    const shown = await runStack(['render', '--vars', 'vars.yaml', '--out', '-'], { cwd });
    expect(shown.code, shown.stderr).toBe(0);
    const json = await runStack(['render', '--vars', 'vars.yaml', '--out', '-', '--json'], { cwd });
    expect(json.code, json.stderr).toBe(0);
    expect(await runStack(['render', '--vars', 'vars.yaml', '--out', 'out'], { cwd })).toMatchObject({ code: 0 });
    const file = path.join(cwd, 'out/web/out.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('name: web', 'name: old'), { mode: 0o600 });
    const check = await runStack(['render', '--vars', 'vars.yaml', '--out', 'out', '--check'], { cwd });
    expect(check.code).toBe(1);
    expect(check.stdout).toContain('+name: web');
    for (const r of [shown, json, check]) expectNoPem(r.stdout + r.stderr);

    // A file holding an older key nobody here knows (rotated): no line of it in the diff either.
    const OLD = ['MIIBoldoldoldoldKEYline0123456789abcdefABCDEF0123456789abcdef0==', 'c2Vjb25kIGxpbmUgb2YgdGhlIG9sZCBrZXk=', 'QQ=='];
    const current = readFileSync(file, 'utf8');
    writeFileSync(file, current.replace(BODY_LINES[0]!, OLD[0]!).replace(BODY_LINES[1]!, OLD[1]!).replace(BODY_LINES[3]!, OLD[2]!), { mode: 0o600 });
    const rotated = await runStack(['render', '--vars', 'vars.yaml', '--out', 'out', '--check'], { cwd });
    expect(rotated.code).toBe(1);
    expectNoPem(rotated.stdout + rotated.stderr);
    for (const line of OLD) expect(rotated.stdout).not.toContain(line.slice(0, 8));
  });
});
