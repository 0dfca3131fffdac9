/**
 * What `stack ui`'s page shows, and how each message from the server changes it: a pure reducer,
 * shared by the server (types) and the page (bundled into dist/ui). The server sends snapshots
 * (the status `stack status` computes, registrations, render records) and the engine's events as
 * they happen; an event updates the service at once, the next snapshot confirms or corrects it.
 *
 * Nothing here holds a secret: events and status never carry environment values, and the server
 * masks every payload before sending it (ui/mask.ts).
 */

// Structural copies of the engine's types, so the page's bundle imports no Node code.
export type ServiceState =
  'pending' | 'waiting' | 'starting' | 'checking' | 'running' | 'healthy' | 'completed' | 'failed' | 'blocked' | 'stopping' | 'stopped';
export type HealthState = 'unknown' | 'healthy' | 'unhealthy' | 'none';
export type StackPhase = 'starting' | 'up' | 'failed' | 'interrupted' | 'stopping' | 'stopped' | 'detached';
export type EdgeType = 'required' | 'optional' | 'soft' | 'circular';

export type EngineEventLike =
  | { type: 'state'; service: string; state: ServiceState; previous: ServiceState; elapsedMs: number; reason?: string; pid?: number }
  | { type: 'health'; service: string; healthy: boolean; detail: string }
  | { type: 'restart'; service: string; attempt: number; delayMs: number; exit: string }
  | { type: 'registered'; service: string; id: string }
  | { type: 'warning'; service?: string; message: string }
  | { type: 'stack'; stack: string; phase: StackPhase; elapsedMs: number }
  | { type: 'render'; service: string; template: string; outcome: 'changed' | 'unchanged' | 'failed'; reason: string }
  | { type: 'reload'; service: string; action: 'restart' | 'signal' | 'script' | 'noop'; reason: string; template?: string; signal?: string }
  | { type: 'deregistered'; service: string; id: string; reason: string }
  | {
      type: 'leader';
      stack: string;
      change: 'elected' | 'observed' | 'fenced' | 'stepped-down' | 'resigned';
      self: { id: string; host: string; address: string };
      leader: { id: string; host: string; address: string } | null;
      term: number | null;
      previous?: { id: string; host: string; address: string; term: number };
      reason?: string;
    };

/** An engine event as `--json` prints it: its time first. */
export type TimedEvent = EngineEventLike & { time: string };

export interface GraphNode {
  name: string;
  kind: 'service' | 'task';
  runtime: string;
  /** Where it is reachable (its `address`; the Docker engine's host for a remote one). */
  host: string;
  port?: number;
  /** Circular group index. */
  group?: number;
}

export interface GraphEdgeView {
  from: string;
  to: string;
  type: EdgeType;
}

export interface GraphView {
  nodes: GraphNode[];
  edges: GraphEdgeView[];
  groups: string[][];
}

export interface ServiceSnapshot {
  name: string;
  kind: 'service' | 'task';
  state: ServiceState;
  health: HealthState;
  reason?: string;
  restarts: number;
  running: boolean;
  startedAt?: string;
  pid?: number;
  container?: string;
  lastHealth?: { ok: boolean; detail: string; at: string };
}

export interface StatusSnapshot {
  /** When the state file it was read from was written (ISO-8601): older than an event, it is stale for that service. */
  asOf?: string;
  phase?: StackPhase;
  owner?: { pid: number; alive: boolean; detached?: boolean };
  services: ServiceSnapshot[];
}

export interface Registration {
  id: string;
  service: string;
  address: string;
  port?: number;
  url?: string;
  expiresAt?: string;
}

export interface RenderRecordView {
  at: string;
  why: string;
  files: string[];
}

export type UiMessage =
  | { kind: 'hello'; stack: string; graph: GraphView }
  | { kind: 'status'; status: StatusSnapshot }
  | { kind: 'event'; event: TimedEvent }
  | { kind: 'registrations'; instances: Registration[]; error?: string }
  | { kind: 'renders'; renders: Record<string, RenderRecordView> }
  | { kind: 'note'; text: string };

export interface ServiceView extends ServiceSnapshot {
  /** Time of the last event about it (the engine's clock). */
  eventAt?: string;
  node?: GraphNode;
  registrations: Registration[];
  lastRender?: RenderRecordView;
}

export interface PageView {
  stack: string;
  phase?: StackPhase;
  owner?: StatusSnapshot['owner'];
  graph: GraphView;
  /** Every service of the graph, and any the runtimes found besides. */
  services: Record<string, ServiceView>;
  /** Newest last; at most MAX_EVENTS. */
  events: TimedEvent[];
  registrationsError?: string;
  notes: string[];
}

export const MAX_EVENTS = 500;

export function initialView(): PageView {
  return { stack: '', graph: { nodes: [], edges: [], groups: [] }, services: {}, events: [], notes: [] };
}

function blank(name: string, node?: GraphNode): ServiceView {
  return {
    name,
    kind: node?.kind ?? 'service',
    state: 'pending',
    health: 'unknown',
    restarts: 0,
    running: false,
    registrations: [],
    ...(node ? { node } : {}),
  };
}

/** The view after one message. Never mutates `view`. */
export function applyMessage(view: PageView, msg: UiMessage): PageView {
  switch (msg.kind) {
    case 'hello': {
      const services: Record<string, ServiceView> = {};
      for (const node of msg.graph.nodes) services[node.name] = { ...(view.services[node.name] ?? blank(node.name, node)), node };
      for (const [name, s] of Object.entries(view.services)) services[name] ??= s;
      return { ...view, stack: msg.stack, graph: msg.graph, services };
    }
    case 'status': {
      const services: Record<string, ServiceView> = {};
      const seen = new Set<string>();
      for (const snap of msg.status.services) {
        seen.add(snap.name);
        const before = view.services[snap.name] ?? blank(snap.name);
        // A snapshot replaces what events said (it is the state file checked against the runtimes),
        // unless the file was written before the last event about the service: then it is behind.
        const stale = before.eventAt !== undefined && msg.status.asOf !== undefined && before.eventAt > msg.status.asOf;
        services[snap.name] = stale ? before : { ...stripSnapshot(before), ...snap };
      }
      for (const [name, s] of Object.entries(view.services)) {
        // Not in the state file (never started, or the stack is down): shown as not running.
        if (seen.has(name)) continue;
        const down = msg.status.phase === undefined; // nothing recorded: the stack is down
        services[name] = s.node
          ? { ...stripSnapshot(s), state: down ? 'stopped' : s.state, ...(down ? { health: 'unknown' as const } : {}), running: false }
          : s;
      }
      const next: PageView = { ...view, services };
      if (msg.status.phase !== undefined) next.phase = msg.status.phase;
      else delete next.phase;
      if (msg.status.owner) next.owner = msg.status.owner;
      else delete next.owner;
      return next;
    }
    case 'event':
      return applyEvent({ ...view, events: [...view.events, msg.event].slice(-MAX_EVENTS) }, msg.event);
    case 'registrations': {
      const services: Record<string, ServiceView> = {};
      for (const [name, s] of Object.entries(view.services)) services[name] = { ...s, registrations: msg.instances.filter((i) => i.service === name) };
      const next: PageView = { ...view, services };
      if (msg.error) next.registrationsError = msg.error;
      else delete next.registrationsError;
      return next;
    }
    case 'renders': {
      const services: Record<string, ServiceView> = {};
      for (const [name, s] of Object.entries(view.services)) {
        const record = msg.renders[name];
        const { lastRender: _old, ...rest } = s;
        services[name] = record ? { ...rest, lastRender: record } : rest;
      }
      return { ...view, services };
    }
    case 'note':
      return { ...view, notes: [...view.notes, msg.text].slice(-20) };
  }
}

/** What a status snapshot owns: dropped before a snapshot is laid over a service. */
function stripSnapshot(s: ServiceView): ServiceView {
  const { reason: _r, startedAt: _s, pid: _p, container: _c, lastHealth: _l, ...rest } = s;
  return rest;
}

function applyEvent(view: PageView, e: TimedEvent): PageView {
  if (e.type === 'stack') return { ...view, phase: e.phase };
  if (e.type === 'warning' || e.type === 'leader') return view; // about the stack, not a service: the events pane shows it
  const before: ServiceView = { ...(view.services[e.service] ?? blank(e.service)), eventAt: e.time };
  let after: ServiceView = before;
  switch (e.type) {
    case 'state': {
      const { reason: _r, ...rest } = before;
      after = { ...rest, state: e.state, ...(e.reason !== undefined ? { reason: e.reason } : {}) };
      if (e.pid !== undefined) after.pid = e.pid;
      if (e.state === 'starting') after.running = false;
      if (e.state === 'checking' || e.state === 'running' || e.state === 'healthy') after.running = true;
      if (e.state === 'checking' && before.state === 'starting') after.startedAt = e.time;
      if (e.state === 'stopped' || e.state === 'failed' || e.state === 'waiting') after.running = false;
      if (e.state === 'healthy' && before.health !== 'none') after.health = 'healthy';
      break;
    }
    case 'health':
      after = { ...before, health: e.healthy ? 'healthy' : 'unhealthy', lastHealth: { ok: e.healthy, detail: e.detail, at: e.time } };
      break;
    case 'restart':
      after = { ...before, restarts: Math.max(before.restarts, e.attempt), health: before.health === 'none' ? 'none' : 'unhealthy' };
      break;
    case 'registered':
    case 'deregistered':
      return view; // the next registrations snapshot lists it (or not) with its address
    case 'render':
    case 'reload':
      return view; // the next renders snapshot carries when and why
  }
  return { ...view, services: { ...view.services, [e.service]: after } };
}

/** One line for the events pane, as `stack up` prints it. */
export function describeEvent(e: EngineEventLike): string {
  switch (e.type) {
    case 'state':
      return `${e.service}: ${e.state}${e.reason ? ` — ${e.reason}` : ''}`;
    case 'health':
      return `${e.service}: ${e.healthy ? 'healthy again' : 'unhealthy'} — ${e.detail}`;
    case 'restart':
      return `${e.service}: ${e.exit}; restart ${e.attempt} in ${(e.delayMs / 1000).toFixed(1)}s`;
    case 'registered':
      return `${e.service}: registered as ${e.id}`;
    case 'warning':
      return `warning: ${e.service ? `${e.service}: ` : ''}${e.message}`;
    case 'stack':
      return `stack ${e.stack}: ${e.phase}`;
    case 'render':
      return `${e.service}: ${e.template} rendered (${e.outcome}) — ${e.reason}`;
    case 'reload':
      return `${e.service}: ${e.action}${e.signal ? ` ${e.signal}` : ''}${e.template ? ` after ${e.template} changed` : ''} — ${e.reason}`;
    case 'deregistered':
      return `${e.service}: deregistered ${e.id} — ${e.reason}`;
    case 'leader':
      return describeLeader(e);
  }
}

/** Seconds, minutes, hours: how long the current instance has run. */
export function formatUptime(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${m % 60}m`;
}

/** The colour class of a state: one of ok, busy, bad, idle. */
export function stateTone(state: ServiceState): 'ok' | 'busy' | 'bad' | 'idle' {
  switch (state) {
    case 'healthy':
    case 'completed':
      return 'ok';
    case 'failed':
    case 'blocked':
      return 'bad';
    case 'pending':
    case 'stopped':
      return 'idle';
    default:
      return 'busy';
  }
}

/** A leader-follower stack's hand-over, in one line (`stack up` prints the same). */
export function describeLeader(e: Extract<EngineEventLike, { type: 'leader' }>): string {
  const who = e.leader ? `host '${e.leader.host}' (${e.leader.id})` : 'nobody';
  const from = e.previous ? `, taking over from host '${e.previous.host}' (term ${e.previous.term})` : '';
  const why = e.reason ? ` — ${e.reason}` : '';
  switch (e.change) {
    case 'elected':
      return `leader: this host leads stack ${e.stack}, term ${e.term ?? '?'}${from}`;
    case 'observed':
      return e.leader ? `leader: ${who} leads, term ${e.term ?? '?'}${from}; this host follows` : 'leader: nobody leads now';
    case 'fenced':
      return `leader: fenced, term ${e.term ?? '?'}${why}`;
    case 'stepped-down':
      return `leader: this host stepped down${why}`;
    case 'resigned':
      return `leader: this host resigned${why}`;
  }
}
