/**
 * One service's life during a run: start → ready → register → monitor → restart, on the run's
 * `Clock`. The run (engine.ts) decides when it starts (the scheduler) and records every state
 * change (`host.setState`); the lifecycle does everything in between, and says what to stop.
 *
 * - Ready: a service is ready once its health check passes (a service without one: once it has
 *   run `settleMs`), a task once it exited 0; an exit first, or `dependencyTimeout`, is a failure.
 * - Dependents that judge this service by their own check (`dependencies[].healthCheck`) probe it
 *   from the moment it has started, within `dependencyTimeout`, and report to the gates.
 * - Register: once ready, with the profile's TTL, heartbeated until stop or detach.
 * - Monitor (after startup, `supervise`): health transitions are reported, not acted on; an exit
 *   deregisters it and applies the restart policy (restart.ts) unless the runtime applies it.
 */
import path from 'node:path';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import type { StackGraph } from '../plan/types.js';
import { monitorHealth, waitUntilHealthy } from '../health/monitor.js';
import { healthTargetFor } from '../runtime/target.js';
import type { HealthStrategy, HealthTarget, ProbeResult } from '../health/types.js';
import type { HealthCheckSpec, HealthStrategyName, Profile, ServiceSpec } from '../profile/types.js';
import type { ExitInfo, Runtime, ServiceHandle, StartRequest } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';
import { sameInstance } from './converge.js';
import type { RenderConfigs } from './engine.js';
import type { LocalGates } from './gates.js';
import { describeExit, restartDecision } from './restart.js';
import type { RuntimeSet } from './runtimes.js';
import type { StopTarget } from './stopper.js';
import { SETTLED_STATES, type EngineEvent, type ServiceState, type ServiceStatus } from './types.js';
import { discoveryEnvironmentFor } from '../discovery/client-env.js';

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
}

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
  instance?: ServiceInstance;
  /** The lifecycle in flight (start → healthy, or a restart). */
  inflight?: Promise<void>;
  stopping = false;
  /** The instance an earlier `up` left running, until `start` keeps or replaces it. */
  previous?: ServiceHandle;
  private exit?: Promise<ExitInfo>;
  private request?: StartRequest;
  private stopKeepAlive?: () => Promise<void>;
  /** Its exit is being watched (after startup): an exit goes through `onExit`. */
  private watching = false;
  /** Set by `restartOnRequest`: the next exit is ours, and starts it again whatever the policy. */
  private restartRequested = false;

  constructor(
    private readonly host: LifecycleHost,
    readonly spec: ServiceSpec,
    status: ServiceStatus,
  ) {
    this.status = status;
    this.since = host.clock.now();
  }

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
    if (this.spec.kind === 'task') return this.host.setState(this, 'completed');
    await this.register();
    if (this.stopping) return;
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
        ready = kept ? Promise.resolve({ kind: 'ready' as const }) : clock.sleep(settings.settleMs, race.signal).then(() => ({ kind: 'ready' as const }), aborted);
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
      if (first.kind === 'ready') this.status.health = check ? 'healthy' : 'none';
      return first;
    } finally {
      this.abort.signal.removeEventListener('abort', onAbort);
      race.abort();
    }
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
  }

  private async render(configDir: string, dependencies: Record<string, ServiceInstance[]>) {
    const { stack, profile, renderConfigs } = this.host;
    const instances = [...this.host.all()].flatMap((s) => (s.instance ? [s.instance] : []));
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
    const running = runtime && handle ? await runtime.inspect(handle).then((s) => s.running, () => false) : false;
    const stop = () => runtime!.stop(handle!, { signal: this.spec.stopSignal, gracePeriodMs: this.spec.stopGracePeriodMs });
    if (running && this.watching) {
      this.restartRequested = true; // onExit starts it again
      await stop();
      return;
    }
    if (running) await stop();
    this.host.emit({ type: 'restart', service: this.name, attempt: this.status.restarts + 1, delayMs: 0, exit: 'restart requested' });
    void this.restart();
  }

  /** Instances of the healthy services it depends on (for templates and env injection). */
  private dependencyInstances(): Record<string, ServiceInstance[]> {
    const out: Record<string, ServiceInstance[]> = {};
    for (const edge of this.host.graph.dependenciesOf(this.name)) {
      const dep = this.host.lifecycle(edge.to);
      if (dep?.instance) out[edge.to] = [dep.instance];
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
    if (!settings.healthChecks) return;
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
    const runs = await this.runtime?.inspect(previous).then((s) => s.running, () => false);
    if (runs || this.status.handle !== previous) return;
    delete this.status.handle;
    delete this.status.startedAt;
  }

  // ---- discovery ------------------------------------------------------------------------------

  private async register(): Promise<void> {
    const { stack, discovery, settings } = this.host;
    const spec = this.spec;
    const instance: ServiceInstance = {
      id: `${stack}-${spec.name}-0`,
      service: spec.name,
      address: spec.address,
      ...(spec.port !== undefined ? { port: spec.port, url: `${spec.scheme ?? 'http'}://${spec.address}:${spec.port}` } : {}),
      tags: [...spec.tags],
      meta: { ...spec.meta, stack },
      registeredAt: new Date().toISOString(),
    };
    this.instance = instance;
    if (!discovery?.canRegister) return;
    const { registeredAt: _r, expiresAt: _e, ...input } = instance;
    try {
      await discovery.register(input, { ttlMs: settings.ttlMs });
      this.status.registration = { service: instance.service, id: instance.id };
      this.stopKeepAlive = discovery.keepAlive(input, settings.heartbeatIntervalMs, { ttlMs: settings.ttlMs });
      this.host.emit({ type: 'registered', service: spec.name, id: instance.id });
    } catch (err) {
      this.host.warn(`could not register '${spec.name}' in discovery: ${errorText(err)}`, spec.name);
    }
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
    await this.host.discovery.deregister(reg.service, reg.id).catch((err) => this.host.warn(`could not deregister '${reg.service}': ${errorText(err)}`, reg.service));
  }

  // ---- after startup: health monitoring and the restart policy --------------------------------

  /** Watch the current instance: health transitions, and its exit (the restart policy). */
  watch(): void {
    const runtime = this.runtime;
    const handle = this.status.handle;
    if (!runtime || !handle || this.spec.kind === 'task') return;
    const watch = new AbortController();
    const check = this.host.settings.healthChecks ? this.spec.healthCheck : undefined;
    if (check) {
      void monitorHealth(check, this.healthTarget(runtime, handle, check), {
        clock: this.host.clock,
        signal: AbortSignal.any([this.abort.signal, watch.signal]),
        onProbe: (result) => {
          this.recordHealth(result);
          this.host.persist();
        },
        onChange: (healthy, result) => {
          this.status.health = healthy ? 'healthy' : 'unhealthy';
          this.host.emit({ type: 'health', service: this.name, healthy, detail: result.detail });
          this.host.persist();
        },
        ...this.strategy(check),
      });
    }
    this.watching = true;
    void this.exit?.then((exit) => {
      watch.abort();
      this.watching = false;
      return this.onExit(runtime, exit);
    });
  }

  private async onExit(runtime: Runtime, exit: ExitInfo): Promise<void> {
    if (this.stopping || this.abort.signal.aborted) return;
    this.status.health = 'unhealthy';
    await this.deregister();
    if (this.restartRequested) {
      this.restartRequested = false;
      this.host.emit({ type: 'restart', service: this.name, attempt: this.status.restarts + 1, delayMs: 0, exit: `${describeExit(exit)} (restart requested)` });
      return this.restart();
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
    await this.restart();
  }

  private async restart(): Promise<void> {
    this.status.restarts++;
    this.host.setState(this, 'starting');
    // Tracked like the first start, so a stop arriving now waits for the new handle and stops it.
    const attempt = this.startAndAwaitReady();
    this.inflight = attempt.then(() => undefined);
    const failure = await attempt;
    if (this.stopping) return;
    if (failure === undefined) {
      await this.register();
      this.host.setState(this, 'healthy');
      this.watch();
      return;
    }
    // Counts as another failed run: the policy decides again (its limit ends the loop).
    this.host.setState(this, 'failed', failure);
    const runtime = this.runtime;
    const handle = this.status.handle;
    if (!runtime || !this.exit || !handle) return;
    const stillRunning = await runtime.inspect(handle).then((s) => s.running, () => false);
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

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
