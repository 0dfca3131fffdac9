/**
 * A swappable clock: everything that waits (polling, health probing, backoff) asks a Clock,
 * so tests can drive time by hand instead of sleeping (tests never assert wall-clock times).
 */

export interface Clock {
  /** Milliseconds on a monotonic-ish scale; only differences are meaningful. */
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason as soon as `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock: `performance.now()` (monotonic) and `setTimeout`. */
export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    sleepWith(ms, signal, (fn, delay) => {
      const timer = setTimeout(fn, delay);
      return () => clearTimeout(timer);
    }),
};

/**
 * Wait `ms` on `clock`, ending early and quietly (resolving, not rejecting) when `signal` aborts:
 * for loops that test the signal themselves after the wait, such as reconnecting watches.
 */
export function pause(ms: number, signal?: AbortSignal, clock: Clock = realClock): Promise<void> {
  return clock.sleep(ms, signal).catch(() => undefined);
}

/** A clock whose time only moves when a test calls `advance`. */
export interface ManualClock extends Clock {
  /**
   * Move time forward by `ms`, firing every due timer in time order. Between timers it lets
   * pending promise callbacks and I/O callbacks run, so code woken by one timer can schedule the
   * next sleep before time moves on.
   */
  advance(ms: number): Promise<void>;
  /** Advance to the next pending timer (if any) and fire it; returns false when none is pending. */
  advanceToNext(): Promise<boolean>;
  /** Number of sleeps currently waiting. */
  pendingTimers(): number;
}

interface ManualTimer {
  at: number;
  seq: number;
  fire: () => void;
}

export function createManualClock(startMs = 0): ManualClock {
  let current = startMs;
  let seq = 0;
  const timers: ManualTimer[] = [];

  const schedule = (fn: () => void, delay: number): (() => void) => {
    const timer: ManualTimer = { at: current + Math.max(0, delay), seq: seq++, fire: fn };
    timers.push(timer);
    return () => {
      const i = timers.indexOf(timer);
      if (i >= 0) timers.splice(i, 1);
    };
  };

  const nextDue = (until: number): ManualTimer | undefined => {
    let best: ManualTimer | undefined;
    for (const t of timers) {
      if (t.at <= until && (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq))) best = t;
    }
    return best;
  };

  const fireOne = async (timer: ManualTimer): Promise<void> => {
    timers.splice(timers.indexOf(timer), 1);
    current = Math.max(current, timer.at);
    timer.fire();
    await settle();
  };

  return {
    now: () => current,
    sleep: (ms, signal) => sleepWith(ms, signal, schedule),
    async advance(ms) {
      await settle();
      const until = current + ms;
      for (let t = nextDue(until); t; t = nextDue(until)) await fireOne(t);
      current = until;
      await settle();
    },
    async advanceToNext() {
      await settle();
      const t = nextDue(Number.POSITIVE_INFINITY);
      if (!t) return false;
      await fireOne(t);
      return true;
    },
    pendingTimers: () => timers.length,
  };
}

/** Let queued promise reactions and immediate callbacks run (a few rounds, for chains of awaits). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

function sleepWith(ms: number, signal: AbortSignal | undefined, schedule: (fn: () => void, delay: number) => () => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      cancel();
      reject(signal?.reason);
    };
    const cancel = schedule(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
