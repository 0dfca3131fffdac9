/**
 * What `stack status` shows: the state file, checked against reality. The `stack up` that wrote
 * the file may be gone (detached, or killed): each handle is inspected through its runtime, and
 * instances the runtimes find that the file does not know are listed too.
 */
import type { RuntimeName } from '../profile/types.js';
import type { InstanceStatus, InstanceTask, ServiceHandle } from '../runtime/types.js';
import { lockOwnerAlive, readLock, type LockInfo } from './lock.js';
import type { LeadershipStatusView } from './leadership-state.js';
import type { RuntimeSet } from './runtimes.js';
import type { AcrossHostsView } from './status-hosts.js';
import { readStateFile } from './state.js';
import type { ServiceStatus, StackPhase } from './types.js';

export interface ServiceStatusView extends ServiceStatus {
  /** The runtime says the instance runs now. */
  running: boolean;
  /** Milliseconds since the current instance started, when it runs. */
  uptimeMs?: number;
  /** A service the runtime runs as tasks across machines (swarm): its current tasks, by slot. */
  tasks?: TaskStatusView[];
}

export type TaskStatusView = Pick<InstanceTask, 'slot' | 'node' | 'state' | 'health' | 'error'>;

export interface StackStatusView {
  stack: string;
  /** Nothing recorded and nothing found. */
  empty: boolean;
  phase?: StackPhase;
  /**
   * The `stack up` that wrote the state, and whether it still runs (then it supervises the stack:
   * health, restarts, discovery heartbeats). `detached`: it is the background supervisor of
   * `stack up --detach`.
   */
  owner?: { pid: number; alive: boolean; detached?: boolean };
  services: ServiceStatusView[];
  /**
   * A profile with `hosts:`: every instance on every host (this machine's share and discovery's
   * records); absent for a stack on one host. `empty` then also means nothing is registered.
   */
  hosts?: AcrossHostsView;
  /** A leader-follower stack: who leads, its term, since when, its followers (leadership-state.ts). */
  leadership?: LeadershipStatusView;
}

export interface ReadStatusOptions {
  stack: string;
  stateDir: string;
  runtimes: RuntimeSet;
  /** Runtimes to ask for instances the state file missed (the profile's). */
  runtimeNames?: RuntimeName[];
  /** Leader-follower: the folder of the leader's share (its singletons' state file), when this host leads. */
  leaderDir?: string;
  now?: () => number;
}

export async function readStackStatus(opts: ReadStatusOptions): Promise<StackStatusView> {
  const now = opts.now ?? Date.now;
  const state = await readStateFile(opts.stateDir, opts.stack);
  const lock = await readLock(opts.stateDir, opts.stack);
  const ownerAlive = state
    ? lockOwnerAlive({
        pid: state.owner.pid,
        ...(state.owner.processStartTime ? { processStartTime: state.owner.processStartTime } : {}),
        startedAt: state.owner.startedAt,
        command: 'up',
      })
    : false;
  // This host's supervisor leads: the singletons it runs are recorded in the leader's share.
  const singletons = opts.leaderDir ? await readStateFile(opts.leaderDir, opts.stack).catch(() => undefined) : undefined;
  const recorded = [...Object.values(state?.services ?? {}), ...Object.values(singletons?.services ?? {})];
  const names = new Set<RuntimeName>(opts.runtimeNames ?? []);
  for (const s of recorded) if (s.handle) names.add(s.handle.runtime);
  if (names.size === 0) names.add('process');
  // What the runtimes find is authoritative: the state file may lag a moment behind a start.
  const found = new Map<string, ServiceHandle>();
  for (const name of names) {
    const runtime = await opts.runtimes.get(name);
    for (const handle of await runtime.discover(opts.stack).catch(() => [])) if (!found.has(handle.service)) found.set(handle.service, handle);
  }

  const services: ServiceStatusView[] = [];
  const seen = new Set<string>();
  for (const status of recorded) {
    seen.add(status.name);
    let handle = status.handle;
    let inspected = handle ? await inspect(opts.runtimes, handle) : undefined;
    let running = inspected?.running ?? false;
    const discovered = found.get(status.name);
    if (!running && discovered) {
      handle = discovered;
      running = true;
      inspected = await inspect(opts.runtimes, discovered);
    }
    const view: ServiceStatusView = {
      ...status,
      ...(handle ? { handle, startedAt: status.startedAt ?? handle.startedAt } : {}),
      running,
      ...currentTasks(inspected),
    };
    if (running && view.startedAt) view.uptimeMs = Math.max(0, now() - Date.parse(view.startedAt));
    // Nobody watches any more (the writer was killed): say what we see, not what was last written.
    if (!ownerAlive && !running && status.started && (status.state === 'healthy' || status.state === 'checking' || status.state === 'starting')) {
      view.state = 'failed';
      view.reason = 'not running (exited after its `stack up` was gone)';
      view.health = status.health === 'none' ? 'none' : 'unhealthy';
    }
    services.push(view);
  }
  for (const handle of found.values()) {
    if (seen.has(handle.service)) continue;
    seen.add(handle.service);
    const inspected = await inspect(opts.runtimes, handle);
    services.push({
      name: handle.service,
      kind: 'service',
      state: 'healthy',
      reason: 'found running, not in the state file',
      started: true,
      health: 'unknown',
      handle,
      startedAt: handle.startedAt,
      restarts: 0,
      dependsOn: [],
      stopSignal: 'SIGTERM',
      stopGracePeriodMs: 10_000,
      running: true,
      uptimeMs: Math.max(0, now() - Date.parse(handle.startedAt)),
      ...currentTasks(inspected),
    });
  }
  services.sort((a, b) => a.name.localeCompare(b.name));
  return {
    stack: opts.stack,
    empty: !state && services.length === 0,
    ...(state
      ? { phase: state.phase, owner: ownerView(state.owner.pid, ownerAlive, lock) }
      : lock
        ? { owner: ownerView(lock.pid, lockOwnerAlive(lock), lock) }
        : {}),
    services,
  };
}

/** What the runtime says of an instance; one it cannot inspect counts as not running. */
async function inspect(runtimes: RuntimeSet, handle: ServiceHandle): Promise<InstanceStatus | undefined> {
  const runtime = await runtimes.get(handle.runtime);
  return runtime.inspect(handle).catch(() => undefined);
}

/** The tasks the cluster wants running (its history of replaced tasks is left out), by slot. */
function currentTasks(inspected: InstanceStatus | undefined): { tasks?: TaskStatusView[] } {
  if (!inspected?.tasks) return {};
  const tasks = inspected.tasks
    .filter((t) => t.desired === 'running')
    .map((t): TaskStatusView => ({ slot: t.slot, node: t.node, state: t.state, health: t.health, ...(t.error ? { error: t.error } : {}) }))
    .sort((a, b) => a.slot - b.slot);
  return { tasks };
}

function ownerView(pid: number, alive: boolean, lock: LockInfo | undefined): NonNullable<StackStatusView['owner']> {
  return { pid, alive, ...(alive && lock?.pid === pid && lock.detached ? { detached: true } : {}) };
}
