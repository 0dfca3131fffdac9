/** `stack render` end to end: the built command, spawned, against the built-in and custom profiles. */
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runStack } from '../helpers/cli.js';
import { tempDir, writeFiles } from './helpers.js';

const CLEAN_ENV = { ATP_DOMAIN: undefined, PDS_HOSTNAME: undefined, PDS_ADMIN_EMAIL: undefined, PLC_PORT: undefined, PDS_PORT: undefined };
const render = (cwd: string, args: string[], env: Record<string, string | undefined> = {}) =>
  runStack(['render', ...args], { cwd, env: { ...CLEAN_ENV, ...env } });

const listFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name)).map((f) => path.join(e.name, f)) : [e.name]))
    .sort();

function secretsOf(cwd: string, stack: string): string[] {
  return Object.values(JSON.parse(readFileSync(path.join(cwd, '.stack', stack, 'secrets.json'), 'utf8')).secrets as Record<string, string>);
}

describe('stack render with the built-in profiles', () => {
  it.each([
    ['simple-pds', ['caddy/Caddyfile', 'pds/pds.env']],
    ['dev-cluster', ['pds/pds.env']],
    [
      'full-node',
      [
        'appview/appview.env',
        'databases/databases.env',
        'dataplane/dataplane.env',
        'ozone/ozone.env',
        'pds/pds.env',
        'plc/plc.env',
        'postgres/postgres.env',
        'service-dids/service-dids.env',
      ],
    ],
    [
      'full-node-docker',
      [
        'appview/appview.env',
        'caddy/Caddyfile',
        'databases/databases.env',
        'dataplane/dataplane.env',
        'ozone/ozone.env',
        'pds/pds.env',
        'plc/plc.env',
        'postgres/postgres.env',
        'service-dids/service-dids.env',
      ],
    ],
  ])('%s renders offline, secrets 0600 and never printed; --check then matches', async (name, expected) => {
    const cwd = tempDir();
    const r = await render(cwd, ['--profile', name, '--out', 'out']);
    expect(r.code, r.stderr).toBe(0);
    expect(listFiles(path.join(cwd, 'out'))).toEqual(expected.map((f) => f.split('/').join(path.sep)));
    const secrets = secretsOf(cwd, name);
    expect(secrets.length).toBeGreaterThan(0);
    expect(statSync(path.join(cwd, '.stack', name, 'secrets.json')).mode & 0o777).toBe(0o600);
    const pdsEnv = readFileSync(path.join(cwd, 'out', 'pds', 'pds.env'), 'utf8');
    expect(statSync(path.join(cwd, 'out', 'pds', 'pds.env')).mode & 0o777).toBe(0o600);
    expect(secrets.some((s) => pdsEnv.includes(s))).toBe(true);
    for (const s of secrets) expect(r.stdout + r.stderr).not.toContain(s);

    const check = await render(cwd, ['--profile', name, '--out', 'out', '--check']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain('up to date');
  });

  it('full-node-docker: the PDS reaches the PLC directory, AppView and Ozone at their planned addresses', async () => {
    const cwd = tempDir();
    const r = await render(cwd, ['--profile', 'full-node-docker', '--out', '-', '--service', 'pds', '--service', 'caddy']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('PDS_DID_PLC_URL=http://127.0.0.1:2582');
    expect(r.stdout).toContain('PDS_BSKY_APP_VIEW_URL=http://localhost:2584');
    expect(r.stdout).toContain('PDS_MOD_SERVICE_URL=http://localhost:2587');
    expect(r.stdout).toContain('PDS_JWT_SECRET=••••');
    expect(r.stdout).toContain('reverse_proxy 127.0.0.1:2583');
    expect(existsSync(path.join(cwd, '.stack'))).toBe(false); // printing writes nothing, not even secrets
  });
});

describe('stack render --check', () => {
  it('exits 1 with a unified diff (secrets masked) for changed, missing, extra and mis-moded files', async () => {
    const cwd = tempDir();
    expect((await render(cwd, ['--profile', 'full-node', '--out', 'out'])).code).toBe(0);
    const out = path.join(cwd, 'out');
    const pdsEnv = path.join(out, 'pds', 'pds.env');
    writeFileSync(
      pdsEnv,
      readFileSync(pdsEnv, 'utf8')
        .replace('PDS_HOSTNAME=localhost', 'PDS_HOSTNAME=example.org')
        .replace(/^PDS_JWT_SECRET=.*$/m, 'PDS_JWT_SECRET=an-old-rotated-secret'),
      { mode: 0o600 },
    );
    rmSync(path.join(out, 'ozone', 'ozone.env'));
    writeFileSync(path.join(out, 'pds', 'stray.conf'), 'left over\n');
    chmodSync(path.join(out, 'plc', 'plc.env'), 0o644);

    const r = await render(cwd, ['--profile', 'full-node', '--out', 'out', '--check']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('--- a/pds/pds.env');
    expect(r.stdout).toContain('+PDS_HOSTNAME=localhost');
    expect(r.stdout).toMatch(/^-PDS_HOSTNAME=/m);
    expect(r.stdout).toContain('missing file: ozone/ozone.env');
    expect(r.stdout).toContain('extra file: pds/stray.conf');
    expect(r.stdout).toContain('mode of plc/plc.env is 0644, expected 0600');
    expect(r.stderr).toContain('4 differences');
    for (const s of [...secretsOf(cwd, 'full-node'), 'an-old-rotated-secret']) expect(r.stdout + r.stderr).not.toContain(s);

    const json = await render(cwd, ['--profile', 'full-node', '--out', 'out', '--check', '--json']);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as { ok: boolean; differences: { status: string; destination: string }[] };
    expect(report.ok).toBe(false);
    expect(report.differences.map((d) => `${d.status} ${d.destination}`).sort()).toEqual([
      'changed pds.env',
      'extra stray.conf',
      'missing ozone.env',
      'mode plc.env',
    ]);
  });

  it('in a checkout without the stored secrets (CI), compares everything but the secret values', async () => {
    const cwd = tempDir();
    expect((await render(cwd, ['--profile', 'full-node', '--out', 'out'])).code).toBe(0);
    rmSync(path.join(cwd, '.stack'), { recursive: true });
    const same = await render(cwd, ['--profile', 'full-node', '--out', 'out', '--check']);
    expect(same.code, same.stdout + same.stderr).toBe(0);
    expect(existsSync(path.join(cwd, '.stack'))).toBe(false); // --check stores nothing

    const dataplane = path.join(cwd, 'out', 'dataplane', 'dataplane.env');
    writeFileSync(dataplane, readFileSync(dataplane, 'utf8').replace('@127.0.0.1:2578/bsky', '@10.0.0.9:2578/bsky'), { mode: 0o600 });
    const changed = await render(cwd, ['--profile', 'full-node', '--out', 'out', '--check']);
    expect(changed.code).toBe(1);
    expect(changed.stdout).toContain('+DATABASE_URL=postgres://pg:••••@127.0.0.1:2578/bsky');
  });

  it('with --service compares only those services’ folders', async () => {
    const cwd = tempDir();
    expect((await render(cwd, ['--profile', 'simple-pds', '--out', 'out'])).code).toBe(0);
    writeFileSync(path.join(cwd, 'out', 'caddy', 'Caddyfile'), 'changed\n');
    expect((await render(cwd, ['--profile', 'simple-pds', '--out', 'out', '--check', '--service', 'pds'])).code).toBe(0);
    expect((await render(cwd, ['--profile', 'simple-pds', '--out', 'out', '--check', '--service', 'caddy'])).code).toBe(1);
  });
});

const CUSTOM = `
name: custom
runtime: process
variables:
  hostname: { type: string, required: true }
  port: { type: number, default: 8080 }
  token: { type: secret, required: true }
services:
  database: { command: [db], port: 5432 }
  api:
    command: [api]
    port: 8080
    dependencies: [database]
    templates:
      - destination: api.env
        template: templates/api.env.hbs
      - destination: api.yaml
        data: { listen: "{{port}}", db: "{{service.database.url}}", token: '{{secret "token"}}' }
`;

describe('stack render with a custom profile', () => {
  it('lists every problem at once, exits 2 and writes nothing', async () => {
    const cwd = tempDir();
    writeFiles(cwd, { 'stack.yaml': CUSTOM, 'templates/api.env.hbs': 'HOST={{hostname}}\nDB={{service.datbase.url}}\nPORT={{prot}}\n' });
    const r = await render(cwd, ['--out', 'out', '--var', 'port=abc']);
    expect(r.code).toBe(2);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
    expect(errors).toEqual([
      "error: --var port=abc: variable 'port' must be a number",
      "error: templates/api.env.hbs:1:8: Required variable 'hostname' is missing: give it in a --vars file or as STACK_VAR_HOSTNAME, or with --var hostname=…",
      "error: templates/api.env.hbs:2:14: Unknown service 'datbase' — did you mean 'database'?",
      "error: templates/api.env.hbs:3:8: Unknown variable 'prot' — did you mean 'port'?",
      expect.stringMatching(
        /^error: stack\.yaml:\d+:\d+ services\.api\.templates\[1\]\.data\.token: Required variable 'token' is missing: give it in a --vars file or as STACK_VAR_TOKEN$/,
      ),
    ]);
    expect(existsSync(path.join(cwd, 'out'))).toBe(false);
    expect(existsSync(path.join(cwd, '.stack'))).toBe(false);
  });

  it('takes --vars, --var and STACK_VAR_ values; --dry-run lists sizes and modes and writes nothing', async () => {
    const cwd = tempDir();
    writeFiles(cwd, {
      'stack.yaml': CUSTOM,
      'templates/api.env.hbs': 'HOST={{hostname}}\nDB={{service.database.url}}\n',
      'vars.yaml': 'hostname: from-file\n',
    });
    const r = await render(cwd, ['--vars', 'vars.yaml', '--var', 'port=9000', '--dry-run'], { STACK_VAR_token: 'tok-from-env-123' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/api\/api\.env {2}\d+ bytes, mode 0644/);
    expect(r.stdout).toMatch(/api\/api\.yaml {2}\d+ bytes, mode 0600, holds secrets/);
    expect(r.stdout).toContain('dry run: nothing written');
    expect(r.stdout + r.stderr).not.toContain('tok-from-env-123');
    expect(existsSync(path.join(cwd, '.stack'))).toBe(false);

    const dump = await render(cwd, ['--vars', 'vars.yaml', '--var', 'port=9000', '--out', '-', '--json'], { STACK_VAR_token: 'tok-from-env-123' });
    const files = (JSON.parse(dump.stdout) as { files: { destination: string; content: string; mode: string }[] }).files;
    expect(files.find((f) => f.destination === 'api.env')?.content).toBe('HOST=from-file\nDB=http://127.0.0.1:5432\n');
    expect(files.find((f) => f.destination === 'api.yaml')?.content).toBe('listen: 9000\ndb: http://127.0.0.1:5432\ntoken: ••••\n');
  });

  it('renders against a discovery snapshot instead of planned addresses', async () => {
    const cwd = tempDir();
    writeFiles(cwd, {
      'stack.yaml': CUSTOM,
      'templates/api.env.hbs': 'HOST={{hostname}}\nDB={{service.database.url}}\n',
      'snapshot.yaml': '- { service: database, address: 10.1.2.3, port: 6432 }\n- { service: api, address: 10.1.2.4, port: 80 }\n',
    });
    const r = await render(cwd, [
      '--discovery-snapshot',
      'snapshot.yaml',
      '--var',
      'hostname=h',
      '--var',
      'token=tok-123456',
      '--out',
      '-',
      '--service',
      'api',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('DB=http://10.1.2.3:6432');

    writeFiles(cwd, { 'bad.yaml': '- { address: 10.1.2.3 }\n' });
    const bad = await render(cwd, ['--discovery-snapshot', 'bad.yaml', '--var', 'hostname=h', '--var', 'token=tok-123456', '--out', '-']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bad.yaml:1:3 [0]: a service record needs `service`');
  });

  it('writes to .stack/<stack>/config by default', async () => {
    const cwd = tempDir();
    writeFiles(cwd, { 'stack.yaml': CUSTOM, 'templates/api.env.hbs': 'HOST={{hostname}}\n' });
    const r = await render(cwd, ['--var', 'hostname=h', '--var', 'token=tok-123456']);
    expect(r.code, r.stderr).toBe(0);
    expect(listFiles(path.join(cwd, '.stack', 'custom', 'config'))).toEqual([path.join('api', 'api.env'), path.join('api', 'api.yaml')]);
  });
});
