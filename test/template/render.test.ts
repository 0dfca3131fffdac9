/** Rendering a stack's configs: parse-back, secrets, modes, atomic writes, addresses, the engine's entry point. */
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatProblem, InvalidInputError } from '../../src/errors.js';
import type { ServiceInstance } from '../../src/discovery/types.js';
import { buildTemplateContext } from '../../src/template/context.js';
import { renderServiceConfigs, renderStackConfigs } from '../../src/template/render.js';
import { MASK, readSecrets, saveSecrets } from '../../src/template/secrets.js';
import { writeRenderedConfigs } from '../../src/template/write.js';
import { profileIn, tempDir } from './helpers.js';

const instance = (service: string, address: string, port: number, extra: Partial<ServiceInstance> = {}): ServiceInstance => ({
  id: `${service}-1`,
  service,
  address,
  port,
  tags: [],
  meta: {},
  registeredAt: '2026-01-01T00:00:00.000Z',
  ...extra,
});

const APP = `
name: app
runtime: process
variables:
  hostname: { type: string, default: example.org }
  apiKey: { type: secret, generate: { bytes: 8, encoding: hex } }
services:
  db: { command: [db], port: 5432, address: 10.0.0.5, tags: [database], meta: { zone: a } }
  web:
    command: [web]
    port: 8080
    dependencies: [db]
    templates:
      - destination: web.env
        env: true
        data: { DB_URL: "{{service.db.url}}", HOST: "{{hostname}}", KEY: '{{secret "apiKey"}}' }
      - destination: web.json
        data: { port: "{{service.web.port}}", debug: false, db: { host: "{{service.db.host}}", tags: "{{join service.db.tags \\",\\"}}" } }
      - destination: conf/plain.txt
        template: "db={{service.db.address}}:{{service.db.port}} zone={{service.db.meta.zone}}\\n"
`;

describe('service addresses', () => {
  it('uses each service’s planned address without discovery records', () => {
    const { dir, profile } = profileIn(APP);
    const { files, problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: { apiKey: 'key-123456' } });
    expect(problems).toEqual([]);
    const byName = Object.fromEntries(files.map((f) => [f.destination, f]));
    expect(byName['web.env']?.env).toEqual({ DB_URL: 'http://10.0.0.5:5432', HOST: 'example.org', KEY: 'key-123456' });
    // A leaf that is exactly one `{{path}}` keeps a number typed.
    expect(JSON.parse(byName['web.json']!.content)).toEqual({ port: 8080, debug: false, db: { host: '10.0.0.5', tags: 'database' } });
    expect(byName['conf/plain.txt']?.content).toBe('db=10.0.0.5:5432 zone=a\n');
  });

  it('uses discovery records when given (a snapshot), and reports services they lack', () => {
    const { dir, profile } = profileIn(APP);
    const instances = [
      instance('db', '192.168.1.9', 6543, { url: 'postgres://192.168.1.9:6543', meta: { zone: 'b' } }),
      instance('db', '192.168.1.10', 6543, { id: 'db-2' }),
    ];
    // A service not registered yet (it is about to start) sees itself at its planned address.
    const early = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: { apiKey: 'key-123456' }, instances });
    expect(early.problems).toEqual([]);
    expect(JSON.parse(early.files.find((f) => f.destination === 'web.json')!.content).port).toBe(8080);
    // A dependency without a record is absent.
    const { problems } = renderStackConfigs(profile, {
      cwd: dir,
      env: {},
      secrets: { apiKey: 'key-123456' },
      instances: [instance('web', '192.168.1.20', 80)],
    });
    expect(problems.map((p) => p.message)).toEqual(
      expect.arrayContaining(["Service 'db' is absent (no instance in discovery): guard its use with {{#if service.db}}"]),
    );

    const all = [...instances, instance('web', '192.168.1.20', 80)];
    const { files } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: { apiKey: 'key-123456' }, instances: all });
    const byName = Object.fromEntries(files.map((f) => [f.destination, f]));
    expect(byName['web.env']?.env?.DB_URL).toBe('postgres://192.168.1.9:6543');
    expect(JSON.parse(byName['web.json']!.content).port).toBe(80);
    expect(byName['conf/plain.txt']?.content).toBe('db=192.168.1.9:6543 zone=b\n');
    const ctx = buildTemplateContext(profile, { env: {}, secrets: {}, instances: all, cwd: dir });
    expect((ctx.root.service as Record<string, { instances: unknown[] } | undefined>).db!.instances).toHaveLength(2);
  });
});

describe('free-text templates are parsed back as their format', () => {
  const stack = (format: string) => `
name: fx
runtime: process
variables:
  value: { type: string, default: "x" }
  token: { type: secret, default: "s3cr3t-t0ken" }
services:
  app:
    command: [app]
    templates:
      - destination: out
        format: ${format}
        template: templates/out.hbs
`;
  it.each([
    ['json', '{ "a": {{value}} }\n', /not valid JSON/],
    ['yaml', 'a: 1\n  b: [\n', /not valid YAML/],
    ['toml', 'a = 1\n[b\n', /not valid TOML/],
    ['env', 'A=1\nNOT A PAIR\n', /not valid ENV at output line 2 `NOT A PAIR`/],
    ['ini', 'a=1\n[broken\n', /not valid INI at output line 2/],
  ])('%s output that does not parse is a problem naming the template and the line', (format, template, message) => {
    const { dir, profile } = profileIn(stack(format), { 'templates/out.hbs': template });
    const { files, problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: {} });
    expect(files).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ code: 'invalid_output', file: 'templates/out.hbs' });
    expect(problems[0]!.message).toMatch(message);
  });

  it('catches a value that injects a second key into a free-text ENV file', () => {
    const { dir, profile } = profileIn(stack('env'), { 'templates/out.hbs': 'A={{value}}\nB=2\n' });
    const { problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: {}, vars: { value: 'x\nB=evil' } });
    expect(problems.map((p) => p.message)).toEqual(['rendered output is not valid ENV at output line 3 `B=2`: B is set twice']);
  });

  it.each([
    ['env', 'A={{value}}\nB=2\n', 'x\nINJECTED=1', "adds 'INJECTED'"],
    ['ini', '[main]\nname={{value}}\n', 'x\n[admin]\npassword=1', "adds 'admin', 'admin.password'"],
    ['yaml', 'a: {{value}}\nb: 2\n', 'x\nc: 3', "adds 'c'"],
    ['toml', 'a = "{{value}}"\n', 'x"\nb = "y', "adds 'b'"],
    ['json', '{ "a": "{{value}}" }\n', 'x", "admin": "true', "adds 'admin'"],
  ])('%s: a value that adds a key to free text is caught, though the output parses', (format, template, value, message) => {
    const { dir, profile } = profileIn(stack(format), { 'templates/out.hbs': template });
    const { files, problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: {}, vars: { value } });
    expect(files).toEqual([]);
    expect(problems.map((p) => p.code)).toEqual(['value_changes_structure']);
    expect(problems[0]!.message).toContain(message);
  });

  it('accepts values with structural characters that stay inside their value, and keys from #each', () => {
    const { dir, profile } = profileIn(stack('env'), { 'templates/out.hbs': 'URL="{{value}}"\n{{#each service.app.instances}}I_{{@index}}=1\n{{/each}}' });
    const { problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: {}, vars: { value: 'postgres://u@h/db?sslmode=require&x=#1' } });
    expect(problems).toEqual([]);
  });

  it('masks secrets in the rendered line it quotes', () => {
    const { dir, profile } = profileIn(stack('json'), { 'templates/out.hbs': '{ "token": {{secret "token"}} }\n' });
    const { problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: {} });
    expect(problems).toHaveLength(1);
    expect(formatProblem(problems[0]!)).not.toContain('s3cr3t-t0ken');
    expect(problems[0]!.message).toContain(MASK);
    expect(problems[0]!.message).toBe(`rendered output is not valid JSON at output line 1 \`{ "token": ${MASK} }\`: unexpected character`);
  });

  it('points at the line and column where JSON output breaks', async () => {
    const { CODECS } = await import('../../src/formats/index.js');
    const at = (t: string) => {
      try {
        CODECS.json.parse(t);
        return undefined;
      } catch (e) {
        const err = e as { line?: number; column?: number; message: string };
        return [err.line, err.column, err.message];
      }
    };
    expect(at('{"a": 1,\n "b": }')).toEqual([2, 7, 'unexpected character']);
    expect(at('{"a": "x" "b": 1}')).toEqual([1, 11, 'unexpected character']);
    expect(at('[1, 2,, 3]')).toEqual([1, 7, 'unexpected character']);
    expect(at('{"a": 1')).toEqual([1, 8, 'unexpected end of input']);
    expect(at('12x')).toEqual([1, 3, 'unexpected character']);
  });

  it('does not check `text`', () => {
    const { dir, profile } = profileIn(stack('text'), { 'templates/out.hbs': 'not json [[ {\n' });
    expect(renderStackConfigs(profile, { cwd: dir, env: {}, secrets: {} }).problems).toEqual([]);
  });
});

describe('secrets', () => {
  it('generates a secret once, keeps it 0600 in secrets.json, and reuses it', async () => {
    const { dir, profile } = profileIn(APP);
    const stateDir = path.join(dir, 'state');
    const first = renderStackConfigs(profile, { cwd: dir, env: {}, stateDir });
    const key = first.context.generatedSecrets.apiKey;
    expect(key).toMatch(/^[0-9a-f]{16}$/);
    await saveSecrets(stateDir, { ...first.context.generatedSecrets });
    expect(statSync(path.join(stateDir, 'secrets.json')).mode & 0o777).toBe(0o600);
    expect(readSecrets(stateDir)).toEqual({ apiKey: key });

    const second = renderStackConfigs(profile, { cwd: dir, env: {}, stateDir });
    expect(second.context.generatedSecrets).toEqual({});
    expect(second.files.find((f) => f.destination === 'web.env')?.env?.KEY).toBe(key);
  });

  it('marks files that use a secret 0600 and masks the secret in their printable form', async () => {
    const { dir, profile } = profileIn(APP);
    const { files } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: { apiKey: 'topsecretvalue' } });
    const env = files.find((f) => f.destination === 'web.env')!;
    expect(env).toMatchObject({ secret: true, mode: 0o600 });
    expect(env.content).toContain('KEY=topsecretvalue');
    expect(env.masked).toContain(`KEY=${MASK}`);
    expect(env.masked).not.toContain('topsecretvalue');
    const json = files.find((f) => f.destination === 'web.json')!;
    expect(json).toMatchObject({ secret: false, mode: 0o644 });

    const out = tempDir();
    await writeRenderedConfigs(files, out);
    expect(statSync(path.join(out, 'web/web.env')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(out, 'web/web.json')).mode & 0o777).toBe(0o644);
  });

  it('never shows a secret in a type error, wherever it came from', () => {
    const { dir, profile } = profileIn(
      'name: s\nruntime: process\nvariables:\n  pw: { type: secret }\n  n: { type: number }\nservices:\n  a: { command: [a] }\n',
    );
    const ctx = buildTemplateContext(profile, { cwd: dir, secrets: {}, env: { STACK_VAR_PW: 'hunter2hunter2', STACK_VAR_N: 'hunter2hunter2' } });
    expect(ctx.problems.map(formatProblem)).toEqual(["STACK_VAR_N=hunter2hunter2: variable 'n' must be a number"]);
    expect(ctx.redact('x hunter2hunter2 y')).toBe(`x ${MASK} y`);
  });

  it('masks secrets in errors raised while rendering', () => {
    const { dir, profile } = profileIn(
      'name: s\nruntime: process\nvariables:\n  pw: { type: secret, default: "pa55word-xyz" }\nservices:\n  a:\n    command: [a]\n    templates:\n      - { destination: a.json, template: "{\\"p\\": \\"{{secret \\"pw\\"}}\\" \\n" }\n',
    );
    const { problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: {} });
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.map(formatProblem).join('\n')).not.toContain('pa55word-xyz');
  });
});

describe('writing', () => {
  it('writes atomically: no temp files are left, and a failed run writes nothing', async () => {
    const { dir, profile } = profileIn(APP);
    const { files } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: { apiKey: 'key-123456' } });
    const out = tempDir();
    const written = await writeRenderedConfigs(files, out);
    expect(written.map((w) => path.relative(out, w.path)).sort()).toEqual(['web/conf/plain.txt', 'web/web.env', 'web/web.json']);
    const all = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? all(path.join(d, e.name)) : [e.name]));
    expect(all(out).filter((n) => n.endsWith('.tmp') || n.startsWith('.'))).toEqual([]);
    // Rewriting replaces the file in place.
    await writeRenderedConfigs(files, out);
    expect(all(out).sort()).toEqual(['plain.txt', 'web.env', 'web.json']);
  });

  it('refuses a destination outside the output folder', async () => {
    await expect(
      writeRenderedConfigs([{ service: 'a', destination: '../../etc/x', format: 'text', content: '', masked: '', mode: 0o644, secret: false }], tempDir()),
    ).rejects.toThrow(/outside/);
  });
});

describe('renderServiceConfigs (the engine’s entry point)', () => {
  it('writes one service’s files under its config folder and returns their environment', async () => {
    const { dir, profile } = profileIn(APP);
    const stateDir = path.join(dir, 'state');
    const context = buildTemplateContext(profile, { cwd: dir, env: {}, stateDir });
    const configDir = path.join(dir, 'config', 'web');
    const { files, environment } = await renderServiceConfigs(profile, 'web', context, configDir);
    expect(files.map((f) => [f.destination, f.mode])).toEqual([
      ['web.env', 0o600],
      ['web.json', 0o644],
      ['conf/plain.txt', 0o644],
    ]);
    expect(files.every((f) => path.isAbsolute(f.hostPath) && f.hostPath.startsWith(configDir))).toBe(true);
    expect(environment).toEqual({ DB_URL: 'http://10.0.0.5:5432', HOST: 'example.org', KEY: context.generatedSecrets.apiKey });
    // The generated secret was kept, so the next run renders the same value.
    expect(readSecrets(stateDir)).toEqual({ apiKey: context.generatedSecrets.apiKey });
  });

  it('renders against live instances: dependencies from discovery, the starting service at its planned address', async () => {
    const { dir, profile } = profileIn(APP);
    const context = buildTemplateContext(profile, {
      cwd: dir,
      env: {},
      secrets: { apiKey: 'key-123456' },
      instances: [instance('db', '10.9.9.9', 15432, { meta: { zone: 'c' } })],
    });
    const { environment, files } = await renderServiceConfigs(profile, 'web', context, path.join(dir, 'config', 'web'));
    expect(environment.DB_URL).toBe('http://10.9.9.9:15432');
    expect(JSON.parse(readFileSync(files.find((f) => f.destination === 'web.json')!.hostPath, 'utf8')).port).toBe(8080);
  });

  it('refuses a symlinked folder anywhere below the state folder (a planted config/web -> elsewhere gets no secret)', async () => {
    const { dir, profile } = profileIn(APP);
    const stateDir = path.join(dir, 'state');
    const elsewhere = path.join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    mkdirSync(path.join(stateDir, 'config'), { recursive: true });
    symlinkSync(elsewhere, path.join(stateDir, 'config', 'web'));
    const context = buildTemplateContext(profile, { cwd: dir, env: {}, stateDir });
    const err = await renderServiceConfigs(profile, 'web', context, path.join(stateDir, 'config', 'web')).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('symlink_refused');
    expect(readdirSync(elsewhere)).toEqual([]);
    // `render --out DIR` too: a symlinked service folder under DIR is refused.
    const out = path.join(dir, 'out');
    mkdirSync(out);
    symlinkSync(elsewhere, path.join(out, 'a'));
    await expect(
      writeRenderedConfigs([{ service: 'a', destination: 'x.env', format: 'env', content: 'A=1\n', masked: '', mode: 0o600, secret: true }], out),
    ).rejects.toMatchObject({ code: 'symlink_refused' });
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it('throws InvalidInputError listing every problem and writes nothing', async () => {
    const { dir, profile } = profileIn(APP.replace('{{hostname}}', '{{hostnam}}').replace('{{service.db.host}}', '{{service.dbb.host}}'));
    const context = buildTemplateContext(profile, { cwd: dir, env: {}, secrets: { apiKey: 'key-123456' } });
    const configDir = path.join(dir, 'config', 'web');
    const err = await renderServiceConfigs(profile, 'web', context, configDir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).problems.map((p) => p.code)).toEqual(['unknown_variable', 'unknown_service']);
    expect(() => readdirSync(configDir)).toThrow();
  });
});

describe('variables', () => {
  const VARS =
    'name: v\nruntime: process\nvariables:\n  port: { type: number, default: 1 }\n  flag: { type: boolean, default: false }\n  site: { type: url, default: "https://a.example" }\n  pdsHost: { type: string }\nservices:\n  a: { command: [a] }\n';

  it('take defaults < STACK_VAR_ environment < --vars file < --var', async () => {
    const { flagSource, varsFileSource } = await import('../../src/template/variables.js');
    const { dir, profile } = profileIn(VARS, { 'vars.yaml': 'port: 3\nflag: true\n' });
    const problems: never[] = [];
    const ctx = buildTemplateContext(profile, {
      cwd: dir,
      secrets: {},
      env: { STACK_VAR_port: '2', STACK_VAR_PDS_HOST: 'from-env', STACK_VAR_site: 'https://env.example' },
      vars: [varsFileSource('vars.yaml', dir, problems), flagSource(['port=4'], problems, new Set())],
    });
    expect(ctx.problems).toEqual([]);
    expect(ctx.root).toMatchObject({ port: 4, flag: true, site: 'https://env.example', pdsHost: 'from-env' });
  });

  it('report type errors with where the value came from', async () => {
    const { flagSource, varsFileSource } = await import('../../src/template/variables.js');
    const { dir, profile } = profileIn(VARS, { 'vars.yaml': 'flag: maybe\n' });
    const problems: never[] = [];
    const ctx = buildTemplateContext(profile, {
      cwd: dir,
      secrets: {},
      env: { STACK_VAR_site: 'not a url' },
      vars: [varsFileSource('vars.yaml', dir, problems), flagSource(['port=abc', 'prot=1'], problems, new Set())],
    });
    expect(ctx.problems.map(formatProblem)).toEqual([
      "--var prot=…: the profile declares no variable 'prot' — did you mean 'port'?",
      "--var port=abc: variable 'port' must be a number",
      "vars.yaml:1:7 flag: --vars vars.yaml: variable 'flag' must be a boolean (true or false)",
      "STACK_VAR_site=not a url: variable 'site' must be a URL (scheme://host…)",
    ]);
  });

  it('a type error is reported once, not again as a missing value where the template uses it', () => {
    const { dir, profile } = profileIn(
      VARS.replace('  a: { command: [a] }', '  a:\n    command: [a]\n    templates: [{ destination: a.txt, template: "{{port}}\\n" }]'),
    );
    const { problems } = renderStackConfigs(profile, { cwd: dir, secrets: {}, env: {}, vars: { port: 'abc' } });
    expect(problems.map((p) => p.message)).toEqual(["library: variable 'port' must be a number"]);
  });
});
