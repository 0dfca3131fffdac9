/**
 * The scheduler, as pure functions: given the gates (what is known of every service's state, and
 * of dependents' own checks: gates.ts), which units start now, and which never will.
 *
 * A unit is one service, or a circular group whose members start together. The engine keeps the
 * set of units not yet launched and, after each state change, asks `decide` about the units that
 * change could concern (`unitsAffectedBy`), so a change costs its fan-out, not a scan of the
 * stack. Nothing here waits, starts or mutates: the engine acts on the decisions.
 */
import type { StackGraph } from '../plan/types.js';
import { readinessOf, type GateSource } from './gates.js';

export interface Unit {
  readonly members: readonly string[];
}

/** Start every member now (`warnings`: an optional dependency failed), or block them all. */
export type UnitDecision = { unit: Unit; kind: 'start'; warnings: string[] } | { unit: Unit; kind: 'block'; reason: string };

/** The unit of every service of the run: each circular group is one unit, every other service its own. */
export function unitsOf(groups: readonly (readonly string[])[], services: readonly string[]): Map<string, Unit> {
  const unitOf = new Map<string, Unit>();
  for (const group of groups) {
    const unit: Unit = { members: [...group] };
    for (const member of group) unitOf.set(member, unit);
  }
  for (const name of services) if (!unitOf.has(name)) unitOf.set(name, { members: [name] });
  return unitOf;
}

/**
 * The units whose gates a change of `service` may open or break: those of its dependents (and,
 * for a member of a circular group, of the dependents of every member: an edge into a group
 * looks at the whole group).
 */
export function unitsAffectedBy(service: string, graph: StackGraph, unitOf: ReadonlyMap<string, Unit>): Set<Unit> {
  const group = graph.groupOf(service);
  const changed = group === undefined ? [service] : (graph.groups[group] ?? [service]);
  const units = new Set<Unit>();
  for (const member of changed) {
    for (const edge of graph.dependentsOf(member)) {
      const unit = unitOf.get(edge.from);
      if (unit) units.add(unit);
    }
  }
  return units;
}

/**
 * What to do with each of `units` now: start it, block it, or (absent from the result) let it
 * wait. `inRun` says which services this run has: a dependency outside it was handled by the plan.
 */
export function decide(units: Iterable<Unit>, graph: StackGraph, gates: GateSource, inRun: (service: string) => boolean): UnitDecision[] {
  const decisions: UnitDecision[] = [];
  for (const unit of units) {
    const verdict = readinessOf(unit.members, graph, gates, inRun);
    if (verdict.kind === 'ready') decisions.push({ unit, kind: 'start', warnings: verdict.warnings });
    else if (verdict.kind === 'blocked') decisions.push({ unit, kind: 'block', reason: verdict.reason });
  }
  return decisions;
}
