/**
 * The one retry/poll helper (after testcontainers-node's `common/retry.ts`): call `fn` at once,
 * then again after a short delay that grows geometrically towards a maximum, until it yields a
 * value, the deadline passes, or the signal aborts. Time comes from a swappable Clock.
 */
import { StackError, ExitCode } from '../errors.js';
import { realClock, type Clock } from './clock.js';

export interface BackoffOptions {
  /** Delay before the second call; default 20 ms ("tens of milliseconds"). */
  initialDelayMs?: number;
  /** The delay never grows beyond this; default 1000 ms. */
  maxDelayMs?: number;
  /** Each delay is the previous one times this; default 1.5. */
  factor?: number;
}

export interface PollOptions extends BackoffOptions {
  clock?: Clock;
  /**
   * How long to keep trying, measured from the first call. The last call happens at the
   * deadline itself (the final sleep is shortened to land on it), then `PollTimeoutError`.
   * Omit to poll until the signal aborts.
   */
  deadlineMs?: number;
  signal?: AbortSignal;
}

/** `poll` ran out of time. */
export class PollTimeoutError extends StackError {
  readonly attempts: number;
  constructor(attempts: number, deadlineMs: number) {
    super(`gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} in ${deadlineMs} ms`, {
      code: 'timeout',
      exitCode: ExitCode.stackFailed,
    });
    this.attempts = attempts;
  }
}

/**
 * The one back-off policy: the delay before retry number `attempt` (counting from 0) is
 * initial × factor^attempt, capped at max. Every retry loop in the tool (polls, restarts,
 * reconnecting watches) takes its delays from here, each with its own options.
 */
export function backoffAt(attempt: number, opts: BackoffOptions = {}): number {
  const max = Math.max(0, opts.maxDelayMs ?? 1000);
  const factor = Math.max(1, opts.factor ?? 1.5);
  const initial = Math.max(0, opts.initialDelayMs ?? 20);
  // 0 × Infinity is NaN: a zero initial delay stays zero however many attempts.
  const grown = initial === 0 ? 0 : initial * factor ** Math.max(0, attempt);
  return Math.min(max, grown);
}

/** The delays between calls: initial, initial×factor, … capped at max. Endless. */
export function* backoffDelays(opts: BackoffOptions = {}): Generator<number, never> {
  for (let attempt = 0; ; attempt++) yield backoffAt(attempt, opts);
}

/**
 * Call `fn(attempt)` (attempt counts from 1) until it returns something other than `undefined`,
 * and resolve with that. An exception from `fn` ends the poll (callers that want to retry on
 * errors catch inside `fn`). Rejects with the signal's reason on abort, `PollTimeoutError` past
 * the deadline.
 */
export async function poll<T>(fn: (attempt: number) => Promise<T | undefined> | T | undefined, opts: PollOptions = {}): Promise<Exclude<T, undefined>> {
  const clock = opts.clock ?? realClock;
  const { signal, deadlineMs } = opts;
  const deadline = deadlineMs === undefined ? Number.POSITIVE_INFINITY : clock.now() + deadlineMs;
  const delays = backoffDelays(opts);

  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    const value = await fn(attempt);
    if (value !== undefined) return value as Exclude<T, undefined>;
    signal?.throwIfAborted();

    const remaining = deadline - clock.now();
    if (remaining <= 0) throw new PollTimeoutError(attempt, deadlineMs ?? 0);
    await clock.sleep(Math.min(delays.next().value, remaining), signal);
  }
}
