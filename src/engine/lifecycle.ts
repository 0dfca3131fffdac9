/**
 * One service's life during a run: start → ready → register → monitor → restart, on the run's
 * `Clock`. The run (engine.ts) decides when it starts (the scheduler) and records every state
 * change (`host.setState`); the lifecycle does everything in between, and says what to stop.
 *
 * - Ready: a service is ready once its health check passes (a service without one: once it has
 *   run `settleMs`), a task once it exited 0; an exit first, or `dependencyTimeout`, is a failure.
 * - Dependents that judge this service by their own check (`dependencies[].healthCheck`) probe it
 *   from the moment it has started, within `dependencyTimeout`, and report to the gates.
 * - Register: once ready, with the profile's TTL, heartbeated until stop or detach. Across hosts
 *   a task placed on a host is registered too once it completed (until this run stops): its
 *   dependents on other hosts wait for that record (remote-gates.ts).
 * - Monitor (after startup, `supervise`): health transitions are reported, not acted on; an exit
 *   deregisters it and applies the restart policy (restart.ts) unless the runtime applies it.
 */
import { errorText } from '../util/error-text.js';
import path from 'node:path';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import type { StackGraph } from '../plan/types.js';
import { monitorHealth, waitUntilHealthy } from '../health/monitor.js';
import { healthTargetFor } from '../runtime/target.js';
import type { HealthStrategy, HealthTarget, ProbeResult } from '../health/types.js';
import { ALL_HOSTS, type HealthCheckSpec, type HealthStrategyName, type Profile, type ServiceSpec } from '../profile/types.js';
import type { ExitInfo, Runtime, ServiceHandle, StartRequest } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';
import { sameInstance } from './converge.js';
import type { RenderConfigs } from './engine.js';
import type { LocalGates } from './gates.js';
import { followInstances } from './instances.js';
import { describeExit, restartDecision } from './restart.js';
import type { RuntimeSet } from './runtimes.js';
import type { StopTarget } from './stopper.js';
import { SETTLED_STATES, type EngineEvent, type ServiceState, type ServiceStatus } from './types.js';
import { discoveryEnvironmentFor } from '../discovery/client-env.js';
import { CollisionError } from '../discovery/errors.js';
import { isLoopbackHost } from '../health/loopback.js';
import { claim, registeredHost, registrationId } from './hosts.js';

/** What a lifecycle needs from the run it belongs to. */
export interface LifecycleHost {
  readonly stack: string;
  readonly profile: Profile;
  readonly graph: StackGraph;
  readonly stateDir: string;
  readonly clock: Clock;
  readonly runtimes: RuntimeSet;
  readonly discovery?: DiscoveryManager;
  readonly renderConfigs?: RenderConfigs;
  readonly gates: LocalGates;
  readonly settings: LifecycleSettings;
  /** The strategy that probes a check (tests: the memory runtime's). */
  strategyFor?(name: HealthStrategyName): HealthStrategy;
  lifecycle(service: string): ServiceLifecycle | undefined;
  all(): Iterable<ServiceLifecycle>;
  setState(lifecycle: ServiceLifecycle, state: ServiceState, reason?: string): void;
  emit(event: EngineEvent): void;
  warn(message: string, service?: string): void;
  persist(): void;
  /** After startup: this service was restarted (or replaced) and is healthy again; its dependents react. */
  restarted?(lifecycle: ServiceLifecycle, reason: string): void;
  /** After startup: a new instance of it is being watched (its templates are watched from now on). */
  watching?(lifecycle: ServiceLifecycle): void;
  /** Discovery records its templates were last re-rendered against (and those of what it waits for elsewhere). */
  recordsFor?(service: string): ServiceInstance[];
  /** Records of a dependency this run does not start (another host's, external), from discovery. */
  remoteInstances?(service: string): ServiceInstance[];
  /**
   * A profile with hosts: the host this run is (absent: a hub that did not say), and this state
   * folder's claim on its registrations (hosts.ts).
   */
  readonly hosts?: { readonly run?: string; claim(): Promise<string>; readonly term?: number };
}

/** Why the engine itself ended the current instance (so its exit is not a crash). */
type PlannedExit = { kind: 'restart'; reason: string; delayMs: number } | { kind: 'block'; reason: string };

export interface LifecycleSettings {
  dependencyTimeoutMs: number;
  healthChecks: boolean;
  settleMs: number;
  ttlMs: number;
  heartbeatIntervalMs: number;
}

type Readiness = { kind: 'ready' } | { kind: 'unready'; reason: string } | { kind: 'exit'; exit: ExitInfo } | { kind: 'aborted' };

export class ServiceLifecycle {
  readonly status: ServiceStatus;
  runtime?: Runtime;
  /** Cancels everything this service's lifecycle is waiting for. */
  readonly abort = new AbortController();
  /** Clock time its current state began (elapsed time in events). */
  since: number;
  /** Its instance as registered (with or without discovery), while it runs: what dependents' templates see of it here. */
  instance?: ServiceInstance;
  /** The lifecycle in flight (start → healthy, or a restart). */
  inflight?: Promise<void>;
  stopping = false;
  /** The instance an earlier `up` left running, until `start` keeps or replaces it. */
  previous?: ServiceHandle;
  private exit?: Promise<ExitInfo>;
  private request?: StartRequest;
  private stopKeepAlive?: () => Promise<void>;
  /** Set while the current instance is watched after startup (restarts on request only then). */
  private watched = false;
  private planned?: PlannedExit;
  /** Registration withdrawn while unhealthy (restored when healthy again). */
  private withdrawn = false;
  /** Said once that it is bound to loopback on its host (so not registered). */
  private loopbackWarned = false;

  constructor(
    private readonly host: LifecycleHost,
    readonly spec: ServiceSpec,
    status: ServiceStatus,
    /** `replicas: N`: which one (0 is the service itself, the one dependents are gated on). */
    readonly replica = 0,
  ) {
    this.status = status;
    this.since = host.clock.now();
  }

  /** Replicas 1…N-1 of this service (on replica 0 only); they follow its reloads. */
  peers: ServiceLifecycle[] = [];

  get name(): string {
    return this.spec.name;
  }

  /** The scheduler let it through: start it and see it ready, registered, healthy. */
  launch(): void {
    this.inflight = this.bringUp().catch((err) => this.host.warn(`internal error starting '${this.name}': ${errorText(err)}`, this.name));
  }

  /** A run that starts nothing for it shows (and would stop) the instance an earlier `up` left. */
  adopt(handle: ServiceHandle, runtime: Runtime): void {
    this.previous = handle;
    this.runtime = runtime;
    this.status.handle = handle;
    this.status.startedAt = handle.startedAt;
  }

  private async bringUp(): Promise<void> {
    this.host.setState(this, 'starting');
    const failure = await this.startAndAwaitReady();
    if (this.stopping) return;
    if (failure !== undefined) return this.host.setState(this, 'failed', failure);
    const task = this.spec.kind === 'task';
    // Across hosts a task placed on a host (or a singleton task, run by the leader) is registered once
    // it completed: dependents on other hosts wait for that record.
    const placed = this.spec.singleton || (this.spec.host !== undefined && this.spec.host !== ALL_HOSTS);
    const clash = !task || (this.host.hosts && placed) ? await this.register() : undefined;
    if (this.stopping) return;
    if (clash !== undefined) return this.host.setState(this, 'failed', clash);
    if (task) return this.host.setState(this, 'completed');
    this.host.setState(this, 'healthy', this.status.unchanged ? 'unchanged' : undefined);
  }

  /** Start it and wait until it is ready. Resolves with a failure reason, or undefined when ready. Never throws. */
  private async startAndAwaitReady(): Promise<string | undefined> {
    const signal = this.abort.signal;
    let runtime: Runtime;
    let handle: ServiceHandle;
    try {
      runtime = this.runtime ?? (await this.host.runtimes.get(this.spec.runtime));
      this.runtime = runtime;
      this.request = await this.buildRequest();
      signal.throwIfAborted();
      handle = await runtime.start(this.request);
    } catch (err) {
      await this.forgetPreviousUnlessRunning();
      return signal.aborted ? 'stopped before it started' : `start failed: ${errorText(err)}`;
    }
    const kept = this.recordStart(runtime, handle);
    if (signal.aborted) return 'stopped while starting';
    this.host.setState(this, this.spec.kind === 'task' ? 'running' : 'checking');
    this.checkForDependents(runtime, handle);
    const outcome = await this.awaitReady(runtime, handle, kept);
    switch (outcome.kind) {
      case 'ready':
        return undefined;
      case 'unready':
        return outcome.reason;
      case 'aborted':
        return 'stopped';
      case 'exit':
        if (this.spec.kind !== 'task') return `${describeExit(outcome.exit)} before it became healthy`;
        return outcome.exit.code === 0 && outcome.exit.signal === null ? undefined : `task ${describeExit(outcome.exit)}`;
    }
  }

  /** Note the started instance; true when the runtime kept the earlier one (same config hash). */
  private recordStart(runtime: Runtime, handle: ServiceHandle): boolean {
    const kept = sameInstance(this.previous, handle);
    delete this.previous;
    if (kept) this.status.unchanged = true;
    else delete this.status.unchanged;
    this.status.handle = handle;
    this.status.started = true;
    this.status.startedAt = handle.startedAt;
    this.exit = runtime.wait(handle);
    return kept;
  }

  /** Whichever comes first: ready, exit, deadline (`dependencyTimeout`), or abort. */
  private async awaitReady(runtime: Runtime, handle: ServiceHandle, kept: boolean): Promise<Readiness> {
    const { clock, settings } = this.host;
    const race = new AbortController();
    const onAbort = () => race.abort(this.abort.signal.reason);
    this.abort.signal.addEventListener('abort', onAbort, { once: true });
    const aborted = () => ({ kind: 'aborted' as const });
    try {
      const exited = this.exit!.then((exit) => ({ kind: 'exit' as const, exit }));
      let ready: Promise<Readiness>;
      const check = settings.healthChecks ? this.spec.healthCheck : undefined;
      if (this.spec.kind === 'task') {
        const reason = `task did not complete within dependencyTimeout (${settings.dependencyTimeoutMs} ms)`;
        ready = clock.sleep(settings.dependencyTimeoutMs, race.signal).then(() => ({ kind: 'unready' as const, reason }), aborted);
      } else if (!check) {
        // A kept instance has run far longer than the settle time already.
        ready = kept
          ? Promise.resolve({ kind: 'ready' as const })
          : clock.sleep(settings.settleMs, race.signal).then(() => ({ kind: 'ready' as const }), aborted);
      } else {
        ready = waitUntilHealthy(check, this.healthTarget(runtime, handle, check), {
          clock,
          signal: race.signal,
          deadlineMs: settings.dependencyTimeoutMs,
          onProbe: (result) => this.recordHealth(result),
          ...this.strategy(check),
        }).then(
          () => ({ kind: 'ready' as const }),
          (err) => (race.signal.aborted ? aborted() : { kind: 'unready' as const, reason: errorText(err) }),
        );
      }
      const first = await Promise.race([exited, ready]);
      if (first.kind === 'ready' && check && !(await this.stillRuns(runtime, handle))) {
        // Something answered its check, but not this instance: it is gone (a service that died with
        // EADDRINUSE while another process holds its port), its exit just not seen yet.
        return { kind: 'unready', reason: 'its health check passed but the instance is not running: something else answers there' };
      }
      if (first.kind === 'ready') this.status.health = check ? 'healthy' : 'none';
      return first;
    } finally {
      this.abort.signal.removeEventListener('abort', onAbort);
      race.abort();
    }
  }

  /** Whether the runtime still sees the instance running; an inspect that fails does not fail the service. */
  private async stillRuns(runtime: Runtime, handle: ServiceHandle): Promise<boolean> {
    return runtime.inspect(handle).then(
      (status) => status.running,
      () => true,
    );
  }

  private strategy(check: HealthCheckSpec): { strategy?: HealthStrategy } {
    const strategy = this.host.strategyFor?.(check.strategy);
    return strategy ? { strategy } : {};
  }

  private async buildRequest(): Promise<StartRequest> {
    const { stack, stateDir, profile, discovery } = this.host;
    const spec = this.spec;
    const configDir = path.join(stateDir, 'config', spec.name);
    const dependencies = this.dependencyInstances();
    const injected = discovery ? discovery.environmentFor(Object.values(dependencies).flat()) : {};
    const rendered = await this.render(configDir, dependencies);
    // Like Nomad's NOMAD_ALLOC_DIR / NOMAD_TASK_DIR, a process service is told where its stack
    // keeps state (launchers put data under it) and where its rendered configs are, as absolute
    // paths. Host paths mean nothing inside a container, so Docker services do not get them. The
    // profile's own environment may override them.
    // STACK_DISCOVERY: how to reach the stack's discovery (client-env.ts), for the same reason host-only.
    const dirs: Record<string, string> =
      spec.runtime === 'process'
        ? { STACK_STATE_DIR: path.resolve(stateDir), STACK_CONFIG_DIR: path.resolve(configDir), ...discoveryEnvironmentFor(profile.discovery, { stateDir }) }
        : {};
    // Replicas: each knows its index; a process replica listens on `port + index` (STACK_PORT),
    // since they share the host. Set for every replica count, so scaling never changes replica 0.
    const replica: Record<string, string> = {
      STACK_REPLICA: String(this.replica),
      ...(spec.runtime === 'process' && spec.port !== undefined ? { STACK_PORT: String(spec.port) } : {}),
    };
    return {
      stack,
      service: spec,
      replica: this.replica,
      environment: { ...dirs, ...replica, ...injected, ...spec.environment, ...rendered.environment },
      files: rendered.files,
      configDir,
      stateDir,
      profileDir: profile.source.dir,
    };
  }

  private async render(configDir: string, dependencies: Record<string, ServiceInstance[]>) {
    const { stack, profile, renderConfigs } = this.host;
    // The records its templates were last re-rendered against (after startup), then this run's own.
    const byKey = new Map<string, ServiceInstance>();
    for (const r of this.host.recordsFor?.(this.spec.name) ?? []) byKey.set(`${r.service}/${r.id}`, r);
    for (const s of this.host.all()) for (const r of s.records) byKey.set(`${r.service}/${r.id}`, r);
    const instances = [...byKey.values()];
    return renderConfigs ? renderConfigs(this.spec, { stack, profile, configDir, dependencies, instances }) : { files: [], environment: {} };
  }

  /** Render its templates again now (`stack ui`), as before a start; the running instance is left alone. */
  async renderOnRequest(): Promise<string[]> {
    if (this.spec.templates.length === 0) return [];
    const rendered = await this.render(path.join(this.host.stateDir, 'config', this.spec.name), this.dependencyInstances());
    return rendered.files.map((f) => f.destination);
  }

  /**
   * Restart on request (`stack ui`): stop the instance and start it again — templates re-render —
   * whatever its restart policy. Resolves once the instance is stopped; the restart follows.
   */
  async restartOnRequest(): Promise<void> {
    if (this.spec.kind === 'task') throw new Error(`'${this.name}' is a task: tasks run once per \`stack up\``);
    if (this.stopping || this.abort.signal.aborted) throw new Error(`'${this.name}' is being stopped`);
    if (!SETTLED_STATES.has(this.status.state)) throw new Error(`'${this.name}' is ${this.status.state}; try again once it has settled`);
    const { runtime } = this;
    const handle = this.status.handle;
    const running =
      runtime && handle
        ? await runtime.inspect(handle).then(
            (s) => s.running,
            () => false,
          )
        : false;
    const stop = () => runtime!.stop(handle!, { signal: this.spec.stopSignal, gracePeriodMs: this.spec.stopGracePeriodMs });
    if (running && this.watched) {
      await this.restartNow('restart requested'); // onExit starts it again
      return;
    }
    if (running) await stop();
    delete this.planned; // a blocked service is started too: it was asked for
    this.host.emit({ type: 'restart', service: this.name, attempt: this.status.restarts + 1, delayMs: 0, exit: 'restart requested' });
    void this.restart();
  }

  /** Instances of the healthy services it depends on (for templates and env injection). */
  private dependencyInstances(): Record<string, ServiceInstance[]> {
    const out: Record<string, ServiceInstance[]> = {};
    for (const edge of this.host.graph.dependenciesOf(this.name)) {
      const dep = this.host.lifecycle(edge.to);
      const elsewhere = this.host.remoteInstances?.(edge.to) ?? [];
      const here = dep?.records ?? [];
      if (here.length + elsewhere.length > 0) out[edge.to] = [...here, ...elsewhere];
    }
    return out;
  }

  private healthTarget(runtime: Runtime, handle: ServiceHandle, check: HealthCheckSpec): HealthTarget {
    return healthTargetFor(runtime, handle, this.spec, check, { profileDir: this.host.profile.source.dir, environment: this.request?.environment ?? {} });
  }

  private recordHealth(result: ProbeResult): void {
    this.status.lastHealth = { ok: result.ok, detail: result.detail, at: new Date().toISOString() };
  }

  /** Dependents with their own check of this service probe it themselves, from now, within `dependencyTimeout`. */
  private checkForDependents(runtime: Runtime, handle: ServiceHandle): void {
    const { graph, gates, clock, settings } = this.host;
    if (!settings.healthChecks || this.replica > 0) return; // dependents are gated on replica 0
    const signal = this.abort.signal;
    for (const edge of graph.dependentsOf(this.name)) {
      const own = graph.services.get(edge.from)?.dependencies.find((d) => d.name === this.name)?.healthCheck;
      if (!own || edge.gate === 'started' || !this.host.lifecycle(edge.from)) continue;
      waitUntilHealthy(own, this.healthTarget(runtime, handle, own), { clock, signal, deadlineMs: settings.dependencyTimeoutMs, ...this.strategy(own) }).then(
        () => gates.recordEdgeCheck(edge.from, edge.to, { ok: true }),
        (err) => {
          if (!signal.aborted) gates.recordEdgeCheck(edge.from, edge.to, { ok: false, reason: errorText(err) });
        },
      );
    }
  }

  /** After a failed start: keep showing (and later stopping) the earlier instance only while it runs. */
  private async forgetPreviousUnlessRunning(): Promise<void> {
    const previous = this.previous;
    if (!previous) return;
    delete this.previous;
    const runs = await this.runtime?.inspect(previous).then(
      (s) => s.running,
      () => false,
    );
    if (runs || this.status.handle !== previous) return;
    delete this.status.handle;
    delete this.status.startedAt;
  }

  // ---- discovery ------------------------------------------------------------------------------

  /**
   * Register it (with hosts: under an id naming its host, claimed exclusively). Resolves with why
   * it must fail — another host holds its id — or undefined; any other problem is a warning.
   */
  private async register(): Promise<string | undefined> {
    if (this.runtime?.placements && this.status.handle) return this.registerEachInstance();
    const { stack, discovery, settings, hosts } = this.host;
    const spec = this.spec;
    const { address, port } = this.registeredEndpoint();
    const on = hosts ? registeredHost(spec, hosts.run) : undefined;
    // Without a claim (its file cannot be written) an earlier run's record of this host is not taken over: a collision says so.
    const claimed = hosts && on !== undefined ? await hosts.claim().catch(() => undefined) : undefined;
    // A singleton's id names no host: one record of it in the whole stack, whichever host leads (claimed exclusively).
    const instance: ServiceInstance = {
      id: registrationId(stack, spec.name, this.replica, spec.singleton ? undefined : on),
      service: spec.name,
      address,
      ...(port !== undefined ? { port, url: `${spec.scheme ?? 'http'}://${address.includes(':') ? `[${address}]` : address}:${port}` } : {}),
      tags: [...spec.tags],
      meta: {
        ...spec.meta,
        stack,
        ...(on !== undefined ? { host: on } : {}),
        ...(claimed !== undefined ? { claim: claimed } : {}),
        ...(spec.singleton && hosts?.term !== undefined ? { term: String(hosts.term) } : {}),
      },
      registeredAt: new Date().toISOString(),
    };
    this.instance = instance;
    if (!discovery?.canRegister) return;
    if (on !== undefined && isLoopbackHost(address)) return this.loopbackOnly(on, address);
    const { registeredAt: _r, expiresAt: _e, ...input } = instance;
    const opts = { ttlMs: settings.ttlMs, ...(on !== undefined ? { exclusive: true } : {}) };
    try {
      await (on !== undefined ? claim(discovery, input, opts) : discovery.register(input, opts));
      this.status.registration = { service: instance.service, id: instance.id };
      this.stopKeepAlive = discovery.keepAlive(input, settings.heartbeatIntervalMs, opts);
      this.host.emit({ type: 'registered', service: spec.name, id: instance.id });
    } catch (err) {
      if (err instanceof CollisionError)
        return `its registration '${instance.id}' is held by another host's \`stack up\` (two runs claim host '${on}'?): ${errorText(err)}`;
      this.host.warn(`could not register '${spec.name}' in discovery: ${errorText(err)}`, spec.name);
    }
  }

  /** Bound to loopback on its host: other hosts cannot reach it, so it is not registered where they would look. */
  private loopbackOnly(host: string, address: string): undefined {
    if (this.loopbackWarned) return;
    this.loopbackWarned = true;
    this.host.warn(`bound to loopback (${address}) on host '${host}': not registered where other hosts would look`, this.name);
  }

  /** Records of a runtime that places its instances itself (Swarm's tasks), one per instance. */
  private placed?: ServiceInstance[];

  /** The runtime places its instances (Swarm): one registration per instance, following them as they move (instances.ts). */
  private async registerEachInstance(): Promise<undefined> {
    await this.stopKeepAlive?.();
    const { host } = this;
    const onChange = (records: ServiceInstance[]) => {
      this.placed = records;
      this.instance = records[0];
    };
    const follower = await followInstances({
      ...{ stack: host.stack, spec: this.spec, runtime: this.runtime!, handle: this.status.handle!, discovery: host.discovery, clock: host.clock },
      ...{ ttlMs: host.settings.ttlMs, intervalMs: host.settings.heartbeatIntervalMs, emit: (e) => host.emit(e), warn: (m) => host.warn(m, this.name) },
      onChange,
    });
    onChange(follower.records());
    this.stopKeepAlive = () => follower.stop();
    return undefined;
  }

  /** Its records in discovery: one per instance the runtime placed, else its own. */
  get records(): ServiceInstance[] {
    return this.placed ?? (this.instance ? [this.instance] : []);
  }

  /**
   * Where clients reach it. A Docker replica other than 0 publishes its port on an ephemeral host
   * port (two cannot share one): it is registered at that loopback endpoint. A process replica's
   * spec already carries `port + index`.
   */
  private registeredEndpoint(): { address: string; port?: number } {
    const { spec, runtime } = this;
    const handle = this.status.handle;
    if (this.replica > 0 && spec.port !== undefined && runtime && handle && runtime.name !== 'process') {
      const ep = runtime.endpoint(handle, spec.port);
      return { address: ep.host, port: ep.port };
    }
    return { address: spec.address, ...(spec.port !== undefined ? { port: spec.port } : {}) };
  }

  /** Stop heartbeating; hand back the registration for whoever removes it. */
  private async letGoOfRegistration(): Promise<{ service: string; id: string } | undefined> {
    const stop = this.stopKeepAlive;
    delete this.stopKeepAlive;
    await stop?.().catch(() => undefined);
    const registration = this.status.registration;
    delete this.status.registration;
    return registration;
  }

  private async deregister(): Promise<void> {
    const reg = await this.letGoOfRegistration();
    if (!reg || !this.host.discovery) return;
    await this.host.discovery
      .deregister(reg.service, reg.id)
      .catch((err) => this.host.warn(`could not deregister '${reg.service}': ${errorText(err)}`, reg.service));
  }

  // ---- after startup: health monitoring and the restart policy --------------------------------

  /** Watch the current instance: health transitions, and its exit (the restart policy). */
  watch(): void {
    const runtime = this.runtime;
    const handle = this.status.handle;
    if (!runtime || !handle || this.spec.kind === 'task' || this.watched) return;
    const watch = new AbortController();
    const signal = AbortSignal.any([this.abort.signal, watch.signal]);
    const check = this.host.settings.healthChecks ? this.spec.healthCheck : undefined;
    this.watched = true;
    if (check) {
      const { onUnhealthy = true, failuresBeforeRestart = 3 } = this.spec.restart;
      let failures = 0;
      void monitorHealth(check, this.healthTarget(runtime, handle, check), {
        clock: this.host.clock,
        signal,
        onProbe: (result) => {
          this.recordHealth(result);
          this.host.persist();
          failures = result.ok ? 0 : failures + 1;
          if (onUnhealthy && failures === failuresBeforeRestart && !watch.signal.aborted) this.restartUnhealthy(result.detail, failures);
        },
        onChange: (healthy, result) => {
          this.status.health = healthy ? 'healthy' : 'unhealthy';
          this.host.emit({ type: 'health', service: this.name, healthy, detail: result.detail });
          this.host.persist();
          // Clients must not be sent to it while it fails its check: withdraw it, restore it once healthy.
          void (healthy ? this.restore() : this.withdraw(`unhealthy: ${result.detail}`));
        },
        ...this.strategy(check),
      });
    }
    this.monitorDependencyChecks(runtime, handle, signal);
    void this.exit?.then((exit) => {
      watch.abort();
      this.watched = false;
      return this.onExit(runtime, exit);
    });
    this.host.watching?.(this);
  }

  /** Failed its check `failuresBeforeRestart` times in a row: restart it under its restart policy. */
  private restartUnhealthy(detail: string, failures: number): void {
    // `onUnhealthy` is the switch; the policy gives the back-off and the retry limit ("no" counts as "on-failure").
    const policy = this.spec.restart.policy === 'no' ? { ...this.spec.restart, policy: 'on-failure' as const } : this.spec.restart;
    const decision = restartDecision(policy, { code: 1, signal: null }, this.status.restarts);
    const why = `unhealthy: ${failures} failed checks in a row (${detail})`;
    if (!decision.restart) return this.host.warn(`${why}; not restarted: ${decision.why}`, this.name);
    void this.restartNow(why, decision.delayMs);
  }

  /** After startup, a dependent's own check of this service keeps running; its verdicts go to the gates and the log. */
  private monitorDependencyChecks(runtime: Runtime, handle: ServiceHandle, signal: AbortSignal): void {
    const { graph, gates, clock, settings } = this.host;
    if (!settings.healthChecks || this.replica > 0) return;
    for (const edge of graph.dependentsOf(this.name)) {
      const own = graph.services.get(edge.from)?.dependencies.find((d) => d.name === this.name)?.healthCheck;
      if (!own || !this.host.lifecycle(edge.from)) continue;
      void monitorHealth(own, this.healthTarget(runtime, handle, own), {
        clock,
        signal,
        onChange: (healthy, result) => {
          gates.recordEdgeCheck(edge.from, edge.to, healthy ? { ok: true } : { ok: false, reason: result.detail });
          if (healthy) this.host.warn(`its check of '${this.name}' passes again`, edge.from);
          else this.host.warn(`its check of '${this.name}' fails: ${result.detail}`, edge.from);
        },
        ...this.strategy(own),
      });
    }
  }

  /**
   * Restart the current instance now (a changed template, a restarted dependency, failed checks):
   * stop it, then start it again after `delayMs`, as after a crash. Only while it is watched after
   * startup; a restart already under way makes this one needless.
   */
  async restartNow(reason: string, delayMs = 0): Promise<void> {
    await this.endInstance({ kind: 'restart', reason, delayMs });
  }

  /** A required dependency stayed down past `dependencyTimeout`: stop it and show it `blocked` until the dependency is back. */
  async block(reason: string): Promise<void> {
    if (this.status.state === 'blocked') return;
    if (!(await this.endInstance({ kind: 'block', reason }))) {
      // Not running (waiting to restart, failed): it is blocked all the same, and not restarted meanwhile.
      if (this.stopping || this.status.state === 'healthy') return;
      this.planned = { kind: 'block', reason };
      this.host.setState(this, 'blocked', reason);
    }
  }

  /** Its dependencies are back: start it again. */
  unblock(reason: string): void {
    if (this.stopping || this.status.state !== 'blocked') return;
    delete this.planned;
    this.host.setState(this, 'waiting', reason);
    void this.restart(false);
  }

  private async endInstance(planned: PlannedExit): Promise<boolean> {
    const runtime = this.runtime;
    const handle = this.status.handle;
    if (this.stopping || !this.watched || this.planned || !runtime || !handle) return false;
    this.planned = planned;
    this.watched = false;
    await runtime.stop(handle, { signal: this.spec.stopSignal, gracePeriodMs: this.spec.stopGracePeriodMs }).catch((err) => {
      this.host.warn(`could not stop '${this.name}' to ${planned.kind} it: ${errorText(err)}`, this.name);
    });
    return true;
  }

  /**
   * Hand re-rendered templates to a runtime that takes configs in memory (`configsInMemory`,
   * Swarm): its `start` converges the running instance to the new request (Swarm: new configs and
   * secrets, then a rolling update of the service), without a stop and without a file written here.
   */
  async updateConfigs(): Promise<void> {
    const runtime = this.runtime;
    const handle = this.status.handle;
    if (this.stopping || !this.watched || this.planned || !runtime || !handle) return;
    this.request = await this.buildRequest();
    const updated = await runtime.start(this.request);
    if (updated.id !== handle.id) throw new Error(`the ${runtime.name} runtime replaced the instance instead of updating it`);
    this.status.handle = updated;
    this.host.persist();
  }

  /** Send a signal to the running instance (a template's `changeMode: signal`). */
  async sendSignal(signal: string): Promise<void> {
    const runtime = this.runtime;
    const handle = this.status.handle;
    if (!runtime || !handle) throw new Error('it does not run');
    if (!runtime.signal) throw new Error(`the ${runtime.name} runtime cannot signal its instances`);
    return runtime.signal(handle, signal);
  }

  /** The instance is running (for reloads: a restart or signal only makes sense then). */
  get running(): boolean {
    return this.watched && !this.stopping && this.status.state === 'healthy';
  }

  /**
   * Unhealthy: take it out of lookups. Consul keeps it registered with its TTL check critical
   * (the reason as the check's output); other backends deregister it. Its heartbeats pause.
   */
  private async withdraw(reason: string): Promise<void> {
    const reg = this.status.registration;
    const discovery = this.host.discovery;
    if (this.withdrawn || !reg || !discovery || this.stopping) return;
    this.withdrawn = true;
    await discovery
      .withdraw(reg.service, reg.id, reason)
      .catch((err) => this.host.warn(`could not withdraw '${reg.service}' from discovery: ${errorText(err)}`, reg.service));
    this.host.emit({ type: 'deregistered', service: this.name, id: reg.id, reason });
    this.host.persist();
  }

  /** Healthy again: its check passes again (Consul), or it is registered again. */
  private async restore(): Promise<void> {
    const reg = this.status.registration;
    const discovery = this.host.discovery;
    if (!this.withdrawn || this.stopping || !this.watched) return;
    this.withdrawn = false;
    if (reg && discovery) {
      await discovery
        .restore(reg.service, reg.id)
        .catch((err) => this.host.warn(`could not restore '${reg.service}' in discovery: ${errorText(err)}`, reg.service));
      this.host.emit({ type: 'registered', service: this.name, id: reg.id });
    } else {
      await this.register(); // its registration went meanwhile: a fresh one
    }
    this.host.persist();
  }

  private async onExit(runtime: Runtime, exit: ExitInfo): Promise<void> {
    if (this.stopping || this.abort.signal.aborted) return;
    this.status.health = 'unhealthy';
    this.withdrawn = false;
    // Gone: its address is no longer one to render into dependents' configs (a restart registers it again).
    delete this.instance;
    await this.deregister();
    const planned = this.planned;
    if (planned?.kind === 'block') return this.host.setState(this, 'blocked', planned.reason);
    if (planned?.kind === 'restart') {
      delete this.planned;
      this.host.emit({ type: 'restart', service: this.name, attempt: this.status.restarts + 1, delayMs: planned.delayMs, exit: planned.reason });
      this.host.setState(this, 'waiting', `${planned.reason}; restarting${planned.delayMs > 0 ? ` in ${planned.delayMs} ms` : ''}`);
      try {
        await this.host.clock.sleep(planned.delayMs, this.abort.signal);
      } catch {
        return; // stopping
      }
      return this.restart(true, planned.reason);
    }
    if (runtime.appliesRestartPolicy) return this.host.setState(this, 'failed', describeExit(exit));
    const decision = restartDecision(this.spec.restart, exit, this.status.restarts);
    if (!decision.restart) {
      // A clean exit is `stopped` (Docker's "Exited (0)"); anything else is a failure.
      const clean = exit.code === 0 && exit.signal === null;
      return this.host.setState(this, clean ? 'stopped' : 'failed', `${describeExit(exit)}; not restarted: ${decision.why}`);
    }
    this.host.emit({ type: 'restart', service: this.name, attempt: this.status.restarts + 1, delayMs: decision.delayMs, exit: describeExit(exit) });
    this.host.setState(this, 'waiting', `${describeExit(exit)}; restarting in ${decision.delayMs} ms`);
    try {
      await this.host.clock.sleep(decision.delayMs, this.abort.signal);
    } catch {
      return; // stopping
    }
    await this.restart(true, describeExit(exit));
  }

  private async restart(counted = true, reason?: string): Promise<void> {
    if (this.planned?.kind === 'block' || this.stopping) return; // blocked meanwhile: `unblock` starts it
    if (counted) this.status.restarts++;
    this.host.setState(this, 'starting');
    // Tracked like the first start, so a stop arriving now waits for the new handle and stops it.
    const attempt = this.startAndAwaitReady();
    this.inflight = attempt.then(() => undefined);
    let failure = await attempt;
    if (this.stopping) return;
    if (failure === undefined) failure = await this.register();
    if (this.stopping) return;
    if (failure === undefined) {
      this.host.setState(this, 'healthy');
      this.watch();
      this.host.restarted?.(this, reason ?? 'restarted');
      return;
    }
    // Counts as another failed run: the policy decides again (its limit ends the loop).
    this.host.setState(this, 'failed', failure);
    const runtime = this.runtime;
    const handle = this.status.handle;
    if (!runtime || !this.exit || !handle) return;
    const stillRunning = await runtime.inspect(handle).then(
      (s) => s.running,
      () => false,
    );
    if (stillRunning) await runtime.stop(handle, { signal: this.spec.stopSignal, gracePeriodMs: this.spec.stopGracePeriodMs }).catch(() => undefined);
    await this.onExit(runtime, { code: 1, signal: null });
  }

  // ---- stopping and detaching -----------------------------------------------------------------

  /** Cancel every wait and monitor at once (the stop itself comes in dependency order). */
  cancel(): void {
    this.abort.abort();
  }

  /** Leave the instance running: stop watching and heartbeating (an exit is nobody's business here). */
  async detach(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    const stop = this.stopKeepAlive;
    delete this.stopKeepAlive;
    await stop?.().catch(() => undefined);
  }

  /** What the stopper stops for this service, and the states it shows meanwhile. */
  stopTarget(): StopTarget {
    let wasRunning = false;
    return {
      name: this.name,
      dependsOn: this.status.dependsOn,
      resolve: async () => {
        this.stopping = true;
        this.abort.abort();
        await this.inflight; // let an in-flight start finish, so its handle is known and stopped
        const registration = await this.letGoOfRegistration();
        const { handle } = this.status;
        const runs = handle && this.runtime && this.status.state !== 'stopped';
        wasRunning = this.status.state !== 'completed' && this.status.state !== 'failed';
        return {
          instances: runs ? [{ handle, runtime: this.runtime! }] : [],
          stopSignal: this.spec.stopSignal,
          gracePeriodMs: this.spec.stopGracePeriodMs,
          ...(registration ? { registration } : {}),
        };
      },
      onNothing: () => {
        if (!SETTLED_STATES.has(this.status.state)) this.host.setState(this, 'stopped', 'not started');
      },
      onStopping: () => {
        if (wasRunning) this.host.setState(this, 'stopping');
      },
      // A failed service keeps `failed` as its final state (with its reason), even once stopped.
      onStopped: () => {
        if (wasRunning) this.host.setState(this, 'stopped');
      },
    };
  }
}
