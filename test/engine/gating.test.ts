/** Integration tests: the engine with real processes (behaviour.test.ts has the same cases on the memory runtime and a manual clock). */
import { afterEach, describe, expect, it } from 'vitest';
import { startStack, type StackController } from '../../src/engine/index.js';
import { freePort } from '../helpers/net.js';
import { EventLog, httpService, makeStack, nodeProgram, survivors, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function run(services: Record<string, unknown>, extra: Record<string, unknown> = {}, onFailure: 'rollback' | 'leave' = 'rollback') {
  const { dir, cleanup } = await tempDir();
  const input = makeStack('gating', dir, services, extra);
  const log = new EventLog();
  const controller: StackController = startStack(input, { onEvent: log.push, onFailure });
  cleanups.push(async () => {
    await controller.stop();
    expect(survivors(log.pids())).toEqual([]);
    await cleanup();
  });
  const report = await controller.ready;
  return { report, log, controller };
}

describe('dependency gates', () => {
  it('required: the dependent starts only after its dependency is healthy', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { report, log } = await run({
      a: httpService(pa, { READY_AFTER_MS: '300' }),
      b: httpService(pb, {}, { dependencies: ['a'] }),
    });
    expect(report.outcome).toBe('up');
    expect(log.at('a', 'healthy')).toBeGreaterThan(-1);
    expect(log.at('b', 'starting')).toBeGreaterThan(log.at('a', 'healthy'));
  });

  it('soft: the dependent starts once the dependency started, before it is healthy', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { report, log } = await run({
      a: httpService(pa, { READY_AFTER_MS: '800' }),
      b: httpService(pb, {}, { dependencies: [{ name: 'a', type: 'soft' }] }),
    });
    expect(report.outcome).toBe('up');
    expect(log.at('b', 'starting')).toBeGreaterThan(log.at('a', 'checking'));
    expect(log.at('b', 'starting')).toBeLessThan(log.at('a', 'healthy'));
  });

  it('optional: the dependent starts after the dependency failed, with a warning', async () => {
    const pb = await freePort();
    const { report, log } = await run(
      {
        a: { runtime: 'process', command: ['false'] },
        b: httpService(pb, {}, { dependencies: [{ name: 'a', type: 'optional' }] }),
      },
      {},
      'leave',
    );
    expect(log.at('a', 'failed')).toBeGreaterThan(-1);
    expect(log.at('b', 'starting')).toBeGreaterThan(log.at('a', 'failed'));
    expect(log.states('b')).toContain('healthy');
    expect(report.warnings.some((w) => w.includes("optional dependency 'a'"))).toBe(true);
    // a failed, so `up` failed, even though b runs.
    expect(report.outcome).toBe('failed');
    expect(report.failed.map((f) => f.service)).toEqual(['a']);
  });

  it('a circular group starts together; its dependents wait for every member', async () => {
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const { report, log } = await run({
      a: httpService(pa, { READY_AFTER_MS: '200' }, { dependencies: [{ name: 'b', type: 'circular' }] }),
      b: httpService(pb, { READY_AFTER_MS: '600' }, { dependencies: [{ name: 'a', type: 'circular' }] }),
      c: httpService(pc, {}, { dependencies: ['a'] }),
    });
    expect(report.outcome).toBe('up');
    // Both members start before either is healthy.
    expect(Math.max(log.at('a', 'starting'), log.at('b', 'starting'))).toBeLessThan(Math.min(log.at('a', 'healthy'), log.at('b', 'healthy')));
    // c depends on a only, yet waits for the whole group.
    expect(log.at('c', 'starting')).toBeGreaterThan(log.at('b', 'healthy'));
  });

  it("a dependent's own health check of a dependency opens its gate, not the dependency's own check", async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { log } = await run(
      {
        a: httpService(pa, { HEALTH_FAIL: '1' }),
        b: httpService(pb, {}, { dependencies: [{ name: 'a', healthCheck: { strategy: 'tcp', port: pa, interval: '50ms', retries: 0 } }] }),
      },
      { coordination: { dependencyTimeout: '1500ms' } },
      'leave',
    );
    // b judged a by a TCP connect and started while a's own /health still failed.
    expect(log.at('b', 'starting')).toBeGreaterThan(log.at('a', 'checking'));
    expect(log.at('b', 'starting')).toBeLessThan(log.at('a', 'failed'));
    expect(log.at('a', 'healthy')).toBe(-1);
  });

  it('a task gates its dependent on completing with exit 0', async () => {
    const pb = await freePort();
    const { report, log } = await run({
      migrate: nodeProgram('setTimeout(() => process.exit(0), 200)', { kind: 'task' }),
      app: httpService(pb, {}, { dependencies: ['migrate'] }),
    });
    expect(report.outcome).toBe('up');
    expect(log.states('migrate')).toEqual(['waiting', 'starting', 'running', 'completed']);
    expect(log.at('app', 'starting')).toBeGreaterThan(log.at('migrate', 'completed'));
  });

  it('a failed task blocks its dependent', async () => {
    const pb = await freePort();
    const { report, log } = await run({
      migrate: nodeProgram('process.exit(2)', { kind: 'task' }),
      app: httpService(pb, {}, { dependencies: ['migrate'] }),
    });
    expect(report.outcome).toBe('failed');
    expect(report.failed).toEqual([{ service: 'migrate', reason: 'task exited with code 2' }]);
    expect(log.at('app', 'starting')).toBe(-1);
    expect(report.blocked[0]?.service).toBe('app');
    expect(report.blocked[0]?.reason).toContain("'migrate'");
  });
});

describe('failures', () => {
  it('a required dependency fails: the dependent is never started, and rollback leaves no process', async () => {
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const { report, log, controller } = await run({
      ok: httpService(pa),
      bad: nodeProgram('setTimeout(() => process.exit(1), 100)', { healthCheck: { strategy: 'tcp', port: pb, interval: '50ms', retries: 0 } }),
      app: httpService(pc, {}, { dependencies: ['ok', 'bad'] }),
    });
    expect(report.outcome).toBe('failed');
    expect(report.failed.map((f) => f.service)).toEqual(['bad']);
    expect(report.blocked).toEqual([{ service: 'app', reason: expect.stringContaining("requires 'bad'") }]);
    expect(log.at('app', 'starting')).toBe(-1);
    // Rolled back: what started was stopped, and a final state for everyone.
    expect(log.states('ok')).toContain('stopped');
    const final = Object.fromEntries(controller.status().map((s) => [s.name, s.state]));
    expect(final).toEqual({ ok: 'stopped', bad: 'failed', app: 'blocked' });
    expect(survivors(log.pids())).toEqual([]);
  });

  it('a health check that never passes is bounded by dependencyTimeout', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { report, log } = await run(
      {
        a: httpService(pa, { HEALTH_FAIL: '1' }),
        b: httpService(pb, {}, { dependencies: ['a'] }),
      },
      { coordination: { dependencyTimeout: '700ms' } },
    );
    expect(report.outcome).toBe('failed');
    expect(report.failed[0]?.reason).toMatch(/did not become healthy before the deadline/);
    expect(report.blocked[0]).toEqual({ service: 'b', reason: expect.stringContaining("requires 'a'") });
    expect(log.at('b', 'starting')).toBe(-1);
    expect(survivors(log.pids())).toEqual([]);
  });

  it('enableHealthChecks: false — healthy means started', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { report, log } = await run(
      {
        a: httpService(pa, { HEALTH_FAIL: '1' }),
        b: httpService(pb, { HEALTH_FAIL: '1' }, { dependencies: ['a'] }),
      },
      { coordination: { enableHealthChecks: false } },
    );
    expect(report.outcome).toBe('up');
    expect(log.at('b', 'starting')).toBeGreaterThan(log.at('a', 'healthy'));
  });
});
