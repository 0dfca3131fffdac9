/**
 * `stopStack`: stop a stack from any process — the one that started it, another one, or a fresh
 * one after the starter was killed — and leave nothing behind.
 *
 * What runs is found twice over: the state file (handles, dependencies, registrations) and each
 * runtime's own discovery (pid files, Docker labels), so an instance started just before a crash,
 * before the state file caught up, is still found. A live `stack up` that holds the stack's lock
 * is asked to stop first (supervisor.ts: SIGTERM, with `timeoutMs` passed on; it stops its
 * services in reverse order and exits), so it does not restart what we stop.
 *
 * Order: dependents first, as parallel as the reverse graph allows; each service gets its stop
 * signal, then SIGKILL after its grace period (or `timeoutMs`). Then registrations are removed,
 * runtimes tear down what they prepared, and the state file and lock are deleted. Idempotent:
 * with nothing running it reports exactly that.
 */
import { errorText } from '../util/error-text.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { StackGraph } from '../plan/types.js';
import type { RuntimeName } from '../profile/types.js';
import type { ServiceHandle } from '../runtime/types.js';
import { realClock, type Clock } from '../util/clock.js';
import { lockFilePath, lockOwnerAlive, readLock } from './lock.js';
import type { RuntimeSet } from './runtimes.js';
import { readStateFile, removeStateFile, type StackStateFile } from './state.js';
import { stopTargets, type StopTarget } from './stopper.js';
import { askOwnerToStop } from './supervisor.js';
import type { EngineEvent } from './types.js';
import { rm } from 'node:fs/promises';

export interface StopStackOptions {
  stack: string;
  stateDir: string;
  runtimes: RuntimeSet;
  /** Runtimes to look in besides those the state file names (the profile's). */
  runtimeNames?: RuntimeName[];
  /** The profile's graph: dependencies of services the state file does not know. */
  graph?: StackGraph;
  /** Where registrations are removed; a function is called once the owner (if any) has been asked to stop. */
  discovery?: DiscoveryManager | (() => Promise<DiscoveryManager | undefined>);
  /** Grace period for every service, overriding each one's own. */
  timeoutMs?: number;
  /** Say what would be stopped; stop nothing. */
  dryRun?: boolean;
  clock?: Clock;
  onEvent?: (event: EngineEvent) => void;
}

export interface StoppedService {
  service: string;
  runtime: RuntimeName;
  id: string;
  pid?: number;
  /** Set when stopping it failed. */
  error?: string;
}

export interface StopReport {
  stack: string;
  /** Nothing was running and nothing was left to clean. */
  nothingRunning: boolean;
  services: StoppedService[];
  /** A `stack up` that held the lock and was asked to stop. */
  owner?: { pid: number; stopped: boolean };
  dryRun: boolean;
}

interface Target {
  name: string;
  handle: ServiceHandle;
  dependsOn: string[];
  stopSignal: string;
  gracePeriodMs: number;
  registration?: { service: string; id: string };
}

const DEFAULT_GRACE_MS = 10_000;

export async function stopStack(opts: StopStackOptions): Promise<StopReport> {
  const { stack, stateDir } = opts;
  const clock = opts.clock ?? realClock;
  const emit = (e: EngineEvent) => opts.onEvent?.(e);
  const report: StopReport = { stack, nothingRunning: false, services: [], dryRun: Boolean(opts.dryRun) };
  // The profile's runtimes are made and connected, and discovery opened, while the owner stops
  // (Docker: dockerode's import is tens of milliseconds of this thread: only once it was signalled).
  let discoveryReady: Promise<DiscoveryManager | undefined> | undefined;
  const openDiscovery = () => (discoveryReady ??= typeof opts.discovery === 'function' ? opts.discovery() : Promise.resolve(opts.discovery));
  const connect = () => {
    for (const name of opts.runtimeNames ?? [])
      void opts.runtimes.get(name).then(
        (r) => r.connect?.(),
        () => undefined,
      );
    void openDiscovery();
  };

  // 1. A live `stack up` owns the stack: ask it to stop first.
  const lock = await readLock(stateDir, stack);
  const ownerAlive = lock !== undefined && lock.pid !== process.pid && lockOwnerAlive(lock);
  if (lock && ownerAlive && !opts.dryRun) {
    const graces = Object.values((await readStateFile(stateDir, stack))?.services ?? {}).map((s) => s.stopGracePeriodMs);
    const request = opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {};
    report.owner = { pid: lock.pid, stopped: await askOwnerToStop(stateDir, lock, request, graces, clock, connect) };
  } else if (lock && ownerAlive) {
    report.owner = { pid: lock.pid, stopped: false };
  } else {
    connect();
  }

  // 2. What runs: the state file, plus every runtime's own view.
  const discovery = await openDiscovery();
  const state = await readStateFile(stateDir, stack);
  const targets = await findTargets(opts, state);
  if (targets.length === 0 && !state && !lock && !report.owner) {
    report.nothingRunning = true;
    return report;
  }
  for (const t of targets) {
    report.services.push({ service: t.name, runtime: t.handle.runtime, id: t.handle.id, ...(t.handle.pid !== undefined ? { pid: t.handle.pid } : {}) });
  }
  if (opts.dryRun) return report;

  // 3. Dependents first.
  emit({ type: 'stack', stack, phase: 'stopping', elapsedMs: 0 });
  const t0 = clock.now();
  const passThrough = knownServices(opts, state)
    .filter((name) => !targets.some((t) => t.name === name))
    .map((name): StopTarget => ({
      name,
      dependsOn: state?.services[name]?.dependsOn ?? opts.graph?.dependenciesOf(name).map((e) => e.to) ?? [],
      resolve: () => ({ instances: [], stopSignal: 'SIGTERM', gracePeriodMs: 0 }),
    }));
  // Replicas of a service are one target: the order knows services, not instances.
  const byName = new Map<string, Target[]>();
  for (const t of targets) byName.set(t.name, [...(byName.get(t.name) ?? []), t]);
  const errors = await stopTargets([...passThrough, ...[...byName.values()].map((group) => downTarget(group, opts, discovery, clock, emit))], {
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(discovery ? { discovery } : {}),
    onDeregisterError: (service, err) => emit({ type: 'warning', service, message: `could not deregister: ${errorText(err)}` }),
  });
  for (const { name, error } of errors) {
    const entry = report.services.find((s) => s.service === name);
    if (entry) entry.error = errorText(error);
  }

  // 4. Leave nothing: registrations without a handle, runtime resources, state and lock.
  if (discovery && state) {
    for (const status of Object.values(state.services)) {
      if (status.registration && !targets.some((t) => t.name === status.name)) {
        await discovery.deregister(status.registration.service, status.registration.id).catch(() => undefined);
      }
      for (const replica of status.replicas ?? []) {
        if (replica.registration) await discovery.deregister(replica.registration.service, replica.registration.id).catch(() => undefined);
      }
    }
  }
  if (errors.length === 0) {
    for (const name of runtimeNamesOf(opts, state)) await (await opts.runtimes.get(name)).teardown(stack).catch(() => undefined);
    await removeStateFile(stateDir);
    const holder = await readLock(stateDir, stack);
    if (holder && !lockOwnerAlive(holder)) await rm(lockFilePath(stateDir), { force: true });
  }
  emit({ type: 'stack', stack, phase: 'stopped', elapsedMs: clock.now() - t0 });
  return report;
}

/** One running service, for the stopper: its events say what happens to it. */
function downTarget(
  group: Target[],
  opts: StopStackOptions,
  discovery: DiscoveryManager | undefined,
  clock: Clock,
  emit: (e: EngineEvent) => void,
): StopTarget {
  let since = 0;
  const t = group.find((g) => g.handle.replica === 0) ?? group[0]!;
  const pid = t.handle.pid;
  return {
    name: t.name,
    dependsOn: t.dependsOn,
    resolve: async () => {
      // Other replicas' registrations go first too (the stopper removes one per target).
      for (const other of group)
        if (other !== t && other.registration && discovery)
          await discovery.deregister(other.registration.service, other.registration.id).catch(() => undefined);
      return {
        instances: await Promise.all(group.map(async (g) => ({ handle: g.handle, runtime: await opts.runtimes.get(g.handle.runtime) }))),
        stopSignal: t.stopSignal,
        gracePeriodMs: t.gracePeriodMs,
        ...(t.registration ? { registration: t.registration } : {}),
      };
    },
    onStopping: () => {
      since = clock.now();
      emit({ type: 'state', service: t.name, state: 'stopping', previous: 'healthy', elapsedMs: 0, ...(pid !== undefined ? { pid } : {}) });
    },
    onStopped: () => emit({ type: 'state', service: t.name, state: 'stopped', previous: 'stopping', elapsedMs: clock.now() - since }),
  };
}

/** Every service the state file or the profile knows (for the order of stops). */
function knownServices(opts: StopStackOptions, state: StackStateFile | undefined): string[] {
  return [...new Set([...Object.keys(state?.services ?? {}), ...(opts.graph ? [...opts.graph.services.keys()] : [])])];
}

function runtimeNamesOf(opts: StopStackOptions, state: StackStateFile | undefined): RuntimeName[] {
  const names = new Set<RuntimeName>(opts.runtimeNames ?? []);
  for (const s of Object.values(state?.services ?? {})) if (s.handle) names.add(s.handle.runtime);
  if (names.size === 0) names.add('process');
  return [...names];
}

async function findTargets(opts: StopStackOptions, state: StackStateFile | undefined): Promise<Target[]> {
  const byKey = new Map<string, Target>();
  const key = (h: ServiceHandle) => `${h.runtime}/${h.service}/${h.replica}`;
  const dependsOnOf = (service: string) => state?.services[service]?.dependsOn ?? opts.graph?.dependenciesOf(service).map((e) => e.to) ?? [];
  const spec = (service: string) => opts.graph?.services.get(service);
  const known = Object.values(state?.services ?? {}).flatMap((st) => [st, ...(st.replicas ?? [])].filter((s) => s.handle));
  // Every handle inspected at once (in the state file's order), and each runtime's own list with them.
  const inspected = known.map(async (status) => (await opts.runtimes.get(status.handle!.runtime)).inspect(status.handle!).catch(() => ({ running: true })));
  const discovered = runtimeNamesOf(opts, state).map(async (name) => (await opts.runtimes.get(name)).discover(opts.stack));
  for (const p of [...inspected, ...discovered]) p.catch(() => undefined); // awaited below, in order
  for (const [i, status] of known.entries()) {
    // A task that completed, or a service that exited, has nothing left to stop; its pid file
    // (if any) is cleaned by teardown. Stopping a dead handle is harmless but noisy.
    if (!(await inspected[i]!).running || !status.handle) continue;
    byKey.set(key(status.handle), {
      name: status.name,
      handle: status.handle,
      dependsOn: status.dependsOn,
      stopSignal: status.stopSignal,
      gracePeriodMs: status.stopGracePeriodMs,
      ...(status.registration ? { registration: status.registration } : {}),
    });
  }
  for (const list of discovered) {
    for (const handle of await list) {
      if (byKey.has(key(handle))) continue;
      const s = spec(handle.service);
      byKey.set(key(handle), {
        name: handle.service,
        handle,
        dependsOn: dependsOnOf(handle.service),
        stopSignal: state?.services[handle.service]?.stopSignal ?? s?.stopSignal ?? 'SIGTERM',
        gracePeriodMs: state?.services[handle.service]?.stopGracePeriodMs ?? s?.stopGracePeriodMs ?? DEFAULT_GRACE_MS,
      });
    }
  }
  return [...byKey.values()];
}
