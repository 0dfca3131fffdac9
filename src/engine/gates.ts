/**
 * "Is this gate open?" (docs/architecture.md, "Gates"), behind one small interface.
 *
 * Two sources answer, and the scheduler does not know which: local events (the engine records
 * each service's state as it changes: `createLocalGates`), and, for services this run does not
 * start — on another host of the stack, or `external` — discovery records (remote-gates.ts).
 * `composeGates` puts them together; a mesh's `host: all` service is met by either.
 *
 * A gate is one of three (graph/types.ts): `healthy` (the dependency is healthy; a task: it
 * completed with exit 0), `settled` (healthy, or definitively failed: optional dependencies),
 * `started` (it has been started: soft dependencies). An edge into a circular group from
 * outside it looks at every member: the group counts as healthy only when all members are.
 */
import type { GraphEdge } from '../graph/types.js';
import type { StackGraph } from '../plan/types.js';
import type { ServiceKind } from '../profile/types.js';
import type { ServiceState } from './types.js';

/** What a gate needs to know about a dependency. */
export interface DependencyStatus {
  state: ServiceState;
  kind: ServiceKind;
  /** The runtime started it at least once. */
  started: boolean;
  reason?: string;
}

/**
 * - open: the dependent may start (a `warning` when it starts despite a failed dependency);
 * - waiting: not yet;
 * - broken: it never will (a required dependency failed): the dependent is blocked.
 */
export type GateVerdict = { kind: 'open'; warning?: string } | { kind: 'waiting' } | { kind: 'broken'; reason: string };

export interface GateSource {
  verdict(edge: GraphEdge): GateVerdict;
  /**
   * `listener(service)` runs whenever the answer for edges into `service` may have changed (its
   * state moved, or a dependent's own check of it finished). Returns a function that unsubscribes.
   */
  subscribe(listener: (service: string) => void): () => void;
}

/** The local implementation: fed by the engine's own state changes. */
export interface LocalGates extends GateSource {
  record(service: string, status: DependencyStatus): void;
  /**
   * The result of a dependent's own check of a dependency (`dependencies[].healthCheck`: how
   * *this* dependent judges it). For such an edge this result, not the dependency's own health,
   * opens a `healthy` or `settled` gate.
   */
  recordEdgeCheck(from: string, to: string, result: { ok: true } | { ok: false; reason: string }): void;
  /** The verdict of one target of `edge` (the edge's own, or a member of the group it leads into), groups aside. */
  verdictOf(edge: GraphEdge, target: string): GateVerdict;
}

/**
 * A source answering for services run elsewhere (remote-gates.ts): `remote` ones only it meets;
 * `either` ones (mesh `host: all`) are met by the local instance or by it. `verdict` judges one
 * target (no group expansion: `composeGates` does that).
 */
export interface RemoteGateSource extends GateSource {
  placement(service: string): 'remote' | 'either' | undefined;
}

/** Failed for good: a dependency in one of these states will never open a `healthy` gate. */
const DEAD: ReadonlySet<ServiceState> = new Set(['failed', 'blocked', 'stopped', 'stopping']);

/** The gate of one dependency, judged from its status alone (no groups). */
export function judge(gate: GraphEdge['gate'], dep: string, status: DependencyStatus | undefined): GateVerdict {
  if (!status) return { kind: 'waiting' };
  const ok = status.kind === 'task' ? status.state === 'completed' : status.state === 'healthy';
  const dead = DEAD.has(status.state) || (status.kind === 'service' && status.state === 'completed');
  const why = status.reason ? `: ${status.reason}` : '';
  switch (gate) {
    case 'healthy':
      if (ok) return { kind: 'open' };
      return dead ? { kind: 'broken', reason: `requires '${dep}', which ${describe(status)}${why}` } : { kind: 'waiting' };
    case 'settled':
      if (ok) return { kind: 'open' };
      return dead ? { kind: 'open', warning: `optional dependency '${dep}' ${describe(status)}${why}; starting anyway` } : { kind: 'waiting' };
    case 'started':
      // A soft dependency's failure is ignored: once it started, or once it can never start, go.
      return status.started || dead ? { kind: 'open' } : { kind: 'waiting' };
  }
}

function describe(status: DependencyStatus): string {
  if (status.state === 'completed') return 'exited';
  if (status.state === 'stopping' || status.state === 'stopped') return 'was stopped';
  if (status.state === 'failed') return 'failed';
  return `is ${status.state}`;
}

/** `from>to` for every edge whose dependent brings its own health check for the dependency. */
function edgesWithOwnCheck(graph: StackGraph): Set<string> {
  const keys = new Set<string>();
  for (const edge of graph.edges) {
    const spec = graph.services.get(edge.from)?.dependencies.find((d) => d.name === edge.to);
    if (spec?.healthCheck && edge.gate !== 'started') keys.add(`${edge.from}>${edge.to}`);
  }
  return keys;
}

export function createLocalGates(graph: StackGraph): LocalGates {
  const statuses = new Map<string, DependencyStatus>();
  const edgeChecks = new Map<string, { ok: true } | { ok: false; reason: string }>();
  const ownCheck = edgesWithOwnCheck(graph);
  const listeners = new Set<(service: string) => void>();
  const notify = (service: string) => {
    for (const listener of listeners) listener(service);
  };

  /** An edge judged by the dependent's own check: the dependency must run, and pass that check. */
  const judgeOwnCheck = (edge: GraphEdge): GateVerdict => {
    const status = statuses.get(edge.to);
    const own = edgeChecks.get(`${edge.from}>${edge.to}`);
    const base = judge(edge.gate, edge.to, status);
    if (base.kind !== 'waiting' && !(base.kind === 'open' && !base.warning)) return base; // it failed for everyone
    if (!own) return { kind: 'waiting' };
    if (own.ok) return { kind: 'open' };
    const why = `'${edge.to}' failed ${edge.from}'s own health check: ${own.reason}`;
    return edge.gate === 'settled' ? { kind: 'open', warning: `optional dependency ${why}; starting anyway` } : { kind: 'broken', reason: `requires ${why}` };
  };

  const verdictOf = (edge: GraphEdge, target: string): GateVerdict =>
    target === edge.to && ownCheck.has(`${edge.from}>${edge.to}`) ? judgeOwnCheck(edge) : judge(edge.gate, target, statuses.get(target));

  return {
    verdict(edge) {
      if (ownCheck.has(`${edge.from}>${edge.to}`)) return judgeOwnCheck(edge);
      return combine(targetsOf(graph, edge).map((target) => verdictOf(edge, target)));
    },
    verdictOf,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    record(service, status) {
      statuses.set(service, { ...status });
      notify(service);
    },
    recordEdgeCheck(from, to, result) {
      edgeChecks.set(`${from}>${to}`, result);
      notify(to);
    },
  };
}

/** What an edge looks at: its dependency, or every member of the circular group it leads into from outside. */
function targetsOf(graph: StackGraph, edge: GraphEdge): readonly string[] {
  const group = graph.groupOf(edge.to);
  if (group === undefined || edge.gate === 'started' || graph.groupOf(edge.from) === group) return [edge.to];
  return graph.groups[group] ?? [edge.to];
}

/** Several targets (a group): broken if any is broken, waiting if any waits, else open. */
function combine(verdicts: readonly GateVerdict[]): GateVerdict {
  let warning: string | undefined;
  let waiting = false;
  for (const v of verdicts) {
    if (v.kind === 'broken') return v;
    if (v.kind === 'waiting') waiting = true;
    else if (v.warning) warning = v.warning;
  }
  if (waiting) return { kind: 'waiting' };
  return warning ? { kind: 'open', warning } : { kind: 'open' };
}

const clean = (v: GateVerdict) => v.kind === 'open' && !v.warning;

/**
 * The local gates and a source for services run elsewhere, as one: an edge to a service this run
 * starts is judged locally (unchanged), one to a remote service by `remote`, and one to a mesh's
 * `host: all` service by whichever meets it (the local instance, or a healthy remote one; when
 * neither does, it waits while either still may). Recording goes to the local gates.
 */
export function composeGates(graph: StackGraph, local: LocalGates, remote: RemoteGateSource): LocalGates {
  const one = (edge: GraphEdge, target: string): GateVerdict => {
    const where = remote.placement(target);
    if (where === undefined) return local.verdictOf(edge, target);
    const there = remote.verdict(target === edge.to ? edge : { ...edge, to: target });
    if (where === 'remote') return there;
    const here = local.verdictOf(edge, target);
    if (clean(here)) return here;
    if (clean(there)) return there;
    return here.kind === 'waiting' || there.kind === 'waiting' ? { kind: 'waiting' } : here;
  };
  return {
    verdict(edge) {
      const targets = targetsOf(graph, edge);
      if (!targets.some((t) => remote.placement(t) !== undefined)) return local.verdict(edge);
      return combine(targets.map((t) => one(edge, t)));
    },
    verdictOf: one,
    subscribe(listener) {
      const offLocal = local.subscribe(listener);
      const offRemote = remote.subscribe(listener);
      return () => {
        offLocal();
        offRemote();
      };
    },
    record: (service, status) => local.record(service, status),
    recordEdgeCheck: (from, to, result) => local.recordEdgeCheck(from, to, result),
  };
}

/** Whether a unit (one service, or a circular group starting together) may start. */
export type Readiness = { kind: 'ready'; warnings: string[] } | { kind: 'waiting'; on: string[] } | { kind: 'blocked'; reason: string };

/**
 * Combine the gates of every dependency of a unit that leads outside it. Edges inside a group are
 * ignored (members start together); dependencies not in this run (disabled, not selected) were
 * handled by the plan: required ones block the unit there, the others count as absent.
 */
export function readinessOf(members: readonly string[], graph: StackGraph, gates: GateSource, inRun: (service: string) => boolean): Readiness {
  const inside = new Set(members);
  const warnings: string[] = [];
  const waitingOn: string[] = [];
  for (const member of members) {
    for (const edge of graph.dependenciesOf(member)) {
      if (inside.has(edge.to) || !inRun(edge.to)) continue;
      const v = gates.verdict(edge);
      if (v.kind === 'broken') return { kind: 'blocked', reason: v.reason };
      if (v.kind === 'waiting') waitingOn.push(edge.to);
      else if (v.warning) warnings.push(v.warning);
    }
  }
  return waitingOn.length > 0 ? { kind: 'waiting', on: [...new Set(waitingOn)] } : { kind: 'ready', warnings };
}
