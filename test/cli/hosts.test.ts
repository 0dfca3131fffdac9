// `--host` / STACK_HOST (issue 14): what one host of a stack across hosts plans and starts, and the exit-2 cases.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runStack } from '../helpers/cli.js';
import { tmpFiles } from '../helpers/tmp.js';

const PROFILE = `
name: spread
discovery: { backend: etcd }
coordination: { strategy: mesh, dependencyTimeout: 20s }
hosts:
  edge: { address: 10.0.0.11 }
  data: { address: 10.0.0.12 }
services:
  db: { command: [db], host: data, port: 5432 }
  migrate: { command: [migrate], kind: task, host: data, dependencies: [db] }
  api: { command: [api], host: edge, port: 80, dependencies: [migrate, auth] }
  relay: { command: [relay], host: all, port: 7000 }
  auth: { external: true, stack: identity }
`;

const tmp = tmpFiles({ 'stack.yaml': PROFILE, 'plain/stack.yaml': 'name: plain\nservices:\n  one: { command: [x] }\n' });
afterAll(() => tmp.cleanup());
const env = { STACK_HOST: undefined };

describe('stack plan / up --host', () => {
  it('plan --host shows what that host starts and which gates it waits for elsewhere', async () => {
    const r = await runStack(['plan', '--host', 'edge'], { cwd: tmp.dir, env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Plan for stack 'spread' on host 'edge': 2 services in 1 wave");
    expect(r.stdout).toContain('coordination: mesh across hosts edge, data: this host starts its own share (and every host: all service)');
    expect(r.stdout).toMatch(/after migrate \(required: healthy, on host 'data'\), auth \(required: healthy, external, stack 'identity'\)/);
    expect(r.stdout).toContain('waits for, in discovery (a passing record, within dependencyTimeout)');
    expect(r.stdout).toContain("migrate (on host 'data') ← api");
    expect(r.stdout).toContain("skipped: db — runs on host 'data'");
  });

  it('plan --json carries the host and the remote dependencies; STACK_HOST says the same, the flag wins', async () => {
    const viaEnv = await runStack(['plan', '--json'], { cwd: tmp.dir, env: { STACK_HOST: 'data' } });
    expect(viaEnv.code).toBe(0);
    const plan = JSON.parse(viaEnv.stdout);
    expect(plan.host).toBe('data');
    expect(plan.services.map((s: { name: string }) => s.name).sort()).toEqual(['db', 'migrate', 'relay']);
    expect(plan.remote).toBeUndefined();
    const flag = JSON.parse((await runStack(['plan', '--json', '--host', 'edge'], { cwd: tmp.dir, env: { STACK_HOST: 'data' } })).stdout);
    expect(flag.host).toBe('edge');
    expect(flag.remote).toEqual([
      { service: 'auth', external: true, stack: 'identity', dependents: ['api'] },
      { service: 'migrate', host: 'data', dependents: ['api'] },
    ]);
  });

  it('plan without a host shows the whole stack, each service with its host', async () => {
    const r = await runStack(['plan'], { cwd: tmp.dir, env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('each host starts its own share (`stack plan --host NAME` shows one)');
    expect(r.stdout).toMatch(/db\s+process db\s+on host 'data'/);
    expect(r.stdout).toMatch(/relay\s+process relay\s+on every host/);
  });

  it('up --dry-run --host is the plan of that host', async () => {
    const r = await runStack(['up', '--dry-run', '--host', 'data', '--json'], { cwd: tmp.dir, env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).host).toBe('data');
  });

  it('up without a host, or with an unknown one, is exit 2 and starts nothing', async () => {
    for (const args of [['up'], ['up', '--dry-run']]) {
      const r = await runStack(args, { cwd: tmp.dir, env });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('this profile spans hosts edge, data: say which one this is with --host NAME or STACK_HOST');
    }
    const typo = await runStack(['up', '--host', 'dta'], { cwd: tmp.dir, env });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("unknown host 'dta': this profile's hosts are edge, data");
    expect(typo.stderr).toContain("'data'");
    expect(existsSync(path.join(tmp.dir, '.stack'))).toBe(false);
  });

  it('a profile without hosts: --host is a usage error, STACK_HOST is ignored', async () => {
    const cwd = path.join(tmp.dir, 'plain');
    const flag = await runStack(['plan', '--host', 'edge'], { cwd });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("profile 'plain' declares no hosts");
    const viaEnv = await runStack(['plan', '--json'], { cwd, env: { STACK_HOST: 'edge' } });
    expect(viaEnv.code).toBe(0);
    expect(JSON.parse(viaEnv.stdout).host).toBeUndefined();
  });
});
