import { describe, expect, it } from 'vitest';
import { HealthCheckFailedError, monitorHealth, waitUntilHealthy, type HealthStrategy, type ProbeResult } from '../../src/health/index.js';
import { createManualClock, type ManualClock } from '../../src/util/clock.js';
import { makeCheck } from './check.js';
import { runClock } from './clock.js';

/** A strategy whose answer the test decides, recording the clock time of every probe. */
function scriptedStrategy(clock: ManualClock, healthy: (now: number) => boolean) {
  const probeTimes: number[] = [];
  const strategy: HealthStrategy = {
    name: 'http',
    async probe() {
      const now = clock.now();
      probeTimes.push(now);
      return healthy(now) ? { ok: true, detail: `ok at ${now}` } : { ok: false, detail: `failing at ${now}` };
    },
  };
  return { strategy, probeTimes };
}

describe('waitUntilHealthy', () => {
  it('probes at once, then tens of milliseconds apart, backing off towards the interval', async () => {
    const clock = createManualClock();
    const { strategy, probeTimes } = scriptedStrategy(clock, (now) => now >= 3000);
    const check = makeCheck({ intervalMs: 1000, retries: 0 });
    const { value } = await runClock(clock, waitUntilHealthy(check, {}, { clock, strategy }));
    expect(value?.ok).toBe(true);
    expect(probeTimes[0]).toBe(0);
    expect(probeTimes[1]).toBe(20);
    const gaps = probeTimes.slice(1).map((t, i) => t - probeTimes[i]!);
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).toBeGreaterThanOrEqual(gaps[i - 1]!);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(1000);
    // Readiness at t=3000 was seen no later than one (capped) gap after it.
    expect(probeTimes.at(-1)).toBeLessThan(3000 + 1000);
  });

  it('sees readiness within the fast-probe gap while starting', async () => {
    const clock = createManualClock();
    const { strategy, probeTimes } = scriptedStrategy(clock, (now) => now >= 100);
    const { value } = await runClock(clock, waitUntilHealthy(makeCheck({ intervalMs: 30_000 }), {}, { clock, strategy }));
    expect(value).toEqual({ ok: true, detail: expect.stringContaining('ok at') });
    expect(probeTimes.at(-1)! - 100).toBeLessThan(100); // not the next 30 s tick
  });

  it('does not count failures inside the start period, and gives up after retries × interval past it', async () => {
    const clock = createManualClock();
    const { strategy, probeTimes } = scriptedStrategy(clock, () => false);
    const check = makeCheck({ intervalMs: 1000, retries: 3, startPeriodMs: 5000 });
    const infos: boolean[] = [];
    const { error } = await runClock(clock, waitUntilHealthy(check, {}, { clock, strategy, onProbe: (_r, info) => infos.push(info.inStartPeriod) }));
    expect(error).toBeInstanceOf(HealthCheckFailedError);
    const failure = error as HealthCheckFailedError;
    expect(failure.reason).toBe('retries');
    expect(failure.code).toBe('unhealthy');
    expect(failure.message).toContain('failing at');
    // Never sooner than Docker would: startPeriod + retries × interval; and within one interval of it.
    expect(probeTimes.at(-1)).toBeGreaterThanOrEqual(5000 + 3 * 1000);
    expect(probeTimes.at(-1)).toBeLessThanOrEqual(5000 + 4 * 1000);
    expect(infos.filter(Boolean).length).toBeGreaterThan(3); // many fast probes in the start period…
    expect(failure.attempts).toBe(probeTimes.length);
  });

  it('succeeds when readiness comes after many fast failures but within the retry budget', async () => {
    const clock = createManualClock();
    const { strategy, probeTimes } = scriptedStrategy(clock, (now) => now >= 2500);
    const check = makeCheck({ intervalMs: 1000, retries: 3, startPeriodMs: 0 });
    const { value } = await runClock(clock, waitUntilHealthy(check, {}, { clock, strategy }));
    expect(value?.ok).toBe(true);
    expect(probeTimes.length).toBeGreaterThan(3); // more failed probes than `retries`: fast ones do not burn it
  });

  it('gives slow probes their retries even when the time budget is spent', async () => {
    const clock = createManualClock();
    let probes = 0;
    // Each probe takes 5 s (e.g. a timeout), longer than retries × interval.
    const strategy: HealthStrategy = {
      name: 'tcp',
      probe: async (): Promise<ProbeResult> => {
        probes++;
        await clock.sleep(5000);
        return { ok: false, detail: 'timed out' };
      },
    };
    const check = makeCheck({ strategy: 'tcp', intervalMs: 100, retries: 3 });
    const { error } = await runClock(clock, waitUntilHealthy(check, {}, { clock, strategy }));
    expect((error as HealthCheckFailedError).reason).toBe('retries');
    expect(probes).toBe(3);
  });

  it('throws with the last probe detail once the deadline passes', async () => {
    const clock = createManualClock();
    const { strategy, probeTimes } = scriptedStrategy(clock, () => false);
    const check = makeCheck({ intervalMs: 1000, retries: 0 });
    const { error } = await runClock(clock, waitUntilHealthy(check, {}, { clock, strategy, deadlineMs: 2500 }));
    const failure = error as HealthCheckFailedError;
    expect(failure.reason).toBe('deadline');
    expect(failure.code).toBe('health_timeout');
    expect(failure.lastResult).toEqual({ ok: false, detail: 'failing at 2500' });
    expect(probeTimes.at(-1)).toBe(2500);
  });

  it('stops probing when aborted', async () => {
    const clock = createManualClock();
    const { strategy, probeTimes } = scriptedStrategy(clock, () => false);
    const controller = new AbortController();
    const waiting = waitUntilHealthy(makeCheck({ retries: 0 }), {}, { clock, strategy, signal: controller.signal });
    await clock.advance(200);
    controller.abort(new Error('cancelled'));
    const { error } = await runClock(clock, waiting);
    expect((error as Error).message).toBe('cancelled');
    const count = probeTimes.length;
    await clock.advance(60_000);
    expect(probeTimes.length).toBe(count);
  });

  it('probes a real service until it listens (fixture-free: a late http server)', async () => {
    const { createServer } = await import('node:http');
    const { freePort } = await import('../helpers/net.js');
    const port = await freePort();
    const server = createServer((_req, res) => res.writeHead(200).end());
    const listenLater = setTimeout(() => server.listen(port, '127.0.0.1'), 150);
    const probes: boolean[] = [];
    try {
      const result = await waitUntilHealthy(makeCheck({ port, endpoint: '/' }), {}, { deadlineMs: 20_000, onProbe: (r) => probes.push(r.ok) });
      expect(result.ok).toBe(true);
      expect(probes.at(-1)).toBe(true);
      expect(probes.filter((ok) => !ok).length).toBeGreaterThan(0);
    } finally {
      clearTimeout(listenLater);
      server.close();
    }
  });
});

describe('monitorHealth', () => {
  it('reports unhealthy after `retries` consecutive failures, and healthy again on the first success', async () => {
    const clock = createManualClock();
    let healthy = true;
    const { strategy, probeTimes } = scriptedStrategy(clock, () => healthy);
    const changes: Array<[boolean, string]> = [];
    const controller = new AbortController();
    const monitoring = monitorHealth(
      makeCheck({ intervalMs: 1000, retries: 3 }),
      {},
      {
        clock,
        strategy,
        signal: controller.signal,
        onChange: (isHealthy, result) => changes.push([isHealthy, result.detail]),
      },
    );

    await clock.advance(2000);
    expect(probeTimes).toEqual([1000, 2000]);
    expect(changes).toEqual([]);

    healthy = false;
    await clock.advance(2000); // two failures: not yet
    expect(changes).toEqual([]);
    healthy = true;
    await clock.advance(1000); // a success resets the count
    healthy = false;
    await clock.advance(2000);
    expect(changes).toEqual([]);
    await clock.advance(1000); // third consecutive failure
    expect(changes).toEqual([[false, 'failing at 8000']]);
    await clock.advance(3000); // stays unhealthy, no repeated reports
    expect(changes).toHaveLength(1);

    healthy = true;
    await clock.advance(1000);
    expect(changes).toEqual([
      [false, 'failing at 8000'],
      [true, 'ok at 12000'],
    ]);

    controller.abort();
    await monitoring;
    expect(clock.pendingTimers()).toBe(0);
  });
});
