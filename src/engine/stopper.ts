/**
 * The one stopper: `down` (stop.ts), a rollback or an interruption (the engine stopping what it
 * started) and a converge (the engine retiring obsolete instances) all stop services through
 * `stopTargets`.
 *
 * Order: reverse dependency order, independent branches in parallel (stop-order.ts). For each
 * service, when its turn comes: whatever is in flight settles (`resolve`: an engine waits for a
 * start under way, so its handle is known and stopped), its registration is removed (clients stop
 * being sent to it before it goes), each instance gets its stop signal, and SIGKILL after its
 * grace period, or after `timeoutMs` when given (`down --timeout`). One failure does not keep the
 * others from stopping; the errors are returned.
 */
import type { DiscoveryManager } from '../discovery/manager.js';
import type { FoundInstance } from './converge.js';
import { stopInReverseOrder } from './stop-order.js';

/** What to stop for one service, known only when its turn comes. */
export interface StopSubject {
  /** Empty: nothing runs (a completed task, a service never started); the order still passes through. */
  instances: readonly FoundInstance[];
  stopSignal: string;
  gracePeriodMs: number;
  /** Its discovery registration, removed before it is stopped. */
  registration?: { service: string; id: string };
}

export interface StopTarget {
  name: string;
  dependsOn: readonly string[];
  resolve(): Promise<StopSubject> | StopSubject;
  /** Its instances are about to get their stop signal. */
  onStopping?(subject: StopSubject): void;
  /** They are gone. */
  onStopped?(subject: StopSubject): void;
  /** Nothing was left to stop. */
  onNothing?(): void;
}

export interface StopperOptions {
  /** Grace period for every service, overriding each one's own (`down --timeout`). */
  timeoutMs?: number;
  discovery?: DiscoveryManager;
  /** A registration could not be removed (it expires after one TTL). */
  onDeregisterError?(service: string, error: unknown): void;
}

export interface StopError {
  name: string;
  error: unknown;
}

/** Stop every target, dependents first; returns the services that could not be stopped. */
export async function stopTargets(targets: readonly StopTarget[], opts: StopperOptions = {}): Promise<StopError[]> {
  return stopInReverseOrder(targets.map((target) => ({ name: target.name, dependsOn: target.dependsOn, stop: () => stopOne(target, opts) })));
}

async function stopOne(target: StopTarget, opts: StopperOptions): Promise<void> {
  const subject = await target.resolve();
  if (subject.registration && opts.discovery) {
    const { service, id } = subject.registration;
    await opts.discovery.deregister(service, id).catch((err: unknown) => opts.onDeregisterError?.(target.name, err));
  }
  if (subject.instances.length === 0) {
    target.onNothing?.();
    return;
  }
  target.onStopping?.(subject);
  const stopOpts = { signal: subject.stopSignal, gracePeriodMs: opts.timeoutMs ?? subject.gracePeriodMs };
  const results = await Promise.allSettled(subject.instances.map(({ handle, runtime }) => runtime.stop(handle, stopOpts)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  target.onStopped?.(subject);
}
