/**
 * The behaviour every health strategy shares (hono's `*.case.test.ts` pattern): a strategy's tests
 * run this suite in one line, with fixtures that give it a healthy target, a failing one and, where
 * the strategy can be kept waiting, one that never answers.
 *
 *   describeStrategyCases(tcpHealth, { healthy: …, failing: …, failingDetail: /ECONNREFUSED/ });
 *
 * No case asserts a wall-clock time: "timeout honoured" means a probe of a target that never
 * answers settles, unhealthy, saying it timed out; "abort honoured" means it settles once the
 * caller's signal aborts, with a timeout far beyond the test's own.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthStrategy, HealthStrategyDefinition, HealthTarget } from '../../src/health/types.js';
import type { HealthCheckSpec } from '../../src/profile/types.js';
import { makeCheck } from './check.js';

/** One target to probe: the check's strategy-specific keys, the target, and what to clean up. */
export interface StrategyFixture {
  check?: Partial<HealthCheckSpec>;
  target?: HealthTarget;
  cleanup?(): Promise<void>;
}

export interface StrategyCaseFixtures {
  healthy(): Promise<StrategyFixture>;
  failing(): Promise<StrategyFixture>;
  /** What a failing probe's detail must say (the reason, so a user can act on it). */
  failingDetail: RegExp;
  /** A target that never answers; omit when the strategy cannot be kept waiting (file: a stat). */
  hanging?(): Promise<StrategyFixture>;
  /** The instance to test, when the default one cannot reach a test target (systemd: a stub systemctl). */
  strategy?: HealthStrategy;
}

/** Longer than any test runs: only the signal can end the probe. */
const NEVER_MS = 600_000;

export function describeStrategyCases(definition: HealthStrategyDefinition, fixtures: StrategyCaseFixtures): void {
  describe(`${definition.name} health strategy: shared cases`, () => {
    const strategy = fixtures.strategy ?? definition.create();
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });
    const use = async (make: () => Promise<StrategyFixture>): Promise<StrategyFixture> => {
      const fixture = await make();
      if (fixture.cleanup) cleanups.push(fixture.cleanup);
      return fixture;
    };
    const checkOf = (f: StrategyFixture, extra: Partial<HealthCheckSpec> = {}) =>
      makeCheck({ strategy: definition.name as HealthCheckSpec['strategy'], ...f.check, ...extra });

    it('is created under its own name, and described for `stack plan`', async () => {
      expect(strategy.name).toBe(definition.name);
      expect(definition.create().name).toBe(definition.name);
      const f = await use(fixtures.healthy);
      expect(definition.describe(checkOf(f) as never)).toMatch(new RegExp(`^${definition.name}`));
    });

    it('a healthy target is ok, with a detail', async () => {
      const f = await use(fixtures.healthy);
      const result = await strategy.probe(checkOf(f), f.target ?? {}, new AbortController().signal);
      expect(result.ok, result.detail).toBe(true);
      expect(result.detail).not.toBe('');
    });

    it('a failing target is not ok, and the detail says why', async () => {
      const f = await use(fixtures.failing);
      const result = await strategy.probe(checkOf(f), f.target ?? {}, new AbortController().signal);
      expect(result.ok).toBe(false);
      expect(result.detail).toMatch(fixtures.failingDetail);
    });

    it.skipIf(!fixtures.hanging)('a target that never answers: the check timeout ends the probe', async () => {
      const f = await use(fixtures.hanging!);
      const result = await strategy.probe(checkOf(f, { timeoutMs: 150 }), f.target ?? {}, new AbortController().signal);
      expect(result).toEqual({ ok: false, detail: expect.stringContaining('timed out after 150 ms') });
    });

    it.skipIf(!fixtures.hanging)("a target that never answers: the caller's abort ends the probe", async () => {
      const f = await use(fixtures.hanging!);
      const ac = new AbortController();
      const probe = strategy.probe(checkOf(f, { timeoutMs: NEVER_MS }), f.target ?? {}, ac.signal);
      setTimeout(() => ac.abort(), 50);
      const result = await probe.then(
        (r) => r,
        () => ({ ok: false, detail: 'aborted' }), // rejecting with the abort reason is allowed too
      );
      expect(result.ok).toBe(false);
      expect(result.detail).toMatch(/aborted/);
    });
  });
}
