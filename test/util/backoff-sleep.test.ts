import { describe, expect, it } from 'vitest';
import { createManualClock, pause, realClock } from '../../src/util/clock.js';
import { errorText } from '../../src/util/error-text.js';
import { backoffAt, backoffDelays } from '../../src/util/retry.js';
import { RECONNECT_BACKOFF } from '../../src/discovery/resync.js';
import { restartDecision } from '../../src/engine/restart.js';
import type { RestartPolicy } from '../../src/profile/types.js';

describe('backoffAt, the one back-off policy', () => {
  it('grows geometrically from the initial delay and stops at the cap', () => {
    const opts = { initialDelayMs: 50, factor: 2, maxDelayMs: 1000 };
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => backoffAt(n, opts))).toEqual([50, 100, 200, 400, 800, 1000, 1000]);
  });

  it('stays at the cap for any number of attempts, and a zero initial delay stays zero', () => {
    expect(backoffAt(10_000, { initialDelayMs: 50, factor: 2, maxDelayMs: 1000 })).toBe(1000);
    expect(backoffAt(10_000, { initialDelayMs: 0, factor: 2, maxDelayMs: 1000 })).toBe(0);
    expect(backoffAt(0, { initialDelayMs: 5000, maxDelayMs: 1000 })).toBe(1000);
  });

  it('the generator yields the same sequence', () => {
    const opts = { initialDelayMs: 20, factor: 1.5, maxDelayMs: 100 };
    const delays = backoffDelays(opts);
    const fromGenerator = Array.from({ length: 8 }, () => delays.next().value);
    expect(fromGenerator).toEqual(Array.from({ length: 8 }, (_, n) => backoffAt(n, opts)));
  });

  it('keeps the delays discovery reconnects and restarts had before it was shared', () => {
    // Reconnecting watches waited min(2000, 50 × 2^failures) after their n-th failure.
    expect([1, 2, 3, 5, 6, 20].map((n) => backoffAt(n, RECONNECT_BACKOFF))).toEqual([100, 200, 400, 1600, 2000, 2000]);
    const policy: RestartPolicy = { policy: 'always', maxRetries: 0, backoffMs: 1000, maxBackoffMs: 30_000 };
    const delay = (n: number) => {
      const d = restartDecision(policy, { code: 1, signal: null }, n);
      return d.restart ? d.delayMs : undefined;
    };
    expect([0, 1, 2, 4, 5, 100].map(delay)).toEqual([1000, 2000, 4000, 16_000, 30_000, 30_000]);
  });
});

describe('sleep and pause', () => {
  it("a clock's sleep rejects with the signal's reason as soon as it aborts", async () => {
    const clock = createManualClock();
    const ac = new AbortController();
    const slept = clock.sleep(10_000, ac.signal);
    expect(clock.pendingTimers()).toBe(1);
    const reason = new Error('stop now');
    ac.abort(reason);
    await expect(slept).rejects.toBe(reason);
    expect(clock.pendingTimers()).toBe(0); // the timer is gone, not left to fire later
  });

  it('sleep on an already aborted signal rejects without scheduling anything', async () => {
    const clock = createManualClock();
    const reason = new Error('already');
    await expect(clock.sleep(10, AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('pause resolves when the time has passed, and quietly when the signal aborts', async () => {
    const clock = createManualClock();
    let done = false;
    const waited = pause(500, undefined, clock).then(() => (done = true));
    await clock.advance(499);
    expect(done).toBe(false);
    await clock.advance(1);
    await waited;
    expect(done).toBe(true);

    const ac = new AbortController();
    const cut = pause(60_000, ac.signal, clock);
    ac.abort();
    await expect(cut).resolves.toBeUndefined();
    expect(clock.pendingTimers()).toBe(0);
    // The real clock too: an aborted pause does not wait out its minute.
    await expect(pause(60_000, AbortSignal.abort(), realClock)).resolves.toBeUndefined();
  });
});

describe('errorText', () => {
  it("is an Error's message, or the value as text", () => {
    expect(errorText(new TypeError('bad type'))).toBe('bad type');
    expect(errorText('plain')).toBe('plain');
    expect(errorText(42)).toBe('42');
  });
});
