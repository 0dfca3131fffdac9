/**
 * The one stopper: `down` (stop.ts), a rollback or an interruption (the engine stopping what it
 * started) and a converge (the engine retiring obsolete instances) all stop services through
 * `stopTargets`.
 *
 * Order: reverse dependency order, independent branches in parallel (`stopInReverseOrder`). For each
 * service, when its turn comes: whatever is in flight settles (`resolve`: an engine waits for a
 * start under way, so its handle is known and stopped), its registration is removed (clients stop
 * being sent to it before it goes), each instance gets its stop signal, and SIGKILL after its
 * grace period, or after `timeoutMs` when given (`down --timeout`). One failure does not keep the
 * others from stopping; the errors are returned.
 */
import type { DiscoveryManager } from '../discovery/manager.js';
import type { FoundInstance } from './converge.js';
import { deregisterInstances } from './instances.js';

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
  // A runtime that places its instances (Swarm) has them registered one by one (instances.ts).
  if (opts.discovery) await deregisterInstances(opts.discovery, subject.instances, (err) => opts.onDeregisterError?.(target.name, err));
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

// ---- the order --------------------------------------------------------------------------------

/**
 * Reverse dependency order, as parallel as the reverse graph allows: a service is stopped once
 * every service that depends on it has been stopped (dependents first). Inside a circular group
 * the members' mutual dependencies are cut where the walk finds the cycle, so a group never waits
 * for itself.
 */
export interface StopItem {
  name: string;
  dependsOn: readonly string[];
  /**
   * Absent for a service with nothing to stop (a completed task, one never started): it still
   * passes the order on, so `api → migrate → db` stops api before db though migrate is gone.
   */
  stop?: () => Promise<void>;
}

/** Runs every item's `stop`; one failing does not keep the others from stopping. Returns the errors. */
export async function stopInReverseOrder(items: readonly StopItem[]): Promise<{ name: string; error: unknown }[]> {
  const byName = new Map(items.map((i) => [i.name, i]));
  const dependents = new Map<string, string[]>(items.map((i) => [i.name, []]));
  for (const item of items) {
    for (const dep of item.dependsOn) if (dep !== item.name) dependents.get(dep)?.push(item.name);
  }
  const errors: { name: string; error: unknown }[] = [];
  const done = new Map<string, Promise<void>>();
  const visiting = new Set<string>();

  const stopped = (name: string): Promise<void> => {
    const known = done.get(name);
    if (known) return known;
    visiting.add(name);
    const before = (dependents.get(name) ?? []).filter((d) => !visiting.has(d) || done.has(d)).map(stopped);
    const item = byName.get(name)!;
    const promise = Promise.all(before).then(async () => {
      try {
        await item.stop?.();
      } catch (error) {
        errors.push({ name, error });
      }
    });
    done.set(name, promise);
    return promise;
  };

  await Promise.all(items.map((i) => stopped(i.name)));
  return errors;
}
