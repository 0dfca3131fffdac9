/**
 * One run of `startStack` (engine.ts explains the choices): it owns the run's state — the
 * services' lifecycles, the gates, the phase, the lock, the state file — and ties the parts
 * together: the scheduler (scheduler.ts) says which units start, each service's lifecycle
 * (lifecycle.ts) brings it up and watches it, the stopper (stopper.ts) stops it all.
 */
import { InterruptedError } from '../errors.js';
import { runtimeDefinition } from '../drivers/runtime/registry.js';
import type { ServiceInstance } from '../discovery/types.js';
import type { Plan, StackGraph } from '../plan/types.js';
import type { HealthStrategy } from '../health/types.js';
import type { HealthStrategyName, Profile, RuntimeName, ServiceSpec } from '../profile/types.js';
import type { Runtime } from '../runtime/types.js';
import { realClock, type Clock } from '../util/clock.js';
import { findInstances, sortOut, type SortedInstances } from './converge.js';
import { recordingRenderer, serveControl, type ControlHandlers, type ControlServer } from './control.js';
import type { RenderConfigs, StackController, StartStackInput, StartStackOptions } from './engine.js';
import { composeGates, createLocalGates, type LocalGates } from './gates.js';
import { claimToken, registeredHost, registrationId, remoteTargets } from './hosts.js';
import { createRemoteGates, type RemoteGates } from './remote-gates.js';
import { placementOf, runsPerHost } from '../plan/hosts.js';
import { errorText } from '../util/error-text.js';
import { ServiceLifecycle, type LifecycleHost, type LifecycleSettings } from './lifecycle.js';
import { acquireLock, type StackLock } from './lock.js';
import { TemplateReloader } from './reload.js';
import { fixedRuntimeSet, runtimeSetFor, type RuntimeSet } from './runtimes.js';
import { decide, unitsAffectedBy, unitsOf, type Unit } from './scheduler.js';
import { createStateWriter, readStateFile, removeStateFile, stateDirOf, type StackStateFile, type StateWriter } from './state.js';
import { stopTargets, type StopTarget } from './stopper.js';
import { SETTLED_STATES, type EngineEvent, type ServiceState, type ServiceStatus, type StackPhase, type StartupReport } from './types.js';

const EMPTY_FOUND: SortedInstances = { previous: new Map(), replicas: [], obsolete: [], carried: [], retired: [] };

export class StackRun implements LifecycleHost {
  readonly stack: string;
  readonly profile: Profile;
  readonly graph: StackGraph;
  readonly stateDir: string;
  /** Where this run keeps its lock, state file, renders record and control channel (`runDir`; default the state folder). */
  private readonly runDir: string;
  readonly clock: Clock;
  readonly runtimes: RuntimeSet;
  readonly discovery: StartStackOptions['discovery'];
  readonly renderConfigs: RenderConfigs | undefined;
  readonly gates: LocalGates;
  readonly settings: LifecycleSettings;
  readonly hosts: LifecycleHost['hosts'];
  readonly strategyFor: ((name: HealthStrategyName) => HealthStrategy) | undefined;
  private readonly plan: Plan;
  private readonly ownsRuntimes: boolean;
  private readonly t0: number;
  private readonly startedAtIso = new Date().toISOString();
  private readonly listeners = new Set<(e: EngineEvent) => void>();
  private readonly lifecycles = new Map<string, ServiceLifecycle>();
  private readonly writer: StateWriter;
  private phase: StackPhase = 'starting';
  private lock: StackLock | undefined;
  private stopping: Promise<void> | undefined;
  private finished = false;
  /** What already ran when this `up` began (a converge); empty for a fresh start. */
  private found: SortedInstances = EMPTY_FOUND;
  /** Services not yet settled; kept as a count so a state change costs O(1) here. */
  private unsettled = 0;
  private unitOf = new Map<string, Unit>();
  private readonly launched = new Set<Unit>();
  /** Units whose gates may have changed since the scheduler last looked. */
  private readonly dirty = new Set<Unit>();
  private scheduled = false;
  private readonly allSettled = deferred();
  private readonly done = deferred();
  /** After startup: templates follow discovery (with `rerender` and a discovery that can look up). */
  private readonly reloader: TemplateReloader | undefined;
  /** After startup: services down (not healthy) since; their required dependents are blocked after `dependencyTimeout`. */
  private readonly down = new Map<string, AbortController>();
  /** Dependencies this run does not start (another host's, external), met from discovery (remote-gates.ts). */
  private readonly remote: RemoteGates | undefined;
  /** After startup: whether each service was last seen up (here or elsewhere), and where it was seen elsewhere. */
  private readonly seen = new Map<string, { up: boolean; at: string }>();
  private readonly supervising = new AbortController();
  private keepAlive: NodeJS.Timeout | undefined;
  /** The control channel (`stack ui`'s actions and events), while this run holds the lock. */
  private control: ControlServer | undefined;
  /** Why a service's next render happens, when asked for from outside (control.ts). */
  private readonly renderReasons = new Map<string, string>();

  constructor(
    input: StartStackInput,
    private readonly opts: StartStackOptions,
  ) {
    this.profile = input.profile;
    this.graph = input.graph;
    this.plan = input.plan;
    this.stack = input.plan.stack;
    this.clock = opts.clock ?? realClock;
    this.stateDir = opts.stateDir ?? stateDirOf(this.profile, opts.cwd);
    this.runDir = opts.runDir ?? this.stateDir;
    this.runtimes = runtimeSetOf(opts.runtimes, this.stateDir, this.profile);
    this.ownsRuntimes = !opts.runtimes;
    this.discovery = opts.discovery;
    this.renderConfigs = opts.renderConfigs && recordingRenderer(opts.renderConfigs, this.runDir, (name) => this.renderReason(name));
    this.strategyFor = opts.strategyFor;
    const { coordination, discovery } = this.profile;
    this.settings = {
      dependencyTimeoutMs: coordination.dependencyTimeoutMs,
      healthChecks: coordination.enableHealthChecks,
      settleMs: opts.settleMs ?? 200,
      ttlMs: discovery.ttlMs,
      heartbeatIntervalMs: discovery.heartbeatIntervalMs,
    };
    this.t0 = this.clock.now();
    const local = createLocalGates(this.graph);
    const targets = remoteTargets(this.profile, this.graph, this.plan);
    this.remote =
      targets.length > 0
        ? createRemoteGates({
            targets,
            ...(opts.discovery ? { discovery: opts.discovery } : {}),
            clock: this.clock,
            dependencyTimeoutMs: coordination.dependencyTimeoutMs,
            warn: (m, s) => this.warn(m, s),
          })
        : undefined;
    this.gates = this.remote ? composeGates(this.graph, local, this.remote) : local;
    let token: Promise<string> | undefined;
    this.hosts =
      Object.keys(this.profile.hosts).length > 0
        ? {
            ...(this.plan.host !== undefined ? { run: this.plan.host } : {}),
            ...(opts.term !== undefined ? { term: opts.term } : {}),
            claim: () => (token ??= claimToken(this.stateDir)),
          }
        : undefined;
    if (opts.onEvent) this.listeners.add(opts.onEvent);
    if (opts.rerender && opts.discovery?.backends.some((b) => b.capabilities.watch || b.capabilities.lookup) && (opts.supervise ?? true))
      this.reloader = new TemplateReloader(this, opts.discovery, opts.rerender);
    this.writer = createStateWriter(this.runDir, (err) => this.warn(`cannot write the state file: ${errorText(err)}`));
  }

  controller(): StackController {
    const ready = this.run();
    ready.catch(() => undefined);
    return {
      stack: this.stack,
      stateDir: this.stateDir,
      ready,
      done: this.done.promise,
      status: () => [...this.lifecycles.values()].map((s) => structuredClone(s.status)),
      subscribe: (listener) => {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
      },
      stop: (stopOpts = {}) => this.stopAll(stopOpts.timeoutMs),
      detach: () => this.detach(),
    };
  }

  // ---- LifecycleHost --------------------------------------------------------------------------

  lifecycle(service: string): ServiceLifecycle | undefined {
    return this.lifecycles.get(service);
  }

  all(): Iterable<ServiceLifecycle> {
    return this.lifecycles.values();
  }

  emit(event: EngineEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // a listener's bug must not break the engine
      }
    }
  }

  watching(s: ServiceLifecycle): void {
    this.reloader?.follow(s);
  }

  recordsFor(service: string): ServiceInstance[] {
    const elsewhere = this.remote?.services().flatMap((name) => this.remote!.records(name)) ?? [];
    return [...(this.reloader?.recordsFor(service) ?? []), ...elsewhere];
  }

  remoteInstances(service: string): ServiceInstance[] {
    return this.remote?.records(service) ?? [];
  }

  /** A dependency came back from a restart: each dependent reacts as its edge says. */
  restarted(s: ServiceLifecycle, reason: string): void {
    this.dependencyRestarted(s.name, `dependency '${s.name}' was restarted (${reason})`);
  }

  /**
   * A dependency is back (restarted here, or back in discovery elsewhere): each dependent reacts
   * as its edge says. A mesh's `host: all` service that other hosts served meanwhile only makes
   * its dependents re-render (they list its instances), never restart.
   */
  private dependencyRestarted(name: string, why: string): void {
    if (this.phase !== 'up' || this.stopping) return;
    const servedElsewhere = this.remote?.placement(name) === 'either' && this.remote.up(name);
    for (const edge of this.graph.dependentsOf(name)) {
      const dependent = this.lifecycles.get(edge.from);
      const dep = dependent?.spec.dependencies.find((d) => d.name === name);
      if (!dependent || !dep) continue;
      const reaction = servedElsewhere ? 'rerender' : (dep.onDependencyRestart ?? (dep.type === 'required' ? 'restart' : 'rerender'));
      if (reaction === 'restart' && dependent.running) {
        this.emit({ type: 'reload', service: dependent.name, action: 'restart', reason: why });
        for (const l of [dependent, ...dependent.peers]) void l.restartNow(why);
      } else if (reaction === 'rerender') {
        this.reloader?.poke(dependent, why);
      }
    }
  }

  warn(message: string, service?: string): void {
    this.emit({ type: 'warning', message, ...(service ? { service } : {}) });
  }

  persist(): void {
    if (!this.finished) this.writer.save(() => this.snapshot());
  }

  setState(s: ServiceLifecycle, state: ServiceState, reason?: string): void {
    this.unsettled += (SETTLED_STATES.has(s.status.state) ? 1 : 0) - (SETTLED_STATES.has(state) ? 1 : 0);
    this.changeState(s, s.name, state, reason);
    this.gates.record(s.name, { state, kind: s.spec.kind, started: s.status.started, ...(s.status.reason ? { reason: s.status.reason } : {}) });
    this.persist();
    this.checkSettled();
    if (this.phase === 'up') this.afterStartup(s.name);
  }

  // ---- state ----------------------------------------------------------------------------------

  private snapshot(): StackStateFile {
    const { profile, lock } = this;
    return {
      version: 1,
      stack: this.stack,
      owner: { pid: process.pid, ...(lock?.info.processStartTime ? { processStartTime: lock.info.processStartTime } : {}), startedAt: this.startedAtIso },
      phase: this.phase,
      ...(this.plan.host !== undefined ? { host: this.plan.host } : {}),
      updatedAt: new Date().toISOString(),
      profile: { ...(profile.source.file ? { file: profile.source.file } : {}), ...(profile.source.builtin ? { builtin: profile.source.builtin } : {}) },
      services: Object.fromEntries([
        ...this.found.carried.map((s) => [s.name, s] as const),
        ...[...this.lifecycles].map(([name, s]) => [name, s.status] as const),
      ]),
    };
  }

  private setPhase(next: StackPhase): void {
    this.phase = next;
    this.emit({ type: 'stack', stack: this.stack, phase: next, elapsedMs: this.clock.now() - this.t0 });
    this.persist();
  }

  private checkSettled(): void {
    if (this.unsettled === 0) this.allSettled.resolve();
  }

  // ---- after startup: required dependencies that stay down -----------------------------------

  /**
   * A service that stops being healthy after startup gets `dependencyTimeout` to come back; then
   * its required dependents are stopped and shown `blocked` (theirs in turn at once), and started
   * again once every required dependency of theirs is healthy again. A service run elsewhere is
   * down while discovery holds no passing record of it; a mesh's `host: all` service is up while
   * either the local instance or a remote one is. Returns whether it was up before.
   */
  private afterStartup(name: string): boolean {
    const before = this.seen.get(name);
    const up = this.isUp(name);
    this.seen.set(name, { up, at: this.seenAt(name) });
    if (this.stopping) return before?.up ?? true;
    const state = this.lifecycles.get(name)?.status.state;
    if (up) {
      this.down.get(name)?.abort();
      this.down.delete(name);
      this.unblockDependents(name);
    } else if (state === 'blocked') this.blockDependents(name);
    else if (state !== 'stopping' && state !== 'stopped' && !this.down.has(name)) {
      const timer = new AbortController();
      this.down.set(name, timer);
      this.clock.sleep(this.settings.dependencyTimeoutMs, AbortSignal.any([timer.signal, this.supervising.signal])).then(
        () => {
          this.down.delete(name);
          if (!this.isUp(name)) this.blockDependents(name);
        },
        () => undefined,
      );
    }
    return before?.up ?? true;
  }

  /** Healthy (a task: completed) here, or (run elsewhere) with a passing record in discovery. */
  private isUp(name: string): boolean {
    const state = this.lifecycles.get(name)?.status.state;
    return state === 'healthy' || state === 'completed' || (this.remote?.up(name) ?? false);
  }

  /** Where discovery last showed it elsewhere (addresses), to tell a move from a heartbeat. */
  private seenAt(name: string): string {
    return (this.remote?.records(name) ?? [])
      .map((r) => `${r.address}:${r.port ?? ''}`)
      .sort()
      .join(',');
  }

  /**
   * After startup, discovery's records of a service run elsewhere changed: as for a local
   * dependency, its dependents are blocked once it has been missing for `dependencyTimeout`, and
   * react per edge (`onDependencyRestart`) when it comes back, or moves to another address.
   */
  private readonly onRemoteChange = (service: string): void => {
    if (this.phase !== 'up' || this.stopping || !this.remote) return;
    const at = this.seen.get(service)?.at;
    const wasUp = this.afterStartup(service);
    const now = this.seen.get(service)!;
    const where = this.remote.where(service);
    const moves = this.remote.placement(service) === 'remote' && this.graph.services.get(service)?.kind !== 'task'; // a completed task stays done
    if (now.up && !wasUp) this.dependencyRestarted(service, `dependency '${service}' (${where}) is back in discovery`);
    else if (now.up && moves && at !== undefined && at !== now.at) this.dependencyRestarted(service, `dependency '${service}' (${where}) moved to ${now.at}`);
  };

  private requiredDependents(service: string): ServiceLifecycle[] {
    return this.graph
      .dependentsOf(service)
      .filter((e) => this.graph.services.get(e.from)?.dependencies.find((d) => d.name === service)?.type === 'required')
      .flatMap((e) => this.lifecycles.get(e.from) ?? []);
  }

  private blockDependents(service: string): void {
    const placement = this.remote?.placement(service);
    const down =
      placement === 'remote'
        ? `(${this.remote!.where(service)}) has had no passing record in discovery`
        : placement === 'either'
          ? 'is down here and has had no passing record from another host'
          : 'is down';
    const why = `required dependency '${service}' ${down} for longer than dependencyTimeout (${this.settings.dependencyTimeoutMs} ms)`;
    for (const d of this.requiredDependents(service)) for (const l of [...d.peers, d]) void l.block(why);
  }

  private unblockDependents(service: string): void {
    for (const d of this.requiredDependents(service)) {
      if (d.status.state !== 'blocked') continue;
      const requiredUp = d.spec.dependencies
        .filter((dep) => dep.type === 'required')
        .every((dep) => (!this.lifecycles.has(dep.name) && this.remote?.placement(dep.name) === undefined) || this.isUp(dep.name));
      if (requiredUp) for (const l of [d, ...d.peers]) l.unblock(`required dependency '${service}' is back`);
    }
  }

  // ---- scheduling -----------------------------------------------------------------------------

  private readonly onGateChange = (service: string): void => {
    for (const unit of unitsAffectedBy(service, this.graph, this.unitOf)) if (!this.launched.has(unit)) this.dirty.add(unit);
    if (this.dirty.size === 0 || this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.schedule();
    });
  };

  private schedule(): void {
    if (this.stopping || this.phase !== 'starting') return;
    const units = [...this.dirty].filter((unit) => !this.launched.has(unit));
    this.dirty.clear();
    const inRun = (name: string) => this.lifecycles.has(name) || this.remote?.placement(name) !== undefined;
    for (const decision of decide(units, this.graph, this.gates, inRun)) {
      this.launched.add(decision.unit);
      for (const name of decision.unit.members) {
        const s = this.lifecycles.get(name)!;
        if (decision.kind === 'block') {
          this.setState(s, 'blocked', decision.reason);
          for (const p of s.peers) this.setReplicaState(p, 'blocked', decision.reason);
          continue;
        }
        for (const w of decision.warnings) this.warn(w, name);
        s.launch();
        for (const p of s.peers) p.launch();
      }
    }
  }

  // ---- the run --------------------------------------------------------------------------------

  private async run(): Promise<StartupReport> {
    const warnings: string[] = [];
    this.listeners.add((e) => {
      if (e.type === 'warning') warnings.push(e.service ? `${e.service}: ${e.message}` : e.message);
    });
    const runServices = this.plan.services.flatMap((p) => this.graph.services.get(p.name) ?? []);
    await this.prepare(runServices);
    this.createLifecycles(runServices);
    this.setPhase('starting');
    await this.retireObsolete();
    for (const s of this.lifecycles.values()) {
      if (s.status.state === 'pending') this.setState(s, 'waiting');
      else this.gates.record(s.name, { state: s.status.state, kind: s.spec.kind, started: false });
    }
    this.gates.subscribe(this.onGateChange);
    this.remote?.subscribe(this.onRemoteChange);
    this.remote?.start();
    this.listenForAbort();
    this.schedule();
    this.checkSettled();
    await Promise.race([this.allSettled.promise, this.done.promise, this.stopping ?? new Promise<never>(() => {})]);
    await this.replicasSettled();
    return this.conclude(warnings);
  }

  /** Before anything starts: the lock, what runs already, and each runtime's preparation. */
  private async prepare(runServices: ServiceSpec[]): Promise<void> {
    const { opts, stack, runtimes } = this;
    try {
      this.lock = await acquireLock(this.runDir, stack, opts.detached ? { command: 'up --detach', detached: true, clock: this.clock } : { clock: this.clock });
      const lastState = await readStateFile(this.runDir);
      const blocked = this.plan.blocked.flatMap((b) => this.graph.services.get(b.service) ?? []);
      const planned = [...runServices, ...blocked];
      const instances = await findInstances(stack, runtimes, new Set(planned.map((s) => s.runtime)), lastState, (m) => this.warn(m));
      this.found = sortOut(instances, this.graph, new Set(planned.map((s) => s.name)), lastState, (name) => this.elsewhere(name));
      const byRuntime = new Map<RuntimeName, ServiceSpec[]>();
      for (const spec of runServices) byRuntime.set(spec.runtime, [...(byRuntime.get(spec.runtime) ?? []), spec]);
      for (const [name, specs] of byRuntime) await (await runtimes.get(name)).prepare(stack, specs, opts.signal ? { signal: opts.signal } : {});
      this.control = await serveControl(this.runDir, this.controlHandlers(), (m) => this.warn(m));
    } catch (err) {
      await this.lock?.release();
      if (this.ownsRuntimes) await runtimes.close();
      this.done.resolve();
      // Ctrl-C while preparing (pulling images): that is an interruption, not an error.
      if (opts.signal?.aborted) throw new InterruptedError(String(opts.signal.reason ?? 'SIGINT'));
      throw err;
    }
  }

  /**
   * Why an instance found here no longer belongs here: its service runs on another host now, or is
   * external. Leader-follower: the other share of this host (its services, its singletons) is not this run's to judge.
   */
  private elsewhere(name: string): string | undefined {
    const spec = this.graph.services.get(name);
    const at = spec ? placementOf(spec, this.plan.host, runsPerHost(this.profile), this.plan.share ?? 'host') : undefined;
    if (at?.kind === 'host' && at.host !== this.plan.host) return `moved to host '${at.host}'`;
    return at?.kind === 'external' ? 'external now: run by another stack' : undefined;
  }

  private createLifecycles(runServices: ServiceSpec[]): void {
    for (const spec of runServices) {
      const s = new ServiceLifecycle(this, spec, this.statusOf(spec));
      this.lifecycles.set(spec.name, s);
      this.createReplicas(s);
    }
    for (const b of this.plan.blocked) {
      const spec = this.graph.services.get(b.service);
      if (spec) this.lifecycles.set(spec.name, new ServiceLifecycle(this, spec, { ...this.statusOf(spec), state: 'blocked', reason: b.reason }));
    }
    // A running instance is shown (and stopped, should this run stop) until `start` keeps or replaces it.
    for (const [name, { handle, runtime }] of this.found.previous) this.lifecycles.get(name)!.adopt(handle, runtime);
    for (const { handle, runtime } of this.found.replicas)
      this.lifecycles
        .get(handle.service)
        ?.peers.find((p) => p.replica === handle.replica)
        ?.adopt(handle, runtime);
    this.unsettled = [...this.lifecycles.values()].filter((s) => !SETTLED_STATES.has(s.status.state)).length;
    this.unitOf = unitsOf(
      this.plan.groups,
      runServices.map((s) => s.name),
    );
    for (const unit of this.unitOf.values()) this.dirty.add(unit); // every unit is looked at once
  }

  // ---- replicas -------------------------------------------------------------------------------

  /**
   * `replicas: N` (process and Docker runtimes): replicas 1…N-1 run beside the service (replica
   * 0), each started, checked, registered (`<stack>-<service>-<i>`), watched and restarted on its
   * own. Dependents are gated on replica 0 only, and the startup report is about it; the others
   * show in its status (`replicas`) and events (`<service>#<i>`). A process replica listens on
   * `port + i` (its check too, when it probes that port), told by STACK_PORT and STACK_REPLICA.
   */
  private createReplicas(s: ServiceLifecycle): void {
    const { spec } = s;
    if (spec.replicas <= 1 || spec.kind === 'task') return;
    if (runtimeDefinition(spec.runtime).capabilities.replicas) return; // the runtime runs all N itself (Swarm's tasks)
    if (spec.runtime !== 'process' && spec.runtime !== 'docker') {
      this.warn(`replicas: ${spec.replicas} runs on the process and Docker runtimes only; starting one instance`, spec.name);
      return;
    }
    const host = this.replicaHost();
    for (let i = 1; i < spec.replicas; i++) {
      const replicaSpec = replicaSpecOf(spec, i);
      s.peers.push(new ServiceLifecycle(host, replicaSpec, { ...this.statusOf(replicaSpec), replica: i }, i));
    }
    s.status.replicas = s.peers.map((p) => p.status);
  }

  /** Startup also waits for the other replicas (a failed one is a warning: dependents rely on replica 0). */
  private async replicasSettled(): Promise<void> {
    if (this.stopping) return;
    const peers = [...this.lifecycles.values()].flatMap((s) => s.peers);
    await Promise.race([Promise.all(peers.map((p) => p.inflight ?? Promise.resolve())), this.stopping ?? new Promise<never>(() => {})]);
    for (const p of peers) if (p.status.state === 'failed') this.warn(`replica ${p.replica} failed: ${p.status.reason ?? 'failed'}`, p.name);
  }

  /** What replicas report to: their own status and events only (gates and the report know replica 0). */
  private replicaHost(): LifecycleHost {
    return {
      stack: this.stack,
      profile: this.profile,
      graph: this.graph,
      stateDir: this.stateDir,
      clock: this.clock,
      runtimes: this.runtimes,
      ...(this.discovery ? { discovery: this.discovery } : {}),
      ...(this.renderConfigs ? { renderConfigs: this.renderConfigs } : {}),
      gates: this.gates,
      settings: this.settings,
      ...(this.hosts ? { hosts: this.hosts } : {}),
      ...(this.strategyFor ? { strategyFor: this.strategyFor } : {}),
      lifecycle: (name) => this.lifecycle(name),
      all: () => this.all(),
      setState: (r, state, reason) => this.setReplicaState(r, state, reason),
      emit: (e) => this.emit(e),
      warn: (m, service) => this.warn(m, service),
      persist: () => this.persist(),
      recordsFor: (service) => this.recordsFor(service),
      remoteInstances: (service) => this.remoteInstances(service),
    };
  }

  /**
   * The transition itself, for a service and a replica alike: the status (a stop keeps its
   * reason), the time in the previous state, and the `state` event under `label`.
   */
  private changeState(s: ServiceLifecycle, label: string, state: ServiceState, reason: string | undefined): void {
    const previous = s.status.state;
    const now = this.clock.now();
    s.status.state = state;
    if (reason !== undefined) s.status.reason = reason;
    else if (state !== 'stopped' && state !== 'stopping') delete s.status.reason;
    const elapsedMs = now - s.since;
    s.since = now;
    const pid = s.status.handle?.pid;
    this.emit({
      type: 'state',
      service: label,
      state,
      previous,
      elapsedMs,
      ...(reason !== undefined ? { reason } : {}),
      ...(pid !== undefined ? { pid } : {}),
    });
  }

  private setReplicaState(r: ServiceLifecycle, state: ServiceState, reason?: string): void {
    this.changeState(r, `${r.name}#${r.replica}`, state, reason);
    this.persist();
    // A replica that comes up after startup is over is watched from then on.
    if (state === 'healthy' && this.phase === 'up' && (this.opts.supervise ?? true)) r.watch();
  }

  /** One stop target per service: its replicas' instances go with replica 0's. */
  private stopTargetOf(s: ServiceLifecycle): StopTarget {
    const base = s.stopTarget();
    if (s.peers.length === 0) return base;
    const peers = s.peers.map((p) => p.stopTarget());
    return {
      ...base,
      resolve: async () => {
        const [first, ...rest] = await Promise.all([base.resolve(), ...peers.map((p) => p.resolve())]);
        for (const r of rest) {
          const reg = r.registration;
          if (reg && this.discovery)
            await this.discovery
              .deregister(reg.service, reg.id)
              .catch((err) => this.warn(`could not deregister '${reg.service}': ${errorText(err)}`, reg.service));
        }
        return { ...first, instances: [first, ...rest].flatMap((r) => r.instances) };
      },
      onNothing: () => [base, ...peers].forEach((t) => t.onNothing?.()),
      onStopping: (subject) => [base, ...peers].forEach((t) => t.onStopping?.(subject)),
      onStopped: (subject) => [base, ...peers].forEach((t) => t.onStopped?.(subject)),
    };
  }

  private statusOf(spec: ServiceSpec): ServiceStatus {
    const healthChecks = this.settings.healthChecks;
    return {
      name: spec.name,
      kind: spec.kind,
      state: 'pending',
      started: false,
      health: spec.kind === 'task' || !healthChecks || !spec.healthCheck ? 'none' : 'unknown',
      restarts: 0,
      dependsOn: this.graph.dependenciesOf(spec.name).map((e) => e.to),
      stopSignal: spec.stopSignal,
      stopGracePeriodMs: spec.stopGracePeriodMs,
    };
  }

  private listenForAbort(): void {
    const signal = this.opts.signal;
    if (!signal) return;
    const onAbort = () => void this.stopAll();
    if (signal.aborted) void this.stopAll();
    signal.addEventListener('abort', onAbort, { once: true });
    void this.done.promise.then(() => signal.removeEventListener('abort', onAbort));
  }

  /** Startup is over: up, or failed (rolled back unless `leave`), or interrupted. */
  private async conclude(warnings: string[]): Promise<StartupReport> {
    if (this.stopping) {
      await this.stopping;
      return this.report('interrupted', warnings);
    }
    const bad = [...this.lifecycles.values()].some((s) => s.status.state === 'failed' || s.status.state === 'blocked');
    if (!bad) {
      this.setPhase('up');
      for (const name of this.remote?.services() ?? []) this.afterStartup(name); // one missing since startup: its wait starts now
      if (this.opts.supervise ?? true) {
        // Watches and heartbeats hold no reference on the event loop (they must not keep a process
        // alive by themselves); a supervising run does, until it is stopped or detached.
        this.keepAlive = setInterval(() => undefined, 1 << 30);
        for (const s of this.lifecycles.values()) {
          s.watch();
          for (const p of s.peers) if (p.status.state === 'healthy') p.watch();
        }
      }
      return this.report('up', warnings);
    }
    if ((this.opts.onFailure ?? 'rollback') === 'rollback') {
      const before = this.report('failed', warnings);
      await this.stopAll();
      // Keep why each service failed; the rollback itself stopped the rest.
      const after = this.report('failed', warnings);
      return { ...after, failed: before.failed, blocked: before.blocked };
    }
    this.setPhase('failed');
    await this.finish(false);
    return this.report('failed', warnings);
  }

  private report(outcome: StartupReport['outcome'], warnings: string[]): StartupReport {
    const services = [...this.lifecycles.values()].map((s) => structuredClone(s.status));
    return {
      outcome,
      services,
      failed: services.filter((s) => s.state === 'failed').map((s) => ({ service: s.name, reason: s.reason ?? 'failed' })),
      blocked: services.filter((s) => s.state === 'blocked').map((s) => ({ service: s.name, reason: s.reason ?? '' })),
      warnings: [...warnings],
      elapsedMs: this.clock.now() - this.t0,
    };
  }

  // ---- the control channel (control.ts) ------------------------------------------------------

  private controlHandlers(): ControlHandlers {
    const running = (service: string) => {
      const s = this.lifecycles.get(service);
      if (!s) throw new Error(`stack '${this.stack}' runs no service '${service}'`);
      if (this.stopping || this.phase === 'stopping' || this.phase === 'stopped') throw new Error(`stack '${this.stack}' is stopping`);
      if (this.phase === 'starting') throw new Error(`stack '${this.stack}' is still starting; try again once it is up`);
      return s;
    };
    return {
      subscribe: (listener) => {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
      },
      restart: async (service) => {
        const s = running(service);
        this.renderReasons.set(service, 'restart requested (stack ui)');
        await s.restartOnRequest().catch((err: unknown) => {
          this.renderReasons.delete(service);
          throw err;
        });
      },
      render: async (service) => {
        const s = running(service);
        this.renderReasons.set(service, 're-render requested (stack ui)');
        return s.renderOnRequest().finally(() => this.renderReasons.delete(service));
      },
    };
  }

  private renderReason(service: string): string {
    const asked = this.renderReasons.get(service);
    this.renderReasons.delete(service);
    if (asked) return asked;
    const restarts = this.lifecycles.get(service)?.status.restarts ?? 0;
    return restarts > 0 ? `restart ${restarts} (restart policy)` : 'started by `stack up`';
  }

  // ---- stopping -------------------------------------------------------------------------------

  private stopAll(graceOverrideMs?: number): Promise<void> {
    this.stopping ??= (async () => {
      this.setPhase('stopping');
      this.endSupervision();
      for (const s of this.lifecycles.values()) for (const l of [s, ...s.peers]) l.cancel(); // cancel waits and monitors at once
      const errors = await stopTargets(
        [...this.lifecycles.values()].map((s) => this.stopTargetOf(s)),
        this.stopperOptions(graceOverrideMs),
      );
      for (const { name, error } of errors) this.warn(`could not stop '${name}': ${errorText(error)}`, name);
      await this.opts.beforeTeardown?.().catch((err: unknown) => this.warn(errorText(err)));
      // The leader's share runs beside its host's: what the runtimes prepared is the host's to tear down.
      if (this.plan.share !== 'leader') for (const runtime of this.runtimes.created()) await runtime.teardown(this.stack).catch(() => undefined);
      this.setPhase('stopped');
      await this.finish(true);
    })();
    return this.stopping;
  }

  private stopperOptions(timeoutMs?: number) {
    return {
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(this.discovery ? { discovery: this.discovery } : {}),
      onDeregisterError: (service: string, err: unknown) => this.warn(`could not deregister '${service}': ${errorText(err)}`, service),
    };
  }

  private async detach(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.endSupervision();
    for (const s of this.lifecycles.values()) for (const l of [s, ...s.peers]) await l.detach();
    this.setPhase('detached');
    await this.finish(false);
  }

  private endSupervision(): void {
    clearInterval(this.keepAlive);
    this.supervising.abort();
    this.reloader?.close();
    this.remote?.close();
  }

  /** Write the last state (or remove it once nothing runs), release the lock and runtimes. */
  private async finish(removeState: boolean): Promise<void> {
    await this.writer.flush();
    this.finished = true;
    this.remote?.close();
    await this.control?.close();
    // Unselected services of an earlier run still run: their state stays for `status` and `down`.
    if (removeState && this.found.carried.length === 0) await removeStateFile(this.runDir);
    await this.lock?.release();
    if (this.ownsRuntimes) await this.runtimes.close();
    this.done.resolve();
  }

  /**
   * Converging: stop the instances of services this run no longer has (dependents first, as
   * `down` would), before anything starts, and drop registrations nobody renews any more.
   */
  private async retireObsolete(): Promise<void> {
    const { found } = this;
    const byService = new Map<string, typeof found.obsolete>();
    for (const instance of found.obsolete) byService.set(instance.handle.service, [...(byService.get(instance.handle.service) ?? []), instance]);
    const targets = [...byService].map(([service, instances]) => this.obsoleteTarget(service, instances));
    const errors = await stopTargets(targets);
    for (const { name, error } of errors) this.warn(`could not stop the obsolete instance of '${name}': ${errorText(error)}`, name);
    if (!this.discovery) return;
    // A scaled-down replica's registration (its id is `<stack>-<service>-[<host>-]<replica>`) goes with it.
    for (const { handle } of found.obsolete) {
      const spec = this.graph.services.get(handle.service);
      const host = this.hosts ? (spec ? registeredHost(spec, this.hosts.run) : this.hosts.run) : undefined;
      if (handle.replica > 0 && this.discovery.canRegister)
        await this.discovery.deregister(handle.service, registrationId(this.stack, handle.service, handle.replica, host)).catch(() => undefined);
    }
    for (const status of found.retired) {
      const reg = status.registration;
      if (reg)
        await this.discovery.deregister(reg.service, reg.id).catch((err) => this.warn(`could not deregister '${reg.service}': ${errorText(err)}`, reg.service));
    }
  }

  private obsoleteTarget(service: string, instances: SortedInstances['obsolete']): StopTarget {
    const known = this.found.retired.find((s) => s.name === service);
    const spec = this.graph.services.get(service);
    const reason = instances.map((i) => i.reason).join('; ');
    let since = 0;
    return {
      name: service,
      dependsOn: known?.dependsOn ?? this.graph.dependenciesOf(service).map((e) => e.to),
      resolve: () => ({
        instances,
        stopSignal: known?.stopSignal ?? spec?.stopSignal ?? 'SIGTERM',
        gracePeriodMs: known?.stopGracePeriodMs ?? spec?.stopGracePeriodMs ?? 10_000,
      }),
      onStopping: () => {
        since = this.clock.now();
        const pid = instances[0]?.handle.pid;
        this.emit({ type: 'state', service, state: 'stopping', previous: 'healthy', elapsedMs: 0, reason, ...(pid !== undefined ? { pid } : {}) });
      },
      onStopped: () => this.emit({ type: 'state', service, state: 'stopped', previous: 'stopping', elapsedMs: this.clock.now() - since, reason }),
    };
  }
}

/** Replica `i` of a service: a process replica listens on `port + i` (and is checked there). */
function replicaSpecOf(spec: ServiceSpec, i: number): ServiceSpec {
  if (spec.runtime !== 'process' || spec.port === undefined) return spec;
  const port = spec.port + i;
  const check = spec.healthCheck;
  return { ...spec, port, ...(check ? { healthCheck: { ...check, ...(check.port === spec.port ? { port } : {}) } } : {}) };
}

function runtimeSetOf(given: StartStackOptions['runtimes'], stateDir: string, profile: Profile): RuntimeSet {
  if (!given) return runtimeSetFor(profile, { stateDir });
  if ('get' in given && typeof given.get === 'function') return given;
  return fixedRuntimeSet(given as Partial<Record<RuntimeName, Runtime>>);
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
