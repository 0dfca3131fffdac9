import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/util/clock.js';
import { backoffDelays, poll, PollTimeoutError } from '../../src/util/retry.js';
import { runClock } from './clock.js';

describe('poll', () => {
  it('calls at once, then after geometrically growing delays capped at the maximum', async () => {
    const clock = createManualClock();
    const calls: number[] = [];
    const result = poll(
      (attempt) => {
        calls.push(clock.now());
        return attempt === 7 ? 'done' : undefined;
      },
      { clock, initialDelayMs: 10, factor: 2, maxDelayMs: 100 },
    );
    expect(await runClock(clock, result)).toEqual({ value: 'done' });
    expect(calls).toEqual([0, 10, 30, 70, 150, 250, 350]);
  });

  it('makes its last call at the deadline, then times out', async () => {
    const clock = createManualClock();
    const calls: number[] = [];
    const result = poll(() => void calls.push(clock.now()), { clock, initialDelayMs: 40, factor: 1, maxDelayMs: 40, deadlineMs: 100 });
    const { error } = await runClock(clock, result);
    expect(error).toBeInstanceOf(PollTimeoutError);
    expect(calls).toEqual([0, 40, 80, 100]);
  });

  it('stops with the abort reason when the signal aborts', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    let calls = 0;
    const result = poll(() => void calls++, { clock, initialDelayMs: 50, signal: controller.signal });
    await clock.advance(120);
    controller.abort(new Error('stop now'));
    const { error } = await runClock(clock, result);
    expect((error as Error).message).toBe('stop now');
    const callsAtAbort = calls;
    await clock.advance(10_000);
    expect(calls).toBe(callsAtAbort);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('ends on an exception from the polled function', async () => {
    const clock = createManualClock();
    const result = poll(
      (attempt) => {
        if (attempt === 3) throw new Error('broken');
        return undefined;
      },
      { clock },
    );
    expect((await runClock(clock, result)).error).toEqual(new Error('broken'));
  });

  it('backoffDelays starts at the initial delay and never exceeds the maximum', () => {
    const delays = backoffDelays({ initialDelayMs: 20, factor: 1.5, maxDelayMs: 100 });
    expect(Array.from({ length: 7 }, () => delays.next().value)).toEqual([20, 30, 45, 67.5, 100, 100, 100]);
  });
});
