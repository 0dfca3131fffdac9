/**
 * Reading Swarm tasks back: readiness of a service, and each task on its node, for `inspect`
 * and `status`. Pure functions over the manager's task list.
 *
 * Task health is not a field of the manager's task list: a task whose container has a HEALTHCHECK
 * stays `starting` until the first healthy result, then `running`; an unhealthy one goes `failed`
 * ("unhealthy container") and Swarm replaces it. So `running` with desired state `running` is
 * "running and healthy" (or running with no check).
 */
import type Dockerode from 'dockerode';
import type { Placement } from './types.js';

/** The fields of a task we read (dockerode types tasks as `any`). */
export interface SwarmTask {
  ID: string;
  NodeID?: string;
  Slot?: number;
  DesiredState?: string;
  CreatedAt?: string;
  UpdatedAt?: string;
  Status?: {
    State?: string;
    Timestamp?: string;
    Message?: string;
    Err?: string;
    ContainerStatus?: { ContainerID?: string; ExitCode?: number };
    PortStatus?: { Ports?: { TargetPort?: number; PublishedPort?: number; Protocol?: string }[] };
  };
  /** The task's addresses on each network (`10.0.1.5/24`). */
  NetworksAttachments?: { Network?: { Spec?: { Name?: string } }; Addresses?: string[] }[];
}

/** One task as `status` shows it. */
export interface TaskView {
  id: string;
  slot: number;
  node: string;
  nodeId: string;
  /** The node's address (where host-mode ports are published). */
  address: string;
  nodeState: string;
  state: string;
  desired: string;
  /** healthy: running (after its HEALTHCHECK passed); starting; unhealthy: failed as such. */
  health: 'healthy' | 'starting' | 'unhealthy' | 'none';
  since: string;
  error?: string;
  containerId?: string;
  ports: { container: number; published: number }[];
}

export function describeTasks(tasks: SwarmTask[], nodes: Map<string, { name: string; address: string; state: string }>): TaskView[] {
  return tasks
    .map((t): TaskView => {
      const node = nodes.get(t.NodeID ?? '');
      const state = t.Status?.State ?? 'unknown';
      const error = t.Status?.Err;
      const view: TaskView = {
        id: t.ID,
        slot: t.Slot ?? 0,
        node: node?.name ?? t.NodeID ?? '',
        nodeId: t.NodeID ?? '',
        address: node?.address ?? '',
        nodeState: node?.state ?? 'unknown',
        state,
        desired: t.DesiredState ?? 'unknown',
        health: state === 'running' ? 'healthy' : state === 'starting' ? 'starting' : error?.includes('unhealthy') ? 'unhealthy' : 'none',
        since: t.Status?.Timestamp ?? t.UpdatedAt ?? '',
        ports: (t.Status?.PortStatus?.Ports ?? [])
          .filter((p) => p.TargetPort && p.PublishedPort)
          .map((p) => ({ container: p.TargetPort!, published: p.PublishedPort! })),
      };
      if (error) view.error = error;
      if (t.Status?.ContainerStatus?.ContainerID) view.containerId = t.Status.ContainerStatus.ContainerID;
      return view;
    })
    .sort((a, b) => a.slot - b.slot || (b.since < a.since ? -1 : 1));
}

export interface Readiness {
  ready: boolean;
  /** Set when waiting longer cannot help (rolled-back or paused update). */
  failed?: string;
  /** Tasks that failed or were rejected since the start began. */
  failures: number;
  lastError?: string;
  /** "1/3 running; pending: no suitable node (…)": for a timeout's message. */
  summary: string;
}

const FAILED_STATES = new Set(['failed', 'rejected']);

export function readiness(info: Dockerode.Service, tasks: SwarmTask[], sinceMs: number): Readiness {
  const desired = info.Spec?.Mode?.Replicated?.Replicas ?? 1;
  const update = (info as Dockerode.Service & { UpdateStatus?: { State?: string; Message?: string } }).UpdateStatus;
  const failures = tasks.filter((t) => FAILED_STATES.has(t.Status?.State ?? '') && Date.parse(t.CreatedAt ?? '') >= sinceMs);
  const lastError = failures.map((t) => t.Status?.Err ?? t.Status?.Message).find((e) => e);
  const base = { failures: failures.length, ...(lastError ? { lastError } : {}) };
  if (update?.State === 'rollback_completed' || update?.State === 'rollback_paused' || update?.State === 'paused') {
    return { ...base, ready: false, failed: `update ${update.State.replace('_', ' ')}: ${update.Message ?? ''}`.trim(), summary: update.State };
  }
  const current = tasks.filter((t) => t.DesiredState === 'running');
  const running = current.filter((t) => t.Status?.State === 'running').length;
  const updating = update?.State === 'updating' || update?.State === 'rollback_started';
  const waiting = current
    .filter((t) => t.Status?.State !== 'running')
    .map((t) => `${t.Status?.State ?? '?'}${t.Status?.Err ? ` (${t.Status.Err})` : t.Status?.Message ? ` (${t.Status.Message})` : ''}`);
  const summary = `${running}/${desired} tasks running${waiting.length ? `; ${[...new Set(waiting)].join(', ')}` : ''}${updating ? '; update in progress' : ''}`;
  return { ...base, ready: !updating && running >= desired && current.length === running, summary };
}

/** A node as `listNodes` describes it, by node id. */
export type NodeDirectory = Map<string, { name: string; address: string; state: string }>;

/**
 * The tasks clients may be sent to, one per slot: desired and observed running (so healthy, see
 * the header) on a node that is up. Each is where its port is published in host mode: its node's
 * address and the published port. A task whose port is not published is reached through
 * the overlay network: the service's name there and the container port (in-cluster only; a
 * stable name, so a task that moves does not change what dependents render).
 * `meta.overlay` is the service's name on the overlay network (every task behind it, dnsrr),
 * `meta.taskAddress` the task's own address there; `tasks.<overlay>` resolves to every task.
 */
export function taskInstances(
  tasks: SwarmTask[],
  nodes: NodeDirectory,
  service: { name: string; port?: number | undefined; scheme?: string | undefined },
  network: string,
): Placement[] {
  const scheme = service.scheme ?? 'http';
  const url = (host: string, port: number) => `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const bySlot = new Map<string, Placement>();
  const current = tasks.filter((t) => t.DesiredState === 'running' && t.Status?.State === 'running' && nodes.get(t.NodeID ?? '')?.state === 'ready');
  // The newest first: during a start-first update two tasks of a slot may run; the new one counts.
  current.sort((a, b) => (b.CreatedAt ?? '').localeCompare(a.CreatedAt ?? ''));
  for (const t of current) {
    const node = nodes.get(t.NodeID ?? '')!;
    const key = t.Slot ? String(t.Slot) : (t.NodeID ?? t.ID); // global services have no slots: one task per node
    if (bySlot.has(key)) continue;
    const meta: Record<string, string> = { node: node.name, slot: key, task: t.ID, overlay: service.name };
    const instance: Placement = { key, address: node.address, meta };
    const own = t.NetworksAttachments?.find((n) => n.Network?.Spec?.Name === network)?.Addresses?.[0]?.split('/')[0];
    if (own) meta.taskAddress = own;
    if (service.port !== undefined) {
      meta.overlayUrl = url(service.name, service.port);
      const published = t.Status?.PortStatus?.Ports?.find((p) => p.TargetPort === service.port && p.PublishedPort)?.PublishedPort;
      if (published !== undefined) Object.assign(instance, { port: published, url: url(node.address, published) });
      else Object.assign(instance, { address: service.name, port: service.port, url: meta.overlayUrl });
    }
    bySlot.set(key, instance);
  }
  return [...bySlot.values()].sort((a, b) => a.key.localeCompare(b.key, undefined, { numeric: true }));
}
