/**
 * Waiting for a service to become healthy, and watching it afterwards.
 *
 * While a service starts we probe fast: the first probe at once, then 20 ms later, each gap 1.02×
 * the previous one, up to `intervalMs`. With that factor a gap is about a fiftieth of the time
 * already waited (plus 20 ms), so readiness is seen within ~2% of the startup time (20–40 ms gaps
 * for a service up within a second; bench/health-lag.mjs measures it) instead of at the next
 * interval tick (Docker's behaviour), while a service that takes a minute costs ~200 probes.
 *
 * The rule for `retries` while starting. Docker probes every `interval` and declares a container
 * unhealthy after `retries` consecutive failures once `startPeriod` is over. Fast probes must not
 * burn that budget (ten failed probes in 200 ms are not ten failed intervals), so a wait gives up
 * on retries only when BOTH hold:
 *   - at least `retries` probes failed after the start period (all failures are consecutive: the
 *     wait ends at the first success), and
 *   - at least `retries × intervalMs` have passed since the start period ended.
 * So we never declare failure sooner than Docker would (`startPeriod + retries × interval`), and
 * slow probes (each taking up to `timeoutMs`) still get `retries` real attempts. Failures inside
 * the start period never count. `retries: 0` disables this rule: only the deadline (e.g. the
 * dependent's `dependencyTimeout`) or the signal ends the wait.
 *
 * After startup, `monitorHealth` probes every `intervalMs`, reports unhealthy after `retries`
 * consecutive failures (at least one) and healthy again on the first success.
 */
import { errorText } from '../util/error-text.js';
import { StackFailedError } from '../errors.js';
import type { HealthCheckSpec } from './registry.js';
import { realClock, type Clock } from '../util/clock.js';
import { poll, PollTimeoutError } from '../util/retry.js';
import { strategyFor } from './registry.js';
import type { HealthStrategy, HealthTarget, ProbeResult } from './types.js';

/** Delay between the first and second probe while starting. */
const FAST_PROBE_INITIAL_MS = 20;
const FAST_PROBE_FACTOR = 1.02;

export interface ProbeInfo {
  /** 1 for the first probe. */
  attempt: number;
  /** Clock time since the wait (or monitor) began, when the probe finished. */
  elapsedMs: number;
  /** The probe started inside `startPeriodMs` (its failure does not count). */
  inStartPeriod: boolean;
}

export interface WaitOptions {
  clock?: Clock;
  signal?: AbortSignal;
  /** Give up after this long (e.g. the dependent's `dependencyTimeout`); default: no deadline. */
  deadlineMs?: number;
  onProbe?: (result: ProbeResult, info: ProbeInfo) => void;
  /** Override the strategy (tests, or a custom one); default `strategyFor(check.strategy)`. */
  strategy?: HealthStrategy;
}

/** A service did not become healthy: the deadline passed, or the retries were used up. */
export class HealthCheckFailedError extends StackFailedError {
  readonly reason: 'deadline' | 'retries';
  readonly lastResult: ProbeResult | undefined;
  readonly attempts: number;
  constructor(reason: 'deadline' | 'retries', check: HealthCheckSpec, lastResult: ProbeResult | undefined, attempts: number) {
    const why = reason === 'deadline' ? 'did not become healthy before the deadline' : `failed ${check.retries} retries`;
    const last = lastResult ? `: ${lastResult.detail}` : '';
    super(`${check.strategy} health check ${why} (${attempts} probe${attempts === 1 ? '' : 's'})${last}`, {
      code: reason === 'deadline' ? 'health_timeout' : 'unhealthy',
    });
    this.reason = reason;
    this.lastResult = lastResult;
    this.attempts = attempts;
  }
}

/** One probe that never throws: a strategy's exception becomes a failed result. */
export async function probeOnce(strategy: HealthStrategy, check: HealthCheckSpec, target: HealthTarget, signal: AbortSignal): Promise<ProbeResult> {
  try {
    return await strategy.probe(check, target, signal);
  } catch (err) {
    signal.throwIfAborted();
    return { ok: false, detail: `probe error: ${errorText(err)}` };
  }
}

/** Resolves with the first healthy probe result; throws HealthCheckFailedError (or the abort reason). */
export async function waitUntilHealthy(check: HealthCheckSpec, target: HealthTarget, opts: WaitOptions = {}): Promise<ProbeResult> {
  const clock = opts.clock ?? realClock;
  const signal = opts.signal ?? new AbortController().signal;
  const strategy = opts.strategy ?? strategyFor(check.strategy);
  const start = clock.now();
  const startPeriodEnd = start + check.startPeriodMs;
  const retryBudgetMs = check.retries * check.intervalMs;
  let countedFailures = 0;
  let last: ProbeResult | undefined;
  let attempts = 0;

  const attempt = async (n: number): Promise<ProbeResult | undefined> => {
    const probeStart = clock.now();
    const result = await probeOnce(strategy, check, target, signal);
    const now = clock.now();
    last = result;
    attempts = n;
    const inStartPeriod = probeStart < startPeriodEnd;
    opts.onProbe?.(result, { attempt: n, elapsedMs: now - start, inStartPeriod });
    if (result.ok) return result;
    if (!inStartPeriod) countedFailures++;
    const retriesUsedUp = check.retries > 0 && countedFailures >= check.retries && now - startPeriodEnd >= retryBudgetMs;
    if (retriesUsedUp) throw new HealthCheckFailedError('retries', check, result, n);
    return undefined;
  };

  try {
    return await poll(attempt, {
      clock,
      signal,
      ...(opts.deadlineMs !== undefined ? { deadlineMs: opts.deadlineMs } : {}),
      initialDelayMs: FAST_PROBE_INITIAL_MS,
      maxDelayMs: Math.max(1, check.intervalMs),
      factor: FAST_PROBE_FACTOR,
    });
  } catch (err) {
    if (err instanceof PollTimeoutError) throw new HealthCheckFailedError('deadline', check, last, attempts);
    throw err;
  }
}

export interface MonitorOptions {
  clock?: Clock;
  /** Stops the monitor; `monitorHealth` then resolves. */
  signal: AbortSignal;
  /** Called on each transition (not on every probe). */
  onChange: (healthy: boolean, result: ProbeResult) => void;
  onProbe?: (result: ProbeResult, info: ProbeInfo) => void;
  strategy?: HealthStrategy;
  /** The state before the first probe; default true (the service just passed `waitUntilHealthy`). */
  initiallyHealthy?: boolean;
}

/** Probe every `intervalMs` until the signal aborts, reporting healthy ⇄ unhealthy transitions. */
export async function monitorHealth(check: HealthCheckSpec, target: HealthTarget, opts: MonitorOptions): Promise<void> {
  const clock = opts.clock ?? realClock;
  const { signal } = opts;
  const strategy = opts.strategy ?? strategyFor(check.strategy);
  const failuresToUnhealthy = Math.max(1, check.retries);
  const start = clock.now();
  let healthy = opts.initiallyHealthy ?? true;
  let consecutiveFailures = 0;

  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      await clock.sleep(check.intervalMs, signal);
    } catch {
      return; // aborted
    }
    let result: ProbeResult;
    try {
      result = await probeOnce(strategy, check, target, signal);
    } catch {
      return; // aborted mid-probe
    }
    if (signal.aborted) return;
    opts.onProbe?.(result, { attempt, elapsedMs: clock.now() - start, inStartPeriod: false });
    if (result.ok) {
      consecutiveFailures = 0;
      if (!healthy) {
        healthy = true;
        opts.onChange(true, result);
      }
    } else {
      consecutiveFailures++;
      if (healthy && consecutiveFailures >= failuresToUnhealthy) {
        healthy = false;
        opts.onChange(false, result);
      }
    }
  }
}
