/** Integration tests: the engine with real processes (behaviour.test.ts has the same cases on the memory runtime and a manual clock). */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startStack, type StackController } from '../../src/engine/index.js';
import { stopInReverseOrder } from '../../src/engine/stopper.js';
import { freePort, waitFor } from '../helpers/net.js';
import { EventLog, httpService, makeStack, survivors, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(services: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const { dir, cleanup } = await tempDir();
  const input = makeStack('life', dir, services, extra);
  const log = new EventLog();
  const controllers: StackController[] = [];
  const start = (signal?: AbortSignal) => {
    const c = startStack(input, { onEvent: log.push, ...(signal ? { signal } : {}) });
    controllers.push(c);
    return c;
  };
  cleanups.push(async () => {
    for (const c of controllers) await c.stop().catch(() => undefined);
    expect(survivors(log.pids())).toEqual([]);
    await cleanup();
  });
  return { dir, input, log, start };
}

describe('restart policy', () => {
  it('on-failure restarts with backoff up to its limit, then the service is failed', async () => {
    const port = await freePort();
    const { log, start } = await setup({
      flaky: httpService(port, { EXIT_AFTER_MS: '400', EXIT_CODE: '1' }, { restart: { policy: 'on-failure', maxRetries: 2, backoff: '50ms' } }),
    });
    const controller = start();
    expect((await controller.ready).outcome).toBe('up');
    await waitFor(() => controller.status()[0]?.state === 'failed', 20_000, 'flaky to give up');
    const [status] = controller.status();
    expect(status?.restarts).toBe(2);
    expect(status?.reason).toMatch(/exited with code 1; not restarted: gave up after 2 restarts/);
    expect(log.count('restart', 'flaky')).toBe(2);
    // Each restart went through the gates again: starting → checking → healthy.
    expect(log.states('flaky').filter((s) => s === 'healthy')).toHaveLength(3);
  });

  it('restart "no": an exit after startup is reported, not restarted', async () => {
    const port = await freePort();
    const { log, start } = await setup({ once: httpService(port, { EXIT_AFTER_MS: '300', EXIT_CODE: '0' }) });
    const controller = start();
    expect((await controller.ready).outcome).toBe('up');
    await waitFor(() => controller.status()[0]?.state === 'stopped', 10_000, 'exit to be seen');
    expect(controller.status()[0]?.reason).toBe('exited with code 0; not restarted: restart policy is "no"');
    expect(log.count('restart')).toBe(0);
  });
});

describe('lock', () => {
  it('a second start of the same stack fails clearly while the first runs', async () => {
    const port = await freePort();
    const { dir, start } = await setup({ web: httpService(port) });
    const first = start();
    expect((await first.ready).outcome).toBe('up');
    const second = start();
    await expect(second.ready).rejects.toMatchObject({ code: 'stack_locked', exitCode: 1 });
    const lock = JSON.parse(await readFile(path.join(dir, 'state', 'lock'), 'utf8')) as { pid: number };
    expect(lock.pid).toBe(process.pid);
    expect(first.status()[0]?.state).toBe('healthy');
    await first.stop();
    expect(existsSync(path.join(dir, 'state', 'lock'))).toBe(false);
    expect(existsSync(path.join(dir, 'state', 'state.json'))).toBe(false);
  });

  it('a stale lock left by a dead process is taken over', async () => {
    const port = await freePort();
    const { dir, start } = await setup({ web: httpService(port) });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    await mkdir(path.join(dir, 'state'), { recursive: true });
    await writeFile(path.join(dir, 'state', 'lock'), JSON.stringify({ pid: Number(dead), startedAt: new Date().toISOString(), command: 'up' }));
    const controller = start();
    expect((await controller.ready).outcome).toBe('up');
  });
});

describe('interruption', () => {
  it('aborting mid-startup stops what started, dependents first, and reports interrupted', async () => {
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const { log, start } = await setup({
      a: httpService(pa),
      b: httpService(pb, {}, { dependencies: [{ name: 'a', type: 'soft' }] }),
      slow: httpService(pc, { READY_AFTER_MS: '60000' }, { dependencies: ['a'] }),
    });
    const abort = new AbortController();
    const controller = start(abort.signal);
    await waitFor(() => controller.status().find((s) => s.name === 'slow')?.state === 'checking', 10_000, 'slow to be checking');
    abort.abort();
    const report = await controller.ready;
    expect(report.outcome).toBe('interrupted');
    const states = Object.fromEntries(controller.status().map((s) => [s.name, s.state]));
    expect(states).toEqual({ a: 'stopped', b: 'stopped', slow: 'stopped' });
    // Dependents first: a stops only after b and slow have stopped.
    expect(log.at('a', 'stopping')).toBeGreaterThan(log.at('b', 'stopped'));
    expect(log.at('a', 'stopping')).toBeGreaterThan(log.at('slow', 'stopped'));
    expect(survivors(log.pids())).toEqual([]);
  });
});

describe('stop order', () => {
  it('stops dependents first, passes the order through services with nothing to stop, and cuts circular groups', async () => {
    const order: string[] = [];
    const item = (name: string, dependsOn: string[], stop = true) => ({
      name,
      dependsOn,
      ...(stop ? { stop: async () => void order.push(name) } : {}),
    });
    await stopInReverseOrder([item('db', []), item('migrate', ['db'], false), item('api', ['migrate']), item('x', ['y']), item('y', ['x', 'db'])]);
    expect(order.indexOf('api')).toBeLessThan(order.indexOf('db'));
    expect(order.indexOf('x')).toBeLessThan(order.indexOf('db'));
    expect(order.indexOf('y')).toBeLessThan(order.indexOf('db'));
    expect(order).toHaveLength(4);
  });
});
