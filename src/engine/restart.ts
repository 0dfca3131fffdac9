/**
 * The restart policy, as a pure decision (Docker's semantics, applied by the engine for runtimes
 * that do not apply it themselves):
 * - `no`: never;
 * - `on-failure`: after a non-zero exit or a death by signal, up to `maxRetries` restarts
 *   (0 = no limit);
 * - `always` / `unless-stopped`: after any exit that we did not cause. (`unless-stopped` differs
 *   from `always` only across daemon restarts, which a foreground `stack up` does not have.)
 * Delays double from `backoffMs` up to `maxBackoffMs`.
 */
import type { RestartPolicy } from '../profile/types.js';
import type { ExitInfo } from '../runtime/types.js';
import { backoffAt } from '../util/retry.js';

export type RestartDecision = { restart: true; delayMs: number } | { restart: false; why: string };

export function restartDecision(policy: RestartPolicy, exit: ExitInfo, restartsSoFar: number): RestartDecision {
  const failed = exit.signal !== null || exit.code !== 0;
  switch (policy.policy) {
    case 'no':
      return { restart: false, why: 'restart policy is "no"' };
    case 'on-failure':
      if (!failed) return { restart: false, why: 'it exited with code 0 (restart policy "on-failure")' };
      if (policy.maxRetries > 0 && restartsSoFar >= policy.maxRetries) {
        return { restart: false, why: `gave up after ${restartsSoFar} restart${restartsSoFar === 1 ? '' : 's'} (maxRetries ${policy.maxRetries})` };
      }
      return { restart: true, delayMs: backoffDelay(policy, restartsSoFar) };
    case 'always':
    case 'unless-stopped':
      return { restart: true, delayMs: backoffDelay(policy, restartsSoFar) };
  }
}

export function backoffDelay(policy: RestartPolicy, restartsSoFar: number): number {
  return backoffAt(restartsSoFar, { initialDelayMs: policy.backoffMs, factor: 2, maxDelayMs: policy.maxBackoffMs });
}

export function describeExit(exit: ExitInfo): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  if (exit.code === null) return 'exited';
  return `exited with code ${exit.code}`;
}
