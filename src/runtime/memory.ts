/**
 * An in-memory runtime: no processes, no containers, only scripted behaviour on a `Clock`.
 *
 * It lets the engine's behaviour (gating, circular groups, timeouts, rollback, restart back-off,
 * interruption) be tested on a manual clock in milliseconds. Each start of a service follows a
 * script: how long the start takes (or that it fails), when its health check passes (or never),
 * when it exits by itself and how, and whether it ignores its stop signal (then it is killed when
 * the grace period is over). Health comes from `health`, a strategy that answers for whichever
 * instance a target points at (the engine's `strategyFor` option), so no port is ever opened.
 *
 * Like the real runtimes it converges: a start of a running service with the same config returns
 * the running instance (the same handle), one with another config replaces it.
 */
import { StackFailedError } from '../errors.js';
import type { HealthStrategy, HealthTarget, ProbeResult } from '../health/types.js';
import type { HealthStrategyName, RuntimeName } from '../profile/types.js';
import type { Clock } from '../util/clock.js';
import type { ExitInfo, InstanceStatus, Runtime, ServiceHandle, StartRequest, StopOptions } from './types.js';

/** What one start of a service does. Every field is optional: the default runs healthy forever. */
export interface MemoryScript {
  /** `start` rejects with this message. */
  startError?: string;
  /** How long `start` takes; default 0. */
  startDelayMs?: number;
  /** Health probes pass from this long after the start; default 0. */
  readyAfterMs?: number;
  /** Health probes never pass. */
  neverHealthy?: boolean;
  /** Probes of these strategies fail while the others pass (a dependent's own check may differ). */
  failsStrategies?: HealthStrategyName[];
  /** The instance exits by itself this long after it started. */
  exitAfterMs?: number;
  /** Its exit code when it exits by itself; default 0. */
  exitCode?: number;
  /** It ignores its stop signal: it is killed (SIGKILL) when the grace period is over. */
  ignoresStopSignal?: boolean;
}

/** One instance, as a test may look at it. */
export interface MemoryInstance {
  handle: ServiceHandle;
  request: StartRequest;
  /** 0 for the first start of the service, 1 for the next, … */
  attempt: number;
  startedAtMs: number;
  exited?: ExitInfo;
  /** How it was stopped (absent when it exited by itself or runs). */
  stoppedWith?: { signal: string; gracePeriodMs: number; killed: boolean };
  /** Signals sent to it while it ran (`Runtime.signal`), in order. */
  signals: string[];
}

export interface MemoryRuntimeOptions {
  clock: Clock;
  /** The runtime name it stands in for; default `process`. */
  name?: RuntimeName;
  /** The script of the `attempt`-th start of `service`; default: starts at once, healthy, runs forever. */
  script?: (service: string, attempt: number) => MemoryScript;
  /** As Docker: the runtime applies restart policies itself (the engine does not). */
  appliesRestartPolicy?: boolean;
}

export interface MemoryRuntime extends Runtime {
  /** Answers health probes for the instances of this runtime (any strategy name). */
  readonly health: HealthStrategy;
  /** Every instance ever started, in order. */
  readonly instances: readonly MemoryInstance[];
  /** The instances running now. */
  running(): MemoryInstance[];
  /** The running instance of `service`, if any. */
  current(service: string): MemoryInstance | undefined;
  /** Make the running instance of `service` exit now, as a crash would. */
  crash(service: string, exit?: ExitInfo): void;
  /** Mark the running instance of `service` (its replica 0, or `replica`) unhealthy (probes fail) or healthy again. */
  setHealthy(service: string, healthy: boolean, replica?: number): void;
}

interface Live extends MemoryInstance {
  script: MemoryScript;
  healthOverride?: boolean;
  exit: Promise<ExitInfo>;
  finish: (exit: ExitInfo) => void;
  stopTimers: AbortController;
}

export function createMemoryRuntime(opts: MemoryRuntimeOptions): MemoryRuntime {
  const { clock } = opts;
  const name = opts.name ?? 'process';
  const all: Live[] = [];
  const attempts = new Map<string, number>();
  let nextId = 1;

  const live = (l: Live) => l.exited === undefined;
  const byHandle = (handle: ServiceHandle) => all.find((l) => l.handle.id === handle.id);
  const currentOf = (stack: string, service: string, replica: number) =>
    all.find((l) => live(l) && l.handle.stack === stack && l.handle.service === service && l.handle.replica === replica);

  const end = (l: Live, exit: ExitInfo) => {
    if (!live(l)) return;
    l.exited = exit;
    l.stopTimers.abort();
    l.finish(exit);
  };

  const launch = (req: StartRequest, script: MemoryScript, attempt: number): Live => {
    const id = `mem-${nextId++}`;
    let finish!: (exit: ExitInfo) => void;
    const exit = new Promise<ExitInfo>((resolve) => (finish = resolve));
    const handle: ServiceHandle = {
      runtime: name,
      stack: req.stack,
      service: req.service.name,
      replica: req.replica,
      id,
      pid: 100_000 + nextId,
      startedAt: new Date().toISOString(),
    };
    const instance: Live = { handle, request: req, attempt, startedAtMs: clock.now(), script, exit, finish, stopTimers: new AbortController(), signals: [] };
    all.push(instance);
    if (script.exitAfterMs !== undefined) {
      clock.sleep(script.exitAfterMs, instance.stopTimers.signal).then(
        () => end(instance, { code: script.exitCode ?? 0, signal: null }),
        () => undefined,
      );
    }
    return instance;
  };

  const probe = (l: Live | undefined, strategy: HealthStrategyName): ProbeResult => {
    if (!l || !live(l)) return { ok: false, detail: 'not running' };
    if (l.script.failsStrategies?.includes(strategy)) return { ok: false, detail: `${strategy} check fails (scripted)` };
    if (l.healthOverride !== undefined) return l.healthOverride ? { ok: true, detail: 'healthy' } : { ok: false, detail: 'unhealthy' };
    if (l.script.neverHealthy) return { ok: false, detail: 'not healthy (scripted)' };
    const ready = clock.now() - l.startedAtMs >= (l.script.readyAfterMs ?? 0);
    return ready ? { ok: true, detail: 'healthy' } : { ok: false, detail: 'not ready yet' };
  };

  /** The instance a health target points at: `endpoint` encodes the instance id in the host. */
  const targetOf = (target: HealthTarget): Live | undefined => {
    const id = target.host?.startsWith('memory.') ? target.host.slice('memory.'.length) : undefined;
    if (id !== undefined) return all.find((l) => l.handle.id === id);
    return all.find((l) => live(l) && l.request.service.port !== undefined && l.request.service.port === target.port);
  };

  const runtime: MemoryRuntime = {
    name,
    ...(opts.appliesRestartPolicy ? { appliesRestartPolicy: true } : {}),
    health: { name: 'http', probe: async (check, target) => probe(targetOf(target), check.strategy) },
    get instances() {
      return all;
    },
    running: () => all.filter(live),
    current: (service) => all.find((l) => live(l) && l.handle.service === service),
    crash(service, exit = { code: 1, signal: null }) {
      const l = all.find((i) => live(i) && i.handle.service === service);
      if (l) end(l, exit);
    },
    setHealthy(service, healthy, replica) {
      const l = all.find((i) => live(i) && i.handle.service === service && (replica === undefined || i.handle.replica === replica));
      if (l) l.healthOverride = healthy;
    },
    async prepare() {},
    async start(req) {
      const key = `${req.stack}/${req.service.name}`;
      const attempt = attempts.get(key) ?? 0;
      attempts.set(key, attempt + 1);
      const script = opts.script?.(req.service.name, attempt) ?? {};
      if (script.startDelayMs) await clock.sleep(script.startDelayMs);
      if (script.startError !== undefined) throw new StackFailedError(script.startError, { code: 'start_failed' });
      const running = currentOf(req.stack, req.service.name, req.replica);
      if (running && req.service.kind === 'service' && configOf(running.request) === configOf(req)) return running.handle;
      if (running) end(running, { code: null, signal: 'SIGTERM' });
      return launch(req, script, attempt).handle;
    },
    async wait(handle) {
      const l = byHandle(handle);
      if (!l) return { code: null, signal: null };
      return l.exit;
    },
    async stop(handle, stopOpts: StopOptions) {
      const l = byHandle(handle);
      if (!l || !live(l)) return;
      const killed = Boolean(l.script.ignoresStopSignal);
      l.stoppedWith = { signal: stopOpts.signal, gracePeriodMs: stopOpts.gracePeriodMs, killed };
      if (killed) await clock.sleep(stopOpts.gracePeriodMs);
      end(l, { code: null, signal: killed ? 'SIGKILL' : stopOpts.signal });
    },
    async signal(handle, signal) {
      const l = byHandle(handle);
      if (!l || !live(l)) throw new StackFailedError(`${handle.service} does not run`, { code: 'not_running' });
      l.signals.push(signal);
    },
    async inspect(handle): Promise<InstanceStatus> {
      const l = byHandle(handle);
      if (!l) return { running: false };
      return live(l) ? { running: true } : { running: false, exit: l.exited! };
    },
    async *logs() {},
    async discover(stack) {
      return all.filter((l) => live(l) && l.handle.stack === stack).map((l) => l.handle);
    },
    async teardown() {},
    endpoint: (handle, port) => ({ host: `memory.${handle.id}`, port }),
    async close() {},
  };
  return runtime;
}

/** What decides whether a running instance can be kept: the service's spec and its environment. */
function configOf(req: StartRequest): string {
  // As the real runtimes: the replica count is not part of an instance's config (scaling keeps the others).
  const { replicas: _r, ...service } = req.service;
  return JSON.stringify([service, req.environment, req.files.map((f) => f.destination)]);
}
