/**
 * The engine's behaviour on the in-memory runtime and a manual clock: gating of every dependency
 * type, circular groups, dependencyTimeout, rollback, restart back-off, interruption, stop grace
 * and converge — deterministic and in milliseconds. Clock times asserted here are the manual
 * clock's, never wall-clock time. (gating.test.ts and lifecycle.test.ts run the same engine with
 * real processes, as integration tests.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createDiscovery } from '../../src/discovery/index.js';
import type { StackController } from '../../src/engine/engine.js';
import type { MemoryScript } from '../../src/runtime/memory.js';
import { drive, memCheck, memoryStack, type MemoryStackOptions } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Scripts = Record<string, MemoryScript | MemoryScript[]>;

/** Start a memory stack; `scripts[service]` is its script, or one per attempt (the last repeats). */
async function setup(services: Record<string, Record<string, unknown>>, scripts: Scripts = {}, opts: Omit<MemoryStackOptions, 'script'> = {}) {
  const script = (service: string, attempt: number): MemoryScript => {
    const s = scripts[service];
    if (!s) return {};
    return Array.isArray(s) ? (s[Math.min(attempt, s.length - 1)] ?? {}) : s;
  };
  const stack = await memoryStack(services, { ...opts, script });
  const controllers: StackController[] = [];
  const start = (...args: Parameters<typeof stack.start>) => {
    const c = stack.start(...args);
    controllers.push(c);
    return c;
  };
  cleanups.push(async () => {
    for (const c of controllers) await drive(stack.clock, c.stop());
    expect(stack.runtime.running()).toEqual([]);
    await stack.cleanup();
  });
  return { ...stack, start };
}

/** Start and drive the clock until startup is over. */
async function up(s: Awaited<ReturnType<typeof setup>>, more: Parameters<Awaited<ReturnType<typeof setup>>['start']>[0] = {}) {
  const controller = s.start(more);
  const report = await drive(s.clock, controller.ready);
  return { controller, report };
}

const startedAt = (s: Awaited<ReturnType<typeof setup>>, service: string, attempt = 0) =>
  s.runtime.instances.find((i) => i.handle.service === service && i.attempt === attempt)?.startedAtMs;

describe('gating, on the memory runtime', () => {
  it('required: the dependent starts only once its dependency is healthy', async () => {
    const s = await setup({ a: { healthCheck: memCheck() }, b: { healthCheck: memCheck(), dependencies: ['a'] } }, { a: { readyAfterMs: 300 } });
    const { report } = await up(s);
    expect(report.outcome).toBe('up');
    expect(s.log.at('b', 'starting')).toBeGreaterThan(s.log.at('a', 'healthy'));
    expect(startedAt(s, 'b')).toBeGreaterThanOrEqual(300);
  });

  it('a service whose instance is gone is not healthy, whatever answered its check; its dependents do not start', async () => {
    const s = await setup({ a: { healthCheck: memCheck() }, b: { dependencies: ['a'] } });
    // Its check passes (another process answers on its port) while the instance itself is gone, its exit not yet seen.
    const inspect = s.runtime.inspect.bind(s.runtime);
    s.runtime.inspect = async (handle) => (handle.service === 'a' ? { running: false } : inspect(handle));
    const { report } = await up(s, { onFailure: 'leave' });
    s.runtime.inspect = inspect;
    expect(report.failed).toEqual([{ service: 'a', reason: expect.stringMatching(/instance is not running: something else answers/) }]);
    expect(report.blocked.map((b) => b.service)).toEqual(['b']);
  });

  it('soft: the dependent starts once the dependency started, before it is healthy', async () => {
    const s = await setup({ a: { healthCheck: memCheck() }, b: { dependencies: [{ name: 'a', type: 'soft' }] } }, { a: { readyAfterMs: 800 } });
    const { report } = await up(s);
    expect(report.outcome).toBe('up');
    expect(s.log.at('b', 'starting')).toBeGreaterThan(s.log.at('a', 'checking'));
    expect(s.log.at('b', 'starting')).toBeLessThan(s.log.at('a', 'healthy'));
    expect(startedAt(s, 'b')).toBeLessThan(800);
  });

  it('soft: a dependency that failed to start still lets the dependent go', async () => {
    const s = await setup({ a: {}, b: { dependencies: [{ name: 'a', type: 'soft' }] } }, { a: { startError: 'no such binary' } });
    const { report } = await up(s, { onFailure: 'leave' });
    expect(report.failed).toEqual([{ service: 'a', reason: 'start failed: no such binary' }]);
    expect(s.log.states('b')).toContain('healthy');
  });

  it('optional: the dependent starts after the dependency failed, with a warning; `up` failed', async () => {
    const s = await setup({ a: {}, b: { dependencies: [{ name: 'a', type: 'optional' }] } }, { a: { startError: 'boom' } });
    const { report } = await up(s, { onFailure: 'leave' });
    expect(s.log.at('b', 'starting')).toBeGreaterThan(s.log.at('a', 'failed'));
    expect(s.log.states('b')).toContain('healthy');
    expect(report.warnings.some((w) => w.includes("optional dependency 'a'"))).toBe(true);
    expect(report.outcome).toBe('failed');
    expect(report.failed.map((f) => f.service)).toEqual(['a']);
  });

  it('optional: a healthy dependency is waited for like a required one', async () => {
    const s = await setup({ a: { healthCheck: memCheck() }, b: { dependencies: [{ name: 'a', type: 'optional' }] } }, { a: { readyAfterMs: 400 } });
    const { report } = await up(s);
    expect(report.outcome).toBe('up');
    expect(startedAt(s, 'b')).toBeGreaterThanOrEqual(400);
    expect(report.warnings).toEqual([]);
  });

  it('circular: the group starts together, and its dependents wait for every member', async () => {
    const s = await setup(
      {
        a: { healthCheck: memCheck(), dependencies: [{ name: 'b', type: 'circular' }] },
        b: { healthCheck: memCheck(), dependencies: [{ name: 'a', type: 'circular' }] },
        c: { dependencies: ['a'] },
      },
      { a: { readyAfterMs: 200 }, b: { readyAfterMs: 600 } },
    );
    const { report } = await up(s);
    expect(report.outcome).toBe('up');
    expect(startedAt(s, 'a')).toBe(startedAt(s, 'b'));
    expect(Math.max(s.log.at('a', 'starting'), s.log.at('b', 'starting'))).toBeLessThan(Math.min(s.log.at('a', 'healthy'), s.log.at('b', 'healthy')));
    expect(s.log.at('c', 'starting')).toBeGreaterThan(s.log.at('b', 'healthy'));
    expect(startedAt(s, 'c')).toBeGreaterThanOrEqual(600);
  });

  it('circular: a member that fails blocks the dependents of the whole group', async () => {
    const s = await setup(
      {
        a: { healthCheck: memCheck(), dependencies: [{ name: 'b', type: 'circular' }] },
        b: { healthCheck: memCheck(), dependencies: [{ name: 'a', type: 'circular' }] },
        c: { dependencies: ['a'] },
      },
      { b: { exitAfterMs: 100, exitCode: 1, neverHealthy: true } },
    );
    const { report } = await up(s);
    expect(report.outcome).toBe('failed');
    expect(report.failed).toEqual([{ service: 'b', reason: 'exited with code 1 before it became healthy' }]);
    expect(report.blocked).toEqual([{ service: 'c', reason: expect.stringContaining("requires 'b'") }]);
    expect(startedAt(s, 'c')).toBeUndefined();
  });

  it("a dependent's own check of a dependency opens its gate, not the dependency's own check", async () => {
    const s = await setup(
      { a: { healthCheck: memCheck() }, b: { dependencies: [{ name: 'a', healthCheck: { strategy: 'tcp', port: 1, interval: '50ms', retries: 0 } }] } },
      { a: { failsStrategies: ['http'] } },
      { extra: { coordination: { dependencyTimeout: '1500ms' } } },
    );
    const { report } = await up(s, { onFailure: 'leave' });
    expect(s.log.at('b', 'starting')).toBeGreaterThan(s.log.at('a', 'checking'));
    expect(s.log.at('b', 'starting')).toBeLessThan(s.log.at('a', 'failed'));
    expect(s.log.at('a', 'healthy')).toBe(-1);
    expect(report.failed.map((f) => f.service)).toEqual(['a']);
  });

  it('a task gates its dependent on exit 0; a failed task blocks it', async () => {
    const ok = await setup({ migrate: { kind: 'task' }, app: { dependencies: ['migrate'] } }, { migrate: { exitAfterMs: 200 } });
    const first = await up(ok);
    expect(first.report.outcome).toBe('up');
    expect(ok.log.states('migrate')).toEqual(['waiting', 'starting', 'running', 'completed']);
    expect(startedAt(ok, 'app')).toBeGreaterThanOrEqual(200);

    const bad = await setup({ migrate: { kind: 'task' }, app: { dependencies: ['migrate'] } }, { migrate: { exitAfterMs: 10, exitCode: 2 } });
    const second = await up(bad);
    expect(second.report.failed).toEqual([{ service: 'migrate', reason: 'task exited with code 2' }]);
    expect(second.report.blocked[0]).toEqual({ service: 'app', reason: expect.stringContaining("'migrate'") });
    expect(startedAt(bad, 'app')).toBeUndefined();
  });
});

describe('timeouts and failures, on the memory runtime', () => {
  it('dependencyTimeout bounds a health check that never passes; the dependent is blocked', async () => {
    const s = await setup(
      { a: { healthCheck: memCheck() }, b: { dependencies: ['a'] } },
      { a: { neverHealthy: true } },
      { extra: { coordination: { dependencyTimeout: '700ms' } } },
    );
    const { report } = await up(s);
    expect(report.outcome).toBe('failed');
    expect(report.failed[0]?.reason).toMatch(/did not become healthy before the deadline/);
    expect(report.blocked).toEqual([{ service: 'b', reason: expect.stringContaining("requires 'a'") }]);
    expect(s.clock.now()).toBeGreaterThanOrEqual(700);
    expect(startedAt(s, 'b')).toBeUndefined();
  });

  it('dependencyTimeout bounds a task that never completes', async () => {
    const s = await setup({ t: { kind: 'task' } }, {}, { extra: { coordination: { dependencyTimeout: '2s' } } });
    const { report } = await up(s);
    expect(report.failed).toEqual([{ service: 't', reason: 'task did not complete within dependencyTimeout (2000 ms)' }]);
  });

  it('a service without a health check that exits within the settle time failed', async () => {
    const s = await setup({ a: {} }, { a: { exitAfterMs: 50, exitCode: 3 } });
    const { report } = await up(s);
    expect(report.failed).toEqual([{ service: 'a', reason: 'exited with code 3 before it became healthy' }]);
  });

  it('enableHealthChecks: false — healthy means started and still running after the settle time', async () => {
    const s = await setup(
      { a: { healthCheck: memCheck() }, b: { healthCheck: memCheck(), dependencies: ['a'] } },
      { a: { neverHealthy: true }, b: { neverHealthy: true } },
      { extra: { coordination: { enableHealthChecks: false } } },
    );
    const { report } = await up(s, { settleMs: 250 });
    expect(report.outcome).toBe('up');
    expect(startedAt(s, 'b')).toBe(250);
  });

  it('rollback: what started is stopped, dependents first; every service has a final state', async () => {
    const s = await setup(
      { ok: {}, top: { dependencies: [{ name: 'ok', type: 'soft' }] }, bad: { healthCheck: memCheck() }, app: { dependencies: ['ok', 'bad'] } },
      { bad: { exitAfterMs: 100, exitCode: 1, neverHealthy: true } },
    );
    const { report, controller } = await up(s);
    expect(report.outcome).toBe('failed');
    expect(report.failed.map((f) => f.service)).toEqual(['bad']);
    expect(report.blocked).toEqual([{ service: 'app', reason: expect.stringContaining("requires 'bad'") }]);
    const final = Object.fromEntries(controller.status().map((st) => [st.name, st.state]));
    expect(final).toEqual({ ok: 'stopped', top: 'stopped', bad: 'failed', app: 'blocked' });
    expect(s.log.at('ok', 'stopping')).toBeGreaterThan(s.log.at('top', 'stopped'));
    expect(s.runtime.running()).toEqual([]);
  });

  it('onFailure leave: what runs is left running', async () => {
    const s = await setup({ ok: {}, bad: {} }, { bad: { startError: 'nope' } });
    const { report } = await up(s, { onFailure: 'leave' });
    expect(report.outcome).toBe('failed');
    expect(s.runtime.running().map((i) => i.handle.service)).toEqual(['ok']);
  });
});

describe('after startup, on the memory runtime', () => {
  it('on-failure restarts with doubling back-off up to maxRetries, then the service is failed', async () => {
    const s = await setup(
      { flaky: { healthCheck: memCheck(), restart: { policy: 'on-failure', maxRetries: 2, backoff: '50ms' } } },
      { flaky: { exitAfterMs: 400, exitCode: 1 } },
    );
    const { controller, report } = await up(s);
    expect(report.outcome).toBe('up');
    await s.clock.advance(5_000);
    const [status] = controller.status();
    expect(status?.state).toBe('failed');
    expect(status?.restarts).toBe(2);
    expect(status?.reason).toMatch(/exited with code 1; not restarted: gave up after 2 restarts/);
    const delays = s.log.events.flatMap((e) => (e.type === 'restart' ? [e.delayMs] : []));
    expect(delays).toEqual([50, 100]);
    // Each restart waited its back-off after the exit, then went through the gates again.
    expect(startedAt(s, 'flaky', 1)! - (startedAt(s, 'flaky', 0)! + 400)).toBe(50);
    expect(startedAt(s, 'flaky', 2)! - (startedAt(s, 'flaky', 1)! + 400)).toBe(100);
    expect(s.log.states('flaky').filter((st) => st === 'healthy')).toHaveLength(3);
  });

  it('restart "always" restarts a clean exit; "no" reports it', async () => {
    const s = await setup({ a: { restart: { policy: 'always', backoff: '10ms' } }, b: {} }, { a: [{ exitAfterMs: 500 }, {}], b: { exitAfterMs: 500 } });
    const { controller } = await up(s);
    await s.clock.advance(2_000);
    const states = Object.fromEntries(controller.status().map((st) => [st.name, st]));
    expect(states.a?.state).toBe('healthy');
    expect(states.a?.restarts).toBe(1);
    expect(states.b?.state).toBe('stopped');
    expect(states.b?.reason).toBe('exited with code 0; not restarted: restart policy is "no"');
  });

  it('a crash is restarted, and with onUnhealthy: false an unhealthy service is reported, not restarted', async () => {
    const s = await setup({ a: { healthCheck: memCheck({ retries: 1 }), restart: { policy: 'on-failure', backoff: '20ms', onUnhealthy: false } } });
    const { controller } = await up(s);
    s.runtime.setHealthy('a', false);
    await s.clock.advance(500);
    expect(s.log.events.some((e) => e.type === 'health' && e.service === 'a' && !e.healthy)).toBe(true);
    expect(controller.status()[0]?.restarts).toBe(0);
    s.runtime.crash('a', { code: null, signal: 'SIGSEGV' });
    await s.clock.advance(500);
    expect(controller.status()[0]).toMatchObject({ state: 'healthy', restarts: 1 });
  });
});

describe('stopping, on the memory runtime', () => {
  it('an interruption mid-startup stops what started, dependents first, and reports interrupted', async () => {
    const s = await setup(
      { a: {}, b: { dependencies: [{ name: 'a', type: 'soft' }] }, slow: { healthCheck: memCheck(), dependencies: ['a'] } },
      { slow: { neverHealthy: true } },
    );
    const abort = new AbortController();
    const controller = s.start({ signal: abort.signal });
    await drive(
      s.clock,
      new Promise<void>((resolve) => controller.subscribe((e) => e.type === 'state' && e.service === 'slow' && e.state === 'checking' && resolve())),
    );
    abort.abort();
    const report = await drive(s.clock, controller.ready);
    expect(report?.outcome).toBe('interrupted');
    expect(Object.fromEntries(controller.status().map((st) => [st.name, st.state]))).toEqual({ a: 'stopped', b: 'stopped', slow: 'stopped' });
    expect(s.log.at('a', 'stopping')).toBeGreaterThan(s.log.at('b', 'stopped'));
    expect(s.log.at('a', 'stopping')).toBeGreaterThan(s.log.at('slow', 'stopped'));
  });

  it("a service that ignores its stop signal is killed after its grace period, or after stop's timeout", async () => {
    const s = await setup({ a: { stopGracePeriod: '30s' }, b: { stopGracePeriod: '30s' } }, { a: { ignoresStopSignal: true }, b: { ignoresStopSignal: true } });
    const first = await up(s);
    const t = s.clock.now();
    await drive(s.clock, first.controller.stop({ timeoutMs: 1000 }));
    expect(s.runtime.instances.map((i) => i.stoppedWith)).toEqual([
      { signal: 'SIGTERM', gracePeriodMs: 1000, killed: true },
      { signal: 'SIGTERM', gracePeriodMs: 1000, killed: true },
    ]);
    // Independent services stop in parallel: one grace period in all.
    expect(s.clock.now() - t).toBe(1000);
  });

  it('independent branches stop concurrently; each branch in reverse order', async () => {
    // db ← a1 ← a2, and db ← b1: b1 stops beside a2, not after it; db waits for both branches.
    const slow = { stopGracePeriod: '1s' };
    const services = { db: slow, a1: { ...slow, dependencies: ['db'] }, a2: { ...slow, dependencies: ['a1'] }, b1: { ...slow, dependencies: ['db'] } };
    const s = await setup(services, {
      db: { ignoresStopSignal: true },
      a1: { ignoresStopSignal: true },
      a2: { ignoresStopSignal: true },
      b1: { ignoresStopSignal: true },
    });
    const { controller } = await up(s);
    const t = s.clock.now();
    const stoppingAt: Record<string, number> = {};
    controller.subscribe((e) => {
      if (e.type === 'state' && e.state === 'stopping') stoppingAt[e.service] = s.clock.now() - t;
    });
    await drive(s.clock, controller.stop());
    expect(stoppingAt).toEqual({ a2: 0, b1: 0, a1: 1000, db: 2000 });
    // The longest branch sets the time: three grace periods, not four.
    expect(s.clock.now() - t).toBe(3000);
  });

  it('converge: a second run keeps an unchanged instance and replaces a changed one', async () => {
    const s = await setup({ db: {}, web: { dependencies: ['db'] } });
    const first = await up(s);
    await drive(s.clock, first.controller.detach());
    const db = s.runtime.current('db')!.handle;
    const { report } = await up(s);
    expect(report.outcome).toBe('up');
    expect(report.services.find((st) => st.name === 'db')).toMatchObject({ unchanged: true, reason: 'unchanged', handle: db });
    expect(s.runtime.running()).toHaveLength(2);
  });
});

describe('discovery, on the memory runtime', () => {
  it('registers a service once ready, before its dependents start, injects its address into them, deregisters on stop', async () => {
    const s = await setup({ db: { port: 5432 }, app: { dependencies: ['db'] } }, {}, { extra: { discovery: { backends: ['memory', 'env'] } } });
    const discovery = await createDiscovery(s.input.profile.discovery);
    cleanups.push(() => discovery.close());
    const { controller, report } = await up(s, { discovery });
    expect(report.outcome).toBe('up');
    expect(s.log.events.findIndex((e) => e.type === 'registered' && e.service === 'db')).toBeLessThan(s.log.at('app', 'starting'));
    expect(await discovery.lookup('db')).toEqual([expect.objectContaining({ id: 'mem-db-0', port: 5432, url: 'http://127.0.0.1:5432' })]);
    expect(s.runtime.current('app')?.request.environment).toMatchObject({ ATPROTO_SERVICE_DB_PORT: '5432' });
    await drive(s.clock, controller.stop());
    discovery.invalidate();
    expect(await discovery.lookup('db')).toEqual([]);
  });
});
