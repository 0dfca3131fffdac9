/**
 * `up` on a stack that already runs converges it (as `docker compose up`): unchanged instances
 * are kept (same pid), changed ones replaced, removed ones stopped. Real processes, loopback only.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readStateFile, startStack, stopStack, type StackController, type StartupReport } from '../../src/engine/index.js';
import { sortOut } from '../../src/engine/converge.js';
import { createRuntimeSet } from '../../src/engine/runtimes.js';
import { planStack } from '../../src/plan/plan.js';
import type { ServiceSpec } from '../../src/profile/types.js';
import { createProcessRuntime, type ProcessHandle } from '../../src/runtime/process.js';
import { isProcessAlive } from '../../src/util/proc.js';
import type { StartRequest } from '../../src/runtime/types.js';
import { freePort } from '../helpers/net.js';
import { EventLog, httpService, makeStack, nodeProgram, survivors, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A folder for one stack; afterwards `down` runs and no process of the test may survive. */
async function stackFolder() {
  const { dir, cleanup } = await tempDir('converge-');
  const seen = new Set<number>();
  const controllers: StackController[] = [];
  /** `up` of these services, left running (detached) once it is up. */
  const up = async (services: Record<string, unknown>, opts: { select?: string[] } = {}) => {
    const input = makeStack('conv', dir, services);
    const plan = opts.select ? planStack(input.profile, input.graph, { services: opts.select }) : input.plan;
    const log = new EventLog();
    const controller = startStack({ ...input, plan }, { onEvent: log.push });
    controllers.push(controller);
    const report = await controller.ready;
    for (const pid of log.pids()) seen.add(pid);
    if (report.outcome === 'up') await controller.detach();
    return { report, log, controller };
  };
  cleanups.push(async () => {
    for (const c of controllers) await c.stop().catch(() => undefined);
    const runtimes = createRuntimeSet({ stateDir: path.join(dir, 'state') });
    await stopStack({ stack: 'conv', stateDir: path.join(dir, 'state'), runtimes, timeoutMs: 1000 });
    await runtimes.close();
    expect(survivors([...seen])).toEqual([]);
    await cleanup();
  });
  return { dir, up };
}

const pidOf = (report: StartupReport, service: string) => report.services.find((s) => s.name === service)?.handle?.pid;
const statusOf = (report: StartupReport, service: string) => report.services.find((s) => s.name === service);

describe('up on a running stack converges it', () => {
  it('keeps unchanged services (same pid, still gated and healthy), replaces a changed one, stops a removed one', async () => {
    const [pa, pb, pc, pd] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const { up } = await stackFolder();
    const first = await up({
      db: httpService(pa),
      api: httpService(pb, { MODE: 'one' }, { dependencies: ['db'] }),
      web: httpService(pc, {}, { dependencies: ['api'] }),
      old: httpService(pd),
    });
    expect(first.report.outcome).toBe('up');
    const before = Object.fromEntries(['db', 'api', 'web', 'old'].map((s) => [s, pidOf(first.report, s)!]));

    const second = await up({
      db: httpService(pa),
      api: httpService(pb, { MODE: 'two' }, { dependencies: ['db'] }),
      web: httpService(pc, {}, { dependencies: ['api'] }),
    });
    expect(second.report.outcome).toBe('up');
    // db and web are the very processes that ran before; api is a new one; old is gone.
    expect(pidOf(second.report, 'db')).toBe(before.db);
    expect(pidOf(second.report, 'web')).toBe(before.web);
    expect(pidOf(second.report, 'api')).not.toBe(before.api);
    expect(isProcessAlive(before.api!)).toBe(false);
    expect(isProcessAlive(before.old!)).toBe(false);
    expect(second.log.states('old')).toEqual(['stopping', 'stopped']);
    expect(second.log.events).toContainEqual(expect.objectContaining({ type: 'state', service: 'old', state: 'stopped', reason: 'removed from the profile' }));
    // Kept services still pass their gates and say they were kept; the changed one does not.
    expect(statusOf(second.report, 'db')).toMatchObject({ state: 'healthy', reason: 'unchanged', unchanged: true, health: 'healthy' });
    expect(statusOf(second.report, 'web')).toMatchObject({ state: 'healthy', reason: 'unchanged', unchanged: true });
    expect(statusOf(second.report, 'api')).toMatchObject({ state: 'healthy' });
    expect(statusOf(second.report, 'api')?.unchanged).toBeUndefined();
    // web (kept) is gated on the recreated api as usual: healthy only after api is.
    expect(second.log.at('web', 'healthy')).toBeGreaterThan(second.log.at('api', 'healthy'));
    expect(second.log.at('web', 'starting')).toBeGreaterThan(second.log.at('api', 'healthy'));
    // The removed service was stopped before anything was started.
    expect(second.log.at('old', 'stopped')).toBeLessThan(second.log.at('db', 'starting'));
  });

  it('a service without a health check is kept too; a disabled one and a surplus replica are stopped', async () => {
    const { dir, up } = await stackFolder();
    const idle = nodeProgram('setInterval(() => {}, 1000)');
    const first = await up({ worker: idle, extra: idle });
    expect(first.report.outcome).toBe('up');
    // A second replica of worker, as a run with more replicas would have left it.
    const input = makeStack('conv', dir, { worker: idle });
    const runtime = createProcessRuntime({ stateDirFor: () => path.join(dir, 'state') });
    const surplus = (await runtime.start({
      stack: 'conv',
      service: input.graph.services.get('worker')!,
      replica: 1,
      environment: {},
      files: [],
      configDir: dir,
      stateDir: path.join(dir, 'state'),
      profileDir: dir,
    })) as ProcessHandle;
    await runtime.close();

    const second = await up({ worker: idle, extra: { ...idle, enable: false } });
    expect(second.report.outcome).toBe('up');
    expect(pidOf(second.report, 'worker')).toBe(pidOf(first.report, 'worker'));
    expect(statusOf(second.report, 'worker')?.reason).toBe('unchanged');
    expect(isProcessAlive(pidOf(first.report, 'extra')!)).toBe(false);
    expect(isProcessAlive(surplus.pid)).toBe(false);
    expect(second.log.events).toContainEqual(expect.objectContaining({ service: 'extra', state: 'stopped', reason: 'disabled (enable: false)' }));
    expect(second.log.events).toContainEqual(expect.objectContaining({ service: 'worker', state: 'stopped', reason: 'replica 1 scaled down' }));
  });

  it('services a selective `up` does not name are left running and stay known to status and down', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { dir, up } = await stackFolder();
    const services = { db: httpService(pa), other: httpService(pb) };
    const first = await up(services);
    const second = await up({ ...services, db: httpService(pa, { CHANGED: '1' }) }, { select: ['db'] });
    expect(second.report.outcome).toBe('up');
    expect(pidOf(second.report, 'db')).not.toBe(pidOf(first.report, 'db'));
    const other = pidOf(first.report, 'other')!;
    expect(isProcessAlive(other)).toBe(true);
    const state = await readStateFile(path.join(dir, 'state'));
    expect(state?.services.other).toMatchObject({ state: 'healthy', handle: { pid: other } });

    const runtimes = createRuntimeSet({ stateDir: path.join(dir, 'state') });
    const down = await stopStack({ stack: 'conv', stateDir: path.join(dir, 'state'), runtimes, timeoutMs: 1000 });
    await runtimes.close();
    expect(down.services.map((s) => s.service).sort()).toEqual(['db', 'other']);
    expect(isProcessAlive(other)).toBe(false);
  });

  it('a converge that fails rolls the whole stack back: kept instances are stopped too', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { up } = await stackFolder();
    const first = await up({ db: httpService(pa), api: httpService(pb, {}, { dependencies: ['db'] }) });
    const crashing = { ...httpService(pa), command: [process.execPath, '-e', 'process.exit(3)'] };
    const second = await up({ db: crashing, api: httpService(pb, {}, { dependencies: ['db'] }) });
    expect(second.report.outcome).toBe('failed');
    expect(second.report.failed.map((f) => f.service)).toEqual(['db']);
    // api was never reached (blocked), yet its instance from the first `up` was stopped.
    expect(second.report.blocked.map((b) => b.service)).toEqual(['api']);
    expect(isProcessAlive(pidOf(first.report, 'api')!)).toBe(false);
    expect(survivors(second.log.pids())).toEqual([]);
  });
});

describe('sortOut', () => {
  it('names why each instance the run will not keep goes, keeps the planned ones, carries unselected ones', () => {
    const { graph } = makeStack('conv', '/tmp', {
      api: nodeProgram('1'),
      off: { ...nodeProgram('1'), enable: false },
      moved: { ...nodeProgram('1'), runtime: 'docker', image: 'x' },
      other: nodeProgram('1'),
    });
    const runtime = createProcessRuntime();
    const at = (service: string, replica = 0) => ({
      runtime,
      handle: { runtime: 'process' as const, stack: 'conv', service, replica, id: `${service}-${replica}`, startedAt: 't' },
    });
    const status = (name: string) => ({
      name,
      kind: 'service' as const,
      state: 'healthy' as const,
      started: true,
      health: 'none' as const,
      restarts: 0,
      dependsOn: [],
      stopSignal: 'SIGTERM',
      stopGracePeriodMs: 1000,
    });
    const state = {
      version: 1 as const,
      stack: 'conv',
      owner: { pid: 1, startedAt: 't' },
      phase: 'detached' as const,
      updatedAt: 't',
      profile: {},
      services: { other: status('other'), gone: status('gone') },
    };
    const sorted = sortOut([at('api'), at('api', 1), at('off'), at('moved'), at('gone'), at('other')], graph, new Set(['api', 'moved']), state);
    expect([...sorted.previous.keys()]).toEqual(['api']);
    expect(sorted.obsolete.map((o) => [o.handle.service, o.reason])).toEqual([
      ['api', 'replica 1 scaled down'],
      ['off', 'disabled (enable: false)'],
      ['moved', 'moved to the docker runtime'],
      ['gone', 'removed from the profile'],
    ]);
    expect(sorted.carried.map((s) => s.name)).toEqual(['other']);
    expect(sorted.retired.map((s) => s.name)).toEqual(['gone']);
  });
});

describe('process runtime: start() converges on the config hash in its pid file', () => {
  function spec(overrides: Partial<ServiceSpec> = {}): ServiceSpec {
    const input = makeStack('rt', '/tmp', { svc: nodeProgram('setInterval(() => {}, 1000)') });
    return { ...input.graph.services.get('svc')!, ...overrides };
  }

  it('reuses a live instance with the same hash, from a fresh runtime too, and replaces a changed one', async () => {
    const { dir, cleanup } = await tempDir('converge-rt-');
    const stateDir = path.join(dir, 'state');
    const pids: number[] = [];
    cleanups.push(async () => {
      expect(survivors(pids)).toEqual([]);
      await cleanup();
    });
    const request = (environment: Record<string, string>, service = spec()): StartRequest => ({
      stack: 'rt',
      service,
      replica: 0,
      environment,
      files: [],
      configDir: path.join(stateDir, 'config', 'svc'),
      stateDir,
      profileDir: dir,
    });
    const runtime = createProcessRuntime({ stateDirFor: () => stateDir });
    const first = (await runtime.start(request({ A: '1' }))) as ProcessHandle;
    pids.push(first.pid);
    expect(first.configHash).toMatch(/^[0-9a-f]{64}$/);
    await runtime.close();

    const fresh = createProcessRuntime({ stateDirFor: () => stateDir });
    const again = (await fresh.start(request({ A: '1' }))) as ProcessHandle;
    expect(again).toMatchObject({ pid: first.pid, id: first.id, startedAt: first.startedAt, configHash: first.configHash });

    const changed = (await fresh.start(request({ A: '2' }))) as ProcessHandle;
    pids.push(changed.pid);
    expect(changed.pid).not.toBe(first.pid);
    expect(changed.configHash).not.toBe(first.configHash);
    expect(isProcessAlive(first.pid)).toBe(false);
    expect((await fresh.discover('rt')).map((h) => h.pid)).toEqual([changed.pid]);

    // A rendered file's contents are part of the hash: the same request with another file replaces it.
    const file = path.join(stateDir, 'config', 'svc', 'svc.env');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, 'X=1\n');
    const withFile = (): StartRequest => ({ ...request({ A: '2' }), files: [{ hostPath: file, destination: 'svc.env', mode: 0o644 }] });
    const filed = (await fresh.start(withFile())) as ProcessHandle;
    pids.push(filed.pid);
    expect(filed.pid).not.toBe(changed.pid);
    expect(((await fresh.start(withFile())) as ProcessHandle).pid).toBe(filed.pid);
    await writeFile(file, 'X=2\n');
    const refiled = (await fresh.start(withFile())) as ProcessHandle;
    pids.push(refiled.pid);
    expect(refiled.pid).not.toBe(filed.pid);

    // A task is never reused: its exit status can only be read by its parent.
    const task = spec({ kind: 'task' });
    const t1 = (await fresh.start(request({}, task))) as ProcessHandle;
    pids.push(t1.pid);
    const t2 = (await fresh.start(request({}, task))) as ProcessHandle;
    pids.push(t2.pid);
    expect(t2.pid).not.toBe(t1.pid);
    await fresh.stop(t2, { signal: 'SIGTERM', gracePeriodMs: 2000 });
    await fresh.close();
  });
});
