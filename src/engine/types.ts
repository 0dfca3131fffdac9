/**
 * The engine's vocabulary: the life of a service during `up`, the events the engine emits, and
 * what a caller gets back. Nothing here holds an environment value, so events and state files
 * can never leak a secret.
 */
import type { ProbeResult } from '../health/types.js';
import type { ServiceKind } from '../profile/types.js';
import type { ServiceHandle } from '../runtime/types.js';

/**
 * pending → waiting → starting → checking (a service) | running (a task) → healthy | completed
 * (a task that exited 0) | failed | blocked (a required dependency failed; never started) | stopped.
 * `stopping` is shown while a service is being stopped; a restart goes back to `starting`.
 */
export type ServiceState =
  'pending' | 'waiting' | 'starting' | 'checking' | 'running' | 'healthy' | 'completed' | 'failed' | 'blocked' | 'stopping' | 'stopped';

/** States a service ends its startup in: nothing more happens to it until something stops it. */
export const SETTLED_STATES: ReadonlySet<ServiceState> = new Set(['healthy', 'completed', 'failed', 'blocked', 'stopped']);

/** What the monitor last said; `none` when the service has no health check (or checks are off). */
export type HealthState = 'unknown' | 'healthy' | 'unhealthy' | 'none';

export interface LastHealth {
  ok: boolean;
  detail: string;
  /** ISO-8601. */
  at: string;
}

/** Everything known about one service, as shown by `status` and kept in the state file. */
export interface ServiceStatus {
  name: string;
  kind: ServiceKind;
  state: ServiceState;
  /** The runtime has started it at least once (the `started` gate). */
  started: boolean;
  health: HealthState;
  /** Why it failed, was blocked, or was stopped (`unchanged` when healthy: see below); never a secret. */
  reason?: string;
  /** Its instance was kept from an earlier `up`: it ran already, with the same config hash. */
  unchanged?: boolean;
  handle?: ServiceHandle;
  /** ISO-8601 time the current instance started. */
  startedAt?: string;
  restarts: number;
  lastHealth?: LastHealth;
  /** Names of the services it depends on (stop order after a crash, without the profile). */
  dependsOn: string[];
  stopSignal: string;
  stopGracePeriodMs: number;
  /** Discovery registration to remove on stop. */
  registration?: { service: string; id: string };
  /** After startup: the last re-render of its templates, and why it happened. */
  lastRender?: LastRender;
  /** `replicas: N`: the status of replicas 1…N-1 (this one is replica 0). */
  replicas?: ServiceStatus[];
  /** Its replica index when it is one of `replicas` (absent: 0). */
  replica?: number;
}

export interface LastRender {
  /** ISO-8601. */
  at: string;
  template: string;
  outcome: RenderOutcome;
  /** What triggered it (`records of 'api' changed`), and for a failure why it failed. */
  reason: string;
}

/** changed: written (and its change mode applied); unchanged: nothing written; failed: the last good file kept. */
export type RenderOutcome = 'changed' | 'unchanged' | 'failed';

/** What a changed template (or a dependency's restart) did to its service. */
export type ReloadAction = 'restart' | 'signal' | 'script' | 'noop';

export type EngineEvent =
  | { type: 'state'; service: string; state: ServiceState; previous: ServiceState; elapsedMs: number; reason?: string; pid?: number }
  | { type: 'health'; service: string; healthy: boolean; detail: string }
  | { type: 'restart'; service: string; attempt: number; delayMs: number; exit: string }
  | { type: 'registered'; service: string; id: string }
  | { type: 'warning'; service?: string; message: string }
  | { type: 'render'; service: string; template: string; outcome: RenderOutcome; reason: string }
  | { type: 'reload'; service: string; action: ReloadAction; reason: string; template?: string; signal?: string }
  | { type: 'deregistered'; service: string; id: string; reason: string }
  | { type: 'stack'; stack: string; phase: StackPhase; elapsedMs: number }
  | LeaderEvent;

/** A supervisor of a leader-follower stack (leadership.ts): as this host's supervisor sees it. */
export interface CandidateView {
  /** Its candidate id (`<host>-<pid>`). */
  id: string;
  host: string;
  address: string;
}

/**
 * Leader-follower: who leads, and every hand-over, as this host's supervisor sees it.
 * - `elected`: this supervisor won `term` (`previous`: the leader before it, when known);
 * - `observed`: another supervisor leads now (a hand-over seen from a follower), or nobody does (`leader: null`);
 * - `fenced`: the new leader removed the singletons' records of an older term (`reason` says which);
 * - `stepped-down`: this supervisor lost its term (`reason`: expired, taken, unreachable) and stopped its singletons;
 * - `resigned`: it gave its term up (stopping, or relieved), after stopping its singletons.
 */
export interface LeaderEvent {
  type: 'leader';
  stack: string;
  change: 'elected' | 'observed' | 'fenced' | 'stepped-down' | 'resigned';
  /** This supervisor (who reports). */
  self: CandidateView;
  leader: CandidateView | null;
  term: number | null;
  previous?: CandidateView & { term: number };
  reason?: string;
}

export type StackPhase = 'starting' | 'up' | 'failed' | 'interrupted' | 'stopping' | 'stopped' | 'detached';

/** How `up` ended its startup. */
export interface StartupReport {
  outcome: 'up' | 'failed' | 'interrupted';
  /** Final state of every service of the run. */
  services: ServiceStatus[];
  failed: { service: string; reason: string }[];
  blocked: { service: string; reason: string }[];
  warnings: string[];
  elapsedMs: number;
}

export type HealthProbeResult = ProbeResult;
