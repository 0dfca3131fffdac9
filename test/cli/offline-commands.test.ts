import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { runStack } from '../helpers/cli.js';
import { PROD_CLUSTER_ENV } from '../helpers/prod-cluster.js';
import { tmpFiles } from '../helpers/tmp.js';

describe('stack (offline commands)', () => {
  it('--help lists every command; each command has --help', async () => {
    const help = await runStack(['--help']);
    expect(help.code).toBe(0);
    for (const cmd of ['up', 'down', 'status', 'logs', 'validate', 'plan', 'graph', 'render', 'discovery', 'profiles']) expect(help.stdout).toContain(cmd);
    const planHelp = await runStack(['plan', '--help']);
    expect(planHelp.code).toBe(0);
    expect(planHelp.stdout).toContain('--profile');
  });

  it('an unknown flag is invalid input: exit 2', async () => {
    const r = await runStack(['validate', '--nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--nope'");
  });

  it('profiles lists the built-ins with descriptions; show prints one merged, secrets masked', async () => {
    const list = await runStack(['profiles', '--json']);
    expect(JSON.parse(list.stdout).map((p: { name: string }) => p.name)).toEqual([
      'dev-cluster',
      'full-node',
      'full-node-docker',
      'prod-cluster',
      'prod-cluster-swarm',
      'simple-pds',
    ]);
    const show = await runStack(['profiles', 'show', 'prod-cluster', '--json'], { env: PROD_CLUSTER_ENV });
    expect(show.code).toBe(0);
    const p = JSON.parse(show.stdout);
    expect(p.discovery.backends).toEqual(['consul']);
    expect(p.services.pds.image).toBe('node:20.20.0-bookworm-slim');
  });

  it('validate: exit 0 for every built-in profile', async () => {
    for (const name of ['simple-pds', 'full-node', 'full-node-docker', 'dev-cluster', 'prod-cluster', 'prod-cluster-swarm']) {
      const r = await runStack(['validate', '--profile', name], { env: name === 'prod-cluster' ? PROD_CLUSTER_ENV : {} }); // its hosts' addresses
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`profile '${name}' is valid`);
    }
  });

  it('validate: every problem with file:line:column, exit 2, nothing written', async () => {
    const t = tmpFiles({
      'stack.yaml':
        'services:\n  pds:\n    image: x\n    dependencies:\n      - datbase\n      - { name: redis, type: optionl }\n  database: { image: y, prot: 1 }\n',
    });
    try {
      const r = await runStack(['validate'], { cwd: t.dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("stack.yaml:5:9 services.pds.dependencies[0]: depends on unknown service 'datbase' — did you mean 'database'?");
      expect(r.stderr).toContain("stack.yaml:6:30 services.pds.dependencies[1].type: 'optionl' is not one of");
      expect(r.stderr).toContain("stack.yaml:7:25 services.database.prot: unknown key 'prot' — did you mean 'port'?");
      expect(readdirSync(t.dir)).toEqual(['stack.yaml']);
      const json = await runStack(['validate', '--json'], { cwd: t.dir });
      expect(json.code).toBe(2);
      expect(JSON.parse(json.stdout).errors).toHaveLength(3);
    } finally {
      t.cleanup();
    }
  });

  it('plan --json gives order (waves) and typed edges; up --dry-run is the same plan', async () => {
    const r = await runStack(['plan', '--profile', 'full-node-docker', '--json']);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.order[0]).toEqual(['postgres', 'setup']);
    expect(plan.order.at(-1)).toEqual(['caddy']);
    expect(plan.edges).toContainEqual({ from: 'caddy', to: 'appview', type: 'optional', gate: 'settled' });
    const dry = await runStack(['up', '--dry-run', '--profile', 'full-node-docker', '--json']);
    expect(JSON.parse(dry.stdout).order).toEqual(plan.order);
    expect(existsSync(path.join(process.cwd(), '.stack', 'full-node-docker'))).toBe(false);
  });

  it('plan never prints secret values', async () => {
    // Discovery secrets too: the backends' definitions say which options are secret or URLs.
    const discovery =
      "discovery: { backend: nats, natsToken: s3cr3t-value, natsUrl: 'nats://app:s3cr3t-value@127.0.0.1:4222', etcdPassword: s3cr3t-value, etcdEndpoints: ['http://root:s3cr3t-value@127.0.0.1:2379'] }\n";
    // A password inside a URL is masked whatever the key holding it is called (DATABASE_URL is not a secret-looking name).
    const env = "{ API_TOKEN: s3cr3t-value, DATABASE_URL: 'postgres://app:s3cr3t-value@127.0.0.1:5432/db' }";
    const t = tmpFiles({ 'stack.yaml': `${discovery}services:\n  a: { command: [a], environment: ${env} }\n` });
    try {
      for (const args of [
        ['plan'],
        ['plan', '--json'],
        ['up', '--dry-run'],
        ['graph', '--format', 'json'],
        ['profiles', 'show', './stack.yaml'],
        ['profiles', 'show', './stack.yaml', '--json'],
      ]) {
        const r = await runStack(args, { cwd: t.dir });
        expect(r.code, args.join(' ')).toBe(0);
        expect(r.stdout + r.stderr).not.toContain('s3cr3t-value');
      }
    } finally {
      t.cleanup();
    }
  });

  it('graph draws dot, mermaid and json', async () => {
    const dot = await runStack(['graph', '--profile', 'full-node-docker']);
    expect(dot.stdout).toMatch(/^digraph "full-node-docker"/);
    expect(dot.stdout).toContain('"caddy" -> "appview" [style=dashed');
    const mermaid = await runStack(['graph', '--profile', 'full-node', '--format', 'mermaid']);
    expect(mermaid.stdout).toMatch(/^flowchart BT/);
    const bad = await runStack(['graph', '--profile', 'full-node', '--format', 'png']);
    expect(bad.code).toBe(2);
  });

  it('offline commands never load heavy clients; validating a valid profile does not even load zod', async () => {
    const t = tmpFiles();
    try {
      const record = path.join(t.dir, 'imports.txt');
      const hook = path.resolve('test/fixtures/record-imports.mjs');
      for (const args of [
        ['validate', '--profile', 'prod-cluster'],
        ['plan', '--profile', 'prod-cluster', '--json'],
        ['graph', '--profile', 'full-node'],
        ['--help'],
      ]) {
        const r = await runStack(args, { env: { NODE_OPTIONS: `--import=${hook}`, RECORD_IMPORTS_FILE: record, ...PROD_CLUSTER_ENV } });
        expect(r.code, r.stderr).toBe(0);
      }
      const loaded = readFileSync(record, 'utf8');
      expect(loaded).toContain('dist/cli/main.js'); // the hook works
      // The client packages, not our own driver definitions (dist/discovery/consul.js is loaded, cheaply).
      expect(loaded).not.toMatch(/node_modules\/(dockerode|etcd3|consul|@nats-io|handlebars)\/|cjs:(dockerode|etcd3|consul|@nats-io|handlebars)/);
      expect(loaded).not.toMatch(/node_modules\/zod|cjs:zod/);
    } finally {
      t.cleanup();
    }
  });
});
