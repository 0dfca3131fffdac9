/**
 * The health-gated startup engine: take a plan and make it real, as fast as the graph allows.
 *
 * In parts: a run (run.ts) holds the state and ties together the pure scheduler (scheduler.ts:
 * which units start now), each service's lifecycle (lifecycle.ts: start → ready → register →
 * monitor → restart, on the run's Clock) and the one stopper (stopper.ts, also used by `down`).
 * Its behaviour is tested on the in-memory runtime (runtime/memory.ts) and a manual clock. Most
 * callers want `upStack` (stack.ts), which adds the wiring: runtimes, discovery, templates.
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
 *   gate must not be satisfied by a service that keeps crashing.
 * - After startup: a service failing its check `restart.failuresBeforeRestart` times in
 *   a row is restarted (`restart.onUnhealthy: false` turns that off) and is withdrawn from
 *   discovery while unhealthy; templates follow discovery (reload.ts); a dependency's restart
 *   restarts or re-renders its dependents per edge (`onDependencyRestart`); a required
 *   dependency down past `dependencyTimeout` blocks its dependents until it is back.
 * - `replicas: N` runs N instances, each registered, checked and restarted on its own; dependents
 *   are gated on replica 0 (a process replica listens on `port + index`). A runtime that runs
 *   replicas itself (`capabilities.replicas`: Swarm) gets one instance with the count.
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
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import type { Plan, StackGraph } from '../plan/types.js';
import type { HealthStrategy } from '../health/types.js';
import type { HealthStrategyName, Profile, RuntimeName, ServiceSpec } from '../profile/types.js';
import type { RenderedFile, Runtime } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';
import { electsLeader } from '../plan/hosts.js';
import { onHost } from './hosts.js';
import { startLeaderFollower, type ElectionFactory } from './leadership.js';
import type { RuntimeSet } from './runtimes.js';
import { StackRun } from './run.js';
import type { RerenderTemplate } from './templates.js';
import type { EngineEvent, ServiceStatus, StartupReport } from './types.js';

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
  graph: StackGraph;
  plan: Plan;
}

export interface StartStackOptions {
  /** Runtimes by name; default: created on demand (the process runtime, Docker imported lazily). */
  runtimes?: RuntimeSet | Partial<Record<RuntimeName, Runtime>>;
  discovery?: DiscoveryManager;
  renderConfigs?: RenderConfigs;
  /** After startup: re-render one template when the records it names change (templates.ts); needs `discovery`. */
  rerender?: RerenderTemplate;
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
  /** The strategy that probes health checks of each name; default the built-in ones (tests: the memory runtime's). */
  strategyFor?: (name: HealthStrategyName) => HealthStrategy;
  /**
   * The host this run is, in a profile with `hosts:` (`stack up --host`, `STACK_HOST`); default the
   * plan's (`planStack(…, { host })`). Peer-to-peer and mesh need one: this run starts the services
   * placed on it (and `host: all` ones) and waits for the others in discovery. Hub-spoke: where the
   * hub runs (it starts every service).
   */
  host?: string;
  /**
   * Leader-follower: how this host's supervisor joins the election (leadership.ts). Default: the
   * profile's discovery backend that elects (`createElection`); tests hand in a double.
   */
  election?: ElectionFactory;
  /** Internal (leadership.ts): where this run keeps its lock, state file and control channel; default `stateDir`. */
  runDir?: string;
  /** Internal (leadership.ts): the leader's term its singletons are registered under (`meta.term`). */
  term?: number;
  /** Internal (leadership.ts): once this run's services are stopped, before the runtimes tear down what they prepared. */
  beforeTeardown?: () => Promise<void>;
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

/**
 * Start a plan: the run begins at once; `ready` says how startup ended. Throws (UsageError) at once
 * for a profile with hosts that needs `host` and has none, or names an unknown one.
 */
export function startStack(input: StartStackInput, opts: StartStackOptions = {}): StackController {
  const local = onHost(input, opts.host);
  // Leader-follower: this host's share, and the singletons while its supervisor leads (leadership.ts).
  if (local.plan.host !== undefined && local.plan.share === undefined && electsLeader(local.profile)) return startLeaderFollower(local, opts);
  return new StackRun(local, opts).controller();
}
