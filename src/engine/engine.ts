/**
 * The health-gated startup engine: take a plan and make it real, as fast as the graph allows.
 *
 * Scheduling is event-driven. Every state change is recorded in the gate source (gates.ts); the
 * scheduler then looks at every unit still waiting (a service, or a circular group that starts
 * together) and starts it the moment its gates open — not when a "wave" finishes.
 *
 * Choices, and why:
 * - `dependencyTimeout` bounds every wait through the dependency's own readiness: once a
 *   service has been started it has `dependencyTimeout` to become healthy (a task: to complete),
 *   after which it is failed and its dependents are blocked (or, optional, start with a
 *   warning). A dependency that never starts is itself blocked or failed, which settles the wait
 *   the same way. So no wait hangs, and a long chain of slow services is not failed merely for
 *   being long.
 * - A service without a health check (or with `enableHealthChecks: false`) is healthy once it
 *   has been started and is still running `settleMs` later (default 200 ms): a program that
 *   dies at once on a bad flag is failed, not "healthy".
 * - A task (`kind: task`) runs to completion: exit 0 is `completed` and opens its dependents'
 *   gates, anything else is `failed`.
 * - Startup runs until every service has settled (healthy, completed, failed or blocked), so one
 *   report says everything that went wrong. If anything failed or was blocked, `up` failed: with
 *   `onFailure: 'rollback'` (the default) everything that started is stopped again, dependents
 *   first; with `'leave'` it is left as it is.
 * - The restart policy applies after startup, for runtimes that do not apply it themselves
 *   (`runtime.appliesRestartPolicy`: Docker does). An exit during startup is a failure: a health
 *   gate must not be satisfied by a service that keeps crashing. An unhealthy service is
 *   reported, not restarted (Docker's behaviour).
 * - Only one instance per service: `replicas` above 1 is reported as a warning and ignored.
 * - Discovery: a service is registered once ready, with the profile's TTL, and heartbeated for as
 *   long as this engine runs it. Nothing registers "forever" (etcd leases, NATS bucket TTLs and
 *   Consul TTL checks cannot), so a stack that should outlive its `stack up` needs a process that
 *   keeps running the engine: `stack up --detach` starts one in the background (cli/commands/up.ts).
 * - A stack that already runs (detached, or left by an `up` that died) is converged, as by
 *   `docker compose up` (converge.ts): an unchanged instance is kept — it still passes its gates
 *   and is registered, and is reported `healthy` with reason `unchanged` — a changed one is
 *   replaced when its gates open, and one the profile no longer has is stopped first. A live
 *   foreground `up` holding the lock still refuses (`stack_locked`); a detached supervisor is
 *   relieved first (lock.ts). A failed converge rolls back like any failed `up`: the whole
 *   stack is stopped, kept instances too, so exit 1 never leaves half of an old and half of a
 *   new stack running (`--on-failure leave` keeps what runs).
 */
import path from 'node:path';
import { InterruptedError } from '../errors.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import type { DependencyGraph, Plan } from '../graph/types.js';
import { monitorHealth, waitUntilHealthy } from '../health/monitor.js';
import { healthTargetFor } from '../health/target.js';
import type { HealthTarget, ProbeResult } from '../health/types.js';
import type { HealthCheckSpec, Profile, RuntimeName, ServiceSpec } from '../profile/types.js';
import type { ExitInfo, RenderedFile, Runtime, ServiceHandle, StartRequest } from '../runtime/types.js';
import { realClock, type Clock } from '../util/clock.js';
import { findInstances, sameInstance, sortOut, type SortedInstances } from './converge.js';
import { createLocalGates, readinessOf } from './gates.js';
import { acquireLock, type StackLock } from './lock.js';
import { describeExit, restartDecision } from './restart.js';
import { createRuntimeSet, fixedRuntimeSet, type RuntimeSet } from './runtimes.js';
import { createStateWriter, readStateFile, removeStateFile, stateDirOf, type StackStateFile } from './state.js';
import { stopInReverseOrder } from './stop-order.js';
import { SETTLED_STATES, type EngineEvent, type ServiceState, type ServiceStatus, type StackPhase, type StartupReport } from './types.js';

/** What a service's templates produced: files for the runtime, variables for its environment. */
export interface RenderedConfigs {
  files: RenderedFile[];
  environment: Record<string, string>;
}

export interface RenderContext {
  stack: string;
  profile: Profile;
  /** Host folder for this service's rendered files. */
  configDir: string;
  /** Registered instances of the services it depends on (healthy ones only). */
  dependencies: Record<string, ServiceInstance[]>;
  /** Every instance this run has made healthy so far (templates may name any service). */
  instances: ServiceInstance[];
}

/** Called just before a service starts (templates render when their dependencies are registered). */
export type RenderConfigs = (service: ServiceSpec, context: RenderContext) => Promise<RenderedConfigs>;

export interface StartStackInput {
  profile: Profile;
  graph: DependencyGraph;
  plan: Plan;
}

export interface StartStackOptions {
  /** Runtimes by name; default: created on demand (the process runtime, Docker imported lazily). */
  runtimes?: RuntimeSet | Partial<Record<RuntimeName, Runtime>>;
  discovery?: DiscoveryManager;
  renderConfigs?: RenderConfigs;
  clock?: Clock;
  /** Aborting stops the stack (reverse order); a startup then reports `interrupted`. */
  signal?: AbortSignal;
  onEvent?: (event: EngineEvent) => void;
  /** Default `rollback`. */
  onFailure?: 'rollback' | 'leave';
  /** Default: the profile's `stateDir`, else `.stack/<stack>` under `cwd`. */
  stateDir?: string;
  cwd?: string;
  /**
   * Keep monitoring health and apply restart policies after startup; default true. Discovery
   * heartbeats run either way, from registration until `stop()` or `detach()`: a registration
   * lives one TTL (`discovery.ttl`) past its last heartbeat, and no backend keeps one forever.
   */
  supervise?: boolean;
  /**
   * This run is a detached supervisor (`stack up --detach`): its lock says so, and a later `up`
   * relieves it (lock.ts) instead of being refused. Whoever runs it must answer
   * `RELIEVE_SIGNAL` with `detach()`.
   */
  detached?: boolean;
  /** A service without a health check counts as healthy once it has run this long; default 200 ms. */
  settleMs?: number;
}

export interface StackController {
  readonly stack: string;
  readonly stateDir: string;
  /** Resolves when startup is over. Rejects only for errors before anything started (invalid input, unreachable, locked). */
  readonly ready: Promise<StartupReport>;
  /** Resolves once the stack has been stopped or detached. */
  readonly done: Promise<void>;
  status(): ServiceStatus[];
  subscribe(listener: (event: EngineEvent) => void): () => void;
  /** Stop everything that started, dependents first; removes the state file and the lock. */
  stop(opts?: { timeoutMs?: number }): Promise<void>;
  /**
   * Stop watching (health, restarts, heartbeats), leave services running, release the lock.
   * Registrations are left to the next `up`, which renews them, or to expire after one TTL.
   */
  detach(): Promise<void>;
}

interface Slot {
  spec: ServiceSpec;
  status: ServiceStatus;
  runtime?: Runtime;
  /** Cancels everything this service's lifecycle is waiting for. */
  abort: AbortController;
  /** Clock time its current state began (elapsed time in events). */
  since: number;
  exit?: Promise<ExitInfo>;
  request?: StartRequest;
  instance?: ServiceInstance;
  stopKeepAlive?: () => Promise<void>;
  /** Ends the health monitor of the current instance. */
  watch?: AbortController;
  /** The lifecycle in flight (start → healthy, or a restart). */
  lifecycle?: Promise<void>;
  stopping: boolean;
  /** The instance an earlier `up` left running, until `start` keeps or replaces it. */
  previous?: ServiceHandle;
}

export function startStack(input: StartStackInput, opts: StartStackOptions = {}): StackController {
  const { profile, graph, plan } = input;
  const stack = plan.stack;
  const clock = opts.clock ?? realClock;
  const stateDir = opts.stateDir ?? stateDirOf(profile, opts.cwd);
  const runtimes: RuntimeSet = !opts.runtimes
    ? createRuntimeSet({ stateDir, docker: profile.docker, swarm: profile.swarm })
    : 'get' in opts.runtimes && typeof opts.runtimes.get === 'function'
      ? (opts.runtimes as RuntimeSet)
      : fixedRuntimeSet(opts.runtimes as Partial<Record<RuntimeName, Runtime>>);
  const ownsRuntimes = !opts.runtimes;
  const onFailure = opts.onFailure ?? 'rollback';
  const supervise = opts.supervise ?? true;
  const settleMs = opts.settleMs ?? 200;
  const timeoutMs = profile.coordination.dependencyTimeoutMs;
  const healthChecks = profile.coordination.enableHealthChecks;
  const ttlMs = profile.discovery.ttlMs;
  const t0 = clock.now();
  const startedAtIso = new Date().toISOString();

  const listeners = new Set<(e: EngineEvent) => void>();
  if (opts.onEvent) listeners.add(opts.onEvent);
  const emit = (event: EngineEvent) => {
    for (const l of listeners) {
      try {
        l(event);
      } catch {
        // a listener's bug must not break the engine
      }
    }
  };
  const warn = (message: string, service?: string) => emit({ type: 'warning', message, ...(service ? { service } : {}) });

  const gates = createLocalGates(graph);
  const slots = new Map<string, Slot>();
  const inRun = (name: string) => slots.has(name);
  let phase: StackPhase = 'starting';
  let lock: StackLock | undefined;
  let stopping: Promise<void> | undefined;
  let finished = false;
  /** What already ran when this `up` began (a converge); empty for a fresh start. */
  let found: SortedInstances = { previous: new Map(), obsolete: [], carried: [], retired: [] };
  const writer = createStateWriter(stateDir, (err) => warn(`cannot write the state file: ${err instanceof Error ? err.message : String(err)}`));

  const snapshot = (): StackStateFile => ({
    version: 1,
    stack,
    owner: { pid: process.pid, ...(lock?.info.processStartTime ? { processStartTime: lock.info.processStartTime } : {}), startedAt: startedAtIso },
    phase,
    updatedAt: new Date().toISOString(),
    profile: { ...(profile.source.file ? { file: profile.source.file } : {}), ...(profile.source.builtin ? { builtin: profile.source.builtin } : {}) },
    services: Object.fromEntries([...found.carried.map((s) => [s.name, s] as const), ...[...slots].map(([name, slot]) => [name, slot.status] as const)]),
  });
  const persist = () => {
    if (!finished) writer.save(snapshot);
  };
  const setPhase = (next: StackPhase) => {
    phase = next;
    emit({ type: 'stack', stack, phase, elapsedMs: clock.now() - t0 });
    persist();
  };

  const setState = (slot: Slot, state: ServiceState, reason?: string) => {
    const previous = slot.status.state;
    const now = clock.now();
    unsettled += (SETTLED_STATES.has(previous) ? 1 : 0) - (SETTLED_STATES.has(state) ? 1 : 0);
    slot.status.state = state;
    if (reason !== undefined) slot.status.reason = reason;
    else if (state !== 'stopped' && state !== 'stopping') delete slot.status.reason;
    const elapsedMs = now - slot.since;
    slot.since = now;
    emit({ type: 'state', service: slot.spec.name, state, previous, elapsedMs, ...(reason !== undefined ? { reason } : {}), ...(slot.status.handle?.pid !== undefined ? { pid: slot.status.handle.pid } : {}) });
    gates.record(slot.spec.name, { state, kind: slot.spec.kind, started: slot.status.started, ...(slot.status.reason ? { reason: slot.status.reason } : {}) });
    persist();
    checkSettled();
  };

  // ---- startup bookkeeping -------------------------------------------------------------------

  let resolveSettled!: () => void;
  const allSettled = new Promise<void>((resolve) => (resolveSettled = resolve));
  /** Services not yet settled; kept as a count so a state change costs O(1) here. */
  let unsettled = 0;
  const checkSettled = () => {
    if (unsettled === 0) resolveSettled();
  };

  // Units: circular groups start together; every other service alone.
  interface Unit {
    members: string[];
    launched: boolean;
  }
  const unitOf = new Map<string, Unit>();
  /**
   * Units whose gates may have changed since the scheduler last looked. A change to a service
   * only concerns its dependents' units (and, for a circular group member, the units depending
   * on any member), so a state change costs its fan-out, not a scan of the whole stack.
   */
  const dirty = new Set<Unit>();

  let scheduled = false;
  const onGateChange = (service: string) => {
    const group = graph.groupOf(service);
    const changed = group === undefined ? [service] : (graph.groups[group] ?? [service]);
    for (const member of changed) {
      for (const edge of graph.dependentsOf(member)) {
        const unit = unitOf.get(edge.from);
        if (unit && !unit.launched) dirty.add(unit);
      }
    }
    if (dirty.size === 0 || scheduled) return;
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      schedule();
    });
  };
  const schedule = () => {
    if (stopping || phase !== 'starting') return;
    const units = [...dirty];
    dirty.clear();
    for (const unit of units) {
      if (unit.launched) continue;
      const verdict = readinessOf(unit.members, graph, gates, inRun);
      if (verdict.kind === 'waiting') continue;
      unit.launched = true;
      for (const name of unit.members) {
        const slot = slots.get(name)!;
        if (verdict.kind === 'blocked') {
          setState(slot, 'blocked', verdict.reason);
          continue;
        }
        for (const w of verdict.warnings) warn(w, name);
        slot.lifecycle = bringUp(slot).catch((err) => warn(`internal error starting '${name}': ${errorText(err)}`, name));
      }
    }
  };

  // ---- one service -------------------------------------------------------------------------

  const instanceOf = (spec: ServiceSpec): ServiceInstance => ({
    id: `${stack}-${spec.name}-0`,
    service: spec.name,
    address: spec.address,
    ...(spec.port !== undefined ? { port: spec.port, url: `http://${spec.address}:${spec.port}` } : {}),
    tags: [...spec.tags],
    meta: { ...spec.meta, stack },
    registeredAt: new Date().toISOString(),
  });

  /** Instances of the healthy services `spec` depends on (for templates and env injection). */
  const dependencyInstances = (spec: ServiceSpec): Record<string, ServiceInstance[]> => {
    const out: Record<string, ServiceInstance[]> = {};
    for (const edge of graph.dependenciesOf(spec.name)) {
      const dep = slots.get(edge.to);
      if (dep?.instance) out[edge.to] = [dep.instance];
    }
    return out;
  };

  const buildRequest = async (slot: Slot): Promise<StartRequest> => {
    const spec = slot.spec;
    const configDir = path.join(stateDir, 'config', spec.name);
    const dependencies = dependencyInstances(spec);
    const injected = opts.discovery ? opts.discovery.environmentFor(Object.values(dependencies).flat()) : {};
    const instances = [...slots.values()].flatMap((s) => (s.instance ? [s.instance] : []));
    const rendered = opts.renderConfigs ? await opts.renderConfigs(spec, { stack, profile, configDir, dependencies, instances }) : { files: [], environment: {} };
    // Like Nomad's NOMAD_ALLOC_DIR / NOMAD_TASK_DIR, a process service is told where its stack
    // keeps state (launchers put data under it) and where its rendered configs are, as absolute
    // paths. Host paths mean nothing inside a container, so Docker services do not get them. The
    // profile's own environment may override them.
    const dirs: Record<string, string> = spec.runtime === 'process' ? { STACK_STATE_DIR: path.resolve(stateDir), STACK_CONFIG_DIR: path.resolve(configDir) } : {};
    return {
      stack,
      service: spec,
      replica: 0,
      environment: { ...dirs, ...injected, ...spec.environment, ...rendered.environment },
      files: rendered.files,
      configDir,
      stateDir,
      profileDir: profile.source.dir,
    };
  };

  const healthTarget = (slot: Slot, runtime: Runtime, handle: ServiceHandle, check: HealthCheckSpec): HealthTarget =>
    healthTargetFor(runtime, handle, slot.spec, check, { profileDir: profile.source.dir, environment: slot.request?.environment ?? {} });

  const recordHealth = (slot: Slot, result: ProbeResult) => {
    slot.status.lastHealth = { ok: result.ok, detail: result.detail, at: new Date().toISOString() };
  };

  /**
   * Start a service and wait until it is ready: healthy (a service) or completed (a task).
   * Resolves with a failure reason, or undefined when ready. Never throws.
   */
  const startAndAwaitReady = async (slot: Slot): Promise<string | undefined> => {
    const spec = slot.spec;
    const signal = slot.abort.signal;
    let runtime: Runtime;
    let handle: ServiceHandle;
    try {
      runtime = slot.runtime ?? (await runtimes.get(spec.runtime));
      slot.runtime = runtime;
      slot.request = await buildRequest(slot);
      signal.throwIfAborted();
      handle = await runtime.start(slot.request);
    } catch (err) {
      await forgetPreviousUnlessRunning(slot);
      return signal.aborted ? 'stopped before it started' : `start failed: ${errorText(err)}`;
    }
    // The runtime kept the earlier instance (same config hash), or replaced it.
    const kept = sameInstance(slot.previous, handle);
    delete slot.previous;
    if (kept) slot.status.unchanged = true;
    else delete slot.status.unchanged;
    slot.status.handle = handle;
    slot.status.started = true;
    slot.status.startedAt = handle.startedAt;
    const exit = runtime.wait(handle);
    slot.exit = exit;
    if (signal.aborted) return 'stopped while starting';
    setState(slot, spec.kind === 'task' ? 'running' : 'checking');
    checkForDependents(slot, runtime, handle);

    // Whichever comes first: ready, exit, deadline, or abort.
    const race = new AbortController();
    const onAbort = () => race.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const exited = exit.then((e) => ({ kind: 'exit' as const, exit: e }));
      if (spec.kind === 'task') {
        const deadline = clock.sleep(timeoutMs, race.signal).then(() => ({ kind: 'deadline' as const }), () => ({ kind: 'aborted' as const }));
        const first = await Promise.race([exited, deadline]);
        if (first.kind === 'exit') return first.exit.code === 0 && first.exit.signal === null ? undefined : `task ${describeExit(first.exit)}`;
        if (first.kind === 'deadline') return `task did not complete within dependencyTimeout (${timeoutMs} ms)`;
        return 'stopped';
      }
      const check = healthChecks ? spec.healthCheck : undefined;
      let ready: Promise<{ kind: 'ready' } | { kind: 'unready'; reason: string } | { kind: 'aborted' }>;
      if (!check) {
        // A kept instance has run far longer than the settle time already.
        ready = kept ? Promise.resolve({ kind: 'ready' as const }) : clock.sleep(settleMs, race.signal).then(() => ({ kind: 'ready' as const }), () => ({ kind: 'aborted' as const }));
      } else {
        ready = waitUntilHealthy(check, healthTarget(slot, runtime, handle, check), {
          clock,
          signal: race.signal,
          deadlineMs: timeoutMs,
          onProbe: (result) => recordHealth(slot, result),
        }).then(
          () => ({ kind: 'ready' as const }),
          (err) => (race.signal.aborted ? { kind: 'aborted' as const } : { kind: 'unready' as const, reason: errorText(err) }),
        );
      }
      const first = await Promise.race([exited, ready]);
      if (first.kind === 'exit') return `${describeExit(first.exit)} before it became healthy`;
      if (first.kind === 'unready') return first.reason;
      if (first.kind === 'aborted') return 'stopped';
      slot.status.health = check ? 'healthy' : 'none';
      return undefined;
    } finally {
      signal.removeEventListener('abort', onAbort);
      race.abort();
    }
  };

  /**
   * Dependents that judge this service by their own check (`dependencies[].healthCheck`) probe it
   * themselves, from the moment it has started, within `dependencyTimeout`.
   */
  const checkForDependents = (slot: Slot, runtime: Runtime, handle: ServiceHandle) => {
    if (!healthChecks) return;
    for (const edge of graph.dependentsOf(slot.spec.name)) {
      const own = graph.services.get(edge.from)?.dependencies.find((d) => d.name === slot.spec.name)?.healthCheck;
      if (!own || edge.gate === 'started' || !slots.has(edge.from)) continue;
      waitUntilHealthy(own, healthTarget(slot, runtime, handle, own), { clock, signal: slot.abort.signal, deadlineMs: timeoutMs }).then(
        () => gates.recordEdgeCheck(edge.from, edge.to, { ok: true }),
        (err) => {
          if (!slot.abort.signal.aborted) gates.recordEdgeCheck(edge.from, edge.to, { ok: false, reason: errorText(err) });
        },
      );
    }
  };

  const register = async (slot: Slot) => {
    const instance = instanceOf(slot.spec);
    slot.instance = instance;
    const discovery = opts.discovery;
    if (!discovery?.canRegister) return;
    const { registeredAt: _r, expiresAt: _e, ...input } = instance;
    try {
      await discovery.register(input, { ttlMs });
      slot.status.registration = { service: instance.service, id: instance.id };
      slot.stopKeepAlive = discovery.keepAlive(input, profile.discovery.heartbeatIntervalMs, { ttlMs });
      emit({ type: 'registered', service: slot.spec.name, id: instance.id });
    } catch (err) {
      warn(`could not register '${slot.spec.name}' in discovery: ${errorText(err)}`, slot.spec.name);
    }
  };

  const deregister = async (slot: Slot) => {
    const stop = slot.stopKeepAlive;
    delete slot.stopKeepAlive;
    await stop?.().catch(() => undefined);
    const reg = slot.status.registration;
    if (!reg || !opts.discovery) return;
    delete slot.status.registration;
    await opts.discovery.deregister(reg.service, reg.id).catch((err) => warn(`could not deregister '${reg.service}': ${errorText(err)}`, reg.service));
  };

  const bringUp = async (slot: Slot) => {
    setState(slot, 'starting');
    const failure = await startAndAwaitReady(slot);
    if (slot.stopping) return;
    if (failure !== undefined) {
      setState(slot, 'failed', failure);
      return;
    }
    if (slot.spec.kind === 'task') {
      setState(slot, 'completed');
      return;
    }
    await register(slot);
    if (slot.stopping) return;
    setState(slot, 'healthy', slot.status.unchanged ? 'unchanged' : undefined);
  };

  /** After a failed start: keep showing (and later stopping) the earlier instance only while it runs. */
  const forgetPreviousUnlessRunning = async (slot: Slot) => {
    const previous = slot.previous;
    if (!previous) return;
    delete slot.previous;
    const runs = await slot.runtime?.inspect(previous).then((s) => s.running, () => false);
    if (runs || slot.status.handle !== previous) return;
    delete slot.status.handle;
    delete slot.status.startedAt;
  };

  // ---- after startup: health monitoring and the restart policy --------------------------------

  const watchInstance = (slot: Slot) => {
    const runtime = slot.runtime;
    const handle = slot.status.handle;
    if (!runtime || !handle || slot.spec.kind === 'task') return;
    const watch = new AbortController();
    slot.watch = watch;
    const check = healthChecks ? slot.spec.healthCheck : undefined;
    if (check) {
      void monitorHealth(check, healthTarget(slot, runtime, handle, check), {
        clock,
        signal: AbortSignal.any([slot.abort.signal, watch.signal]),
        onProbe: (result) => {
          recordHealth(slot, result);
          persist();
        },
        onChange: (healthy, result) => {
          slot.status.health = healthy ? 'healthy' : 'unhealthy';
          emit({ type: 'health', service: slot.spec.name, healthy, detail: result.detail });
          persist();
        },
      });
    }
    void slot.exit?.then((exit) => {
      watch.abort();
      return onExit(slot, runtime, exit);
    });
  };

  const onExit = async (slot: Slot, runtime: Runtime, exit: ExitInfo) => {
    if (slot.stopping || slot.abort.signal.aborted) return;
    slot.status.health = 'unhealthy';
    await deregister(slot);
    if (runtime.appliesRestartPolicy) {
      setState(slot, 'failed', describeExit(exit));
      return;
    }
    const decision = restartDecision(slot.spec.restart, exit, slot.status.restarts);
    if (!decision.restart) {
      // A clean exit is `stopped` (Docker's "Exited (0)"); anything else is a failure.
      const clean = exit.code === 0 && exit.signal === null;
      setState(slot, clean ? 'stopped' : 'failed', `${describeExit(exit)}; not restarted: ${decision.why}`);
      return;
    }
    emit({ type: 'restart', service: slot.spec.name, attempt: slot.status.restarts + 1, delayMs: decision.delayMs, exit: describeExit(exit) });
    setState(slot, 'waiting', `${describeExit(exit)}; restarting in ${decision.delayMs} ms`);
    try {
      await clock.sleep(decision.delayMs, slot.abort.signal);
    } catch {
      return; // stopping
    }
    slot.status.restarts++;
    setState(slot, 'starting');
    // Tracked like the first start, so a stop arriving now waits for the new handle and stops it.
    const attempt = startAndAwaitReady(slot);
    slot.lifecycle = attempt.then(() => undefined);
    const failure = await attempt;
    if (slot.stopping) return;
    if (failure !== undefined) {
      // Counts as another failed run: the policy decides again (its limit ends the loop).
      setState(slot, 'failed', failure);
      const runtimeNow = slot.runtime;
      if (runtimeNow && slot.exit) {
        const stillRunning = await runtimeNow.inspect(slot.status.handle!).then((s) => s.running, () => false);
        if (stillRunning) await runtimeNow.stop(slot.status.handle!, { signal: slot.spec.stopSignal, gracePeriodMs: slot.spec.stopGracePeriodMs }).catch(() => undefined);
        await onExit(slot, runtimeNow, { code: 1, signal: null });
      }
      return;
    }
    await register(slot);
    setState(slot, 'healthy');
    watchInstance(slot);
  };

  // ---- stopping -------------------------------------------------------------------------------

  const stopSlot = async (slot: Slot, graceOverrideMs?: number) => {
    slot.stopping = true;
    slot.abort.abort();
    await slot.lifecycle; // let an in-flight start finish, so its handle is known and stopped
    await deregister(slot);
    const handle = slot.status.handle;
    const runtime = slot.runtime;
    if (!handle || !runtime || slot.status.state === 'stopped') {
      if (!SETTLED_STATES.has(slot.status.state)) setState(slot, 'stopped', 'not started');
      return;
    }
    const wasRunning = slot.status.state !== 'completed' && slot.status.state !== 'failed';
    if (wasRunning) setState(slot, 'stopping');
    try {
      await runtime.stop(handle, { signal: slot.spec.stopSignal, gracePeriodMs: graceOverrideMs ?? slot.spec.stopGracePeriodMs });
    } catch (err) {
      warn(`could not stop '${slot.spec.name}': ${errorText(err)}`, slot.spec.name);
      return;
    }
    // A failed service keeps `failed` as its final state (with its reason), even once stopped.
    if (wasRunning) setState(slot, 'stopped');
  };

  const stopAll = (graceOverrideMs?: number): Promise<void> => {
    stopping ??= (async () => {
      setPhase('stopping');
      for (const slot of slots.values()) slot.abort.abort(); // cancel waits and monitors at once
      await stopInReverseOrder(
        [...slots.values()].map((slot) => ({
          name: slot.spec.name,
          dependsOn: slot.status.dependsOn,
          stop: () => stopSlot(slot, graceOverrideMs),
        })),
      );
      for (const runtime of runtimes.created()) await runtime.teardown(stack).catch(() => undefined);
      setPhase('stopped');
      await finish(true);
    })();
    return stopping;
  };

  /** Write the last state (or remove it once nothing runs), release the lock and runtimes. */
  const finish = async (removeState: boolean) => {
    await writer.flush();
    finished = true;
    // Unselected services of an earlier run still run: their state stays for `status` and `down`.
    if (removeState && found.carried.length === 0) await removeStateFile(stateDir);
    await lock?.release();
    if (ownsRuntimes) await runtimes.close();
    resolveDone();
  };

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));

  // ---- the run --------------------------------------------------------------------------------

  const report = (outcome: StartupReport['outcome'], warnings: string[]): StartupReport => {
    const services = [...slots.values()].map((s) => structuredClone(s.status));
    return {
      outcome,
      services,
      failed: services.filter((s) => s.state === 'failed').map((s) => ({ service: s.name, reason: s.reason ?? 'failed' })),
      blocked: services.filter((s) => s.state === 'blocked').map((s) => ({ service: s.name, reason: s.reason ?? '' })),
      warnings,
      elapsedMs: clock.now() - t0,
    };
  };

  const run = async (): Promise<StartupReport> => {
    const warnings: string[] = [];
    listeners.add((e) => {
      if (e.type === 'warning') warnings.push(e.service ? `${e.service}: ${e.message}` : e.message);
    });
    const runServices = plan.services.map((p) => graph.services.get(p.name)!).filter(Boolean);
    const blockedServices = plan.blocked.flatMap((b) => graph.services.get(b.service) ?? []);
    try {
      lock = await acquireLock(stateDir, stack, opts.detached ? { command: 'up --detach', detached: true, clock } : { clock });
      const lastState = await readStateFile(stateDir);
      const planned = [...runServices, ...blockedServices];
      const instances = await findInstances(stack, runtimes, new Set(planned.map((s) => s.runtime)), lastState, (m) => warn(m));
      found = sortOut(instances, graph, new Set(planned.map((s) => s.name)), lastState);
      const byRuntime = new Map<RuntimeName, ServiceSpec[]>();
      for (const spec of runServices) byRuntime.set(spec.runtime, [...(byRuntime.get(spec.runtime) ?? []), spec]);
      for (const [name, specs] of byRuntime) await (await runtimes.get(name)).prepare(stack, specs, opts.signal ? { signal: opts.signal } : {});
    } catch (err) {
      await lock?.release();
      if (ownsRuntimes) await runtimes.close();
      resolveDone();
      // Ctrl-C while preparing (pulling images): that is an interruption, not an error.
      if (opts.signal?.aborted) throw new InterruptedError(String(opts.signal.reason ?? 'SIGINT'));
      throw err;
    }

    const statusOf = (spec: ServiceSpec): ServiceStatus => ({
      name: spec.name,
      kind: spec.kind,
      state: 'pending',
      started: false,
      health: spec.kind === 'task' || !healthChecks || !spec.healthCheck ? 'none' : 'unknown',
      restarts: 0,
      dependsOn: graph.dependenciesOf(spec.name).map((e) => e.to),
      stopSignal: spec.stopSignal,
      stopGracePeriodMs: spec.stopGracePeriodMs,
    });
    for (const spec of runServices) {
      if (spec.replicas > 1) warn(`replicas: ${spec.replicas} is not supported yet; starting one instance`, spec.name);
      slots.set(spec.name, { spec, status: statusOf(spec), abort: new AbortController(), since: t0, stopping: false });
    }
    for (const b of plan.blocked) {
      const spec = graph.services.get(b.service);
      if (spec) slots.set(spec.name, { spec, status: { ...statusOf(spec), state: 'blocked', reason: b.reason }, abort: new AbortController(), since: t0, stopping: false });
    }
    // A running instance is shown (and stopped, should this run stop) until `start` keeps or replaces it.
    for (const [name, { handle, runtime }] of found.previous) {
      const slot = slots.get(name)!;
      slot.previous = handle;
      slot.runtime = runtime;
      slot.status.handle = handle;
      slot.status.startedAt = handle.startedAt;
    }
    unsettled = [...slots.values()].filter((slot) => !SETTLED_STATES.has(slot.status.state)).length;
    for (const group of plan.groups) {
      const unit: Unit = { members: [...group], launched: false };
      for (const m of group) unitOf.set(m, unit);
    }
    for (const spec of runServices) if (!unitOf.has(spec.name)) unitOf.set(spec.name, { members: [spec.name], launched: false });
    for (const unit of unitOf.values()) dirty.add(unit); // every unit is looked at once

    setPhase('starting');
    await retireObsolete();
    for (const slot of slots.values()) {
      if (slot.status.state === 'pending') setState(slot, 'waiting');
      else gates.record(slot.spec.name, { state: slot.status.state, kind: slot.spec.kind, started: false });
    }
    gates.subscribe(onGateChange);
    const onAbort = () => void stopAll();
    if (opts.signal?.aborted) void stopAll();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    void done.then(() => opts.signal?.removeEventListener('abort', onAbort));
    schedule();
    checkSettled();

    await Promise.race([allSettled, done, stopping ?? new Promise<never>(() => {})]);
    if (stopping) {
      await stopping;
      return report('interrupted', warnings);
    }
    const bad = [...slots.values()].some((s) => s.status.state === 'failed' || s.status.state === 'blocked');
    if (!bad) {
      setPhase('up');
      if (supervise) for (const slot of slots.values()) watchInstance(slot);
      return report('up', warnings);
    }
    if (onFailure === 'rollback') {
      const before = report('failed', warnings);
      await stopAll();
      // Keep why each service failed; the rollback itself stopped the rest.
      const after = report('failed', warnings);
      return { ...after, failed: before.failed, blocked: before.blocked };
    }
    setPhase('failed');
    await finish(false);
    return report('failed', warnings);
  };

  /**
   * Converging: stop the instances of services this run no longer has (dependents first, as
   * `down` would), before anything starts, and drop registrations nobody renews any more.
   */
  const retireObsolete = async () => {
    const previousStatus = (service: string) => found.retired.find((s) => s.name === service);
    const byService = new Map<string, typeof found.obsolete>();
    for (const instance of found.obsolete) byService.set(instance.handle.service, [...(byService.get(instance.handle.service) ?? []), instance]);
    const stopService = async (service: string, instances: typeof found.obsolete) => {
      const known = previousStatus(service);
      const spec = graph.services.get(service);
      const stopOpts = { signal: known?.stopSignal ?? spec?.stopSignal ?? 'SIGTERM', gracePeriodMs: known?.stopGracePeriodMs ?? spec?.stopGracePeriodMs ?? 10_000 };
      const since = clock.now();
      const pid = instances[0]?.handle.pid;
      const reason = instances.map((i) => i.reason).join('; ');
      emit({ type: 'state', service, state: 'stopping', previous: 'healthy', elapsedMs: 0, reason, ...(pid !== undefined ? { pid } : {}) });
      await Promise.all(instances.map(({ handle, runtime }) => runtime.stop(handle, stopOpts)));
      emit({ type: 'state', service, state: 'stopped', previous: 'stopping', elapsedMs: clock.now() - since, reason });
    };
    const errors = await stopInReverseOrder(
      [...byService].map(([service, instances]) => ({
        name: service,
        dependsOn: previousStatus(service)?.dependsOn ?? graph.dependenciesOf(service).map((e) => e.to),
        stop: () => stopService(service, instances),
      })),
    );
    for (const { name, error } of errors) warn(`could not stop the obsolete instance of '${name}': ${errorText(error)}`, name);
    if (!opts.discovery) return;
    for (const status of found.retired) {
      const reg = status.registration;
      if (reg) await opts.discovery.deregister(reg.service, reg.id).catch((err) => warn(`could not deregister '${reg.service}': ${errorText(err)}`, reg.service));
    }
  };

  const ready = run();
  ready.catch(() => undefined);

  return {
    stack,
    stateDir,
    ready,
    done,
    status: () => [...slots.values()].map((s) => structuredClone(s.status)),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop(stopOpts = {}) {
      await stopAll(stopOpts.timeoutMs);
    },
    async detach() {
      if (stopping) return stopping;
      for (const slot of slots.values()) {
        slot.stopping = true; // an exit from now on is nobody's business here
        slot.abort.abort();
        const stop = slot.stopKeepAlive;
        delete slot.stopKeepAlive;
        await stop?.().catch(() => undefined);
      }
      setPhase('detached');
      await finish(false);
    },
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
