/**
 * The dependency graph's own vocabulary. The graph sits below the profile (the profile's rules
 * build it to find cycles and unknown dependencies), so it names only what it reads of a service;
 * a profile's `ServiceSpec` is one (docs/architecture.md, "Folder layering").
 */

/** How a dependent depends on a service; `profile/types.ts` re-exports it. */
export type DependencyType = 'required' | 'optional' | 'soft' | 'circular';
export const DEPENDENCY_TYPES: readonly DependencyType[] = ['required', 'optional', 'soft', 'circular'];

/** What the graph reads of a dependency. */
export interface GraphDependency {
  name: string;
  type: DependencyType;
  /** Index in the dependent's list, for error paths. */
  index: number;
}

/** What the graph reads of a service: a profile's `ServiceSpec` in normal use. */
export interface GraphService {
  name: string;
  dependencies: readonly GraphDependency[];
}

/**
 * What a dependent waits for before it may start (docs/architecture.md, "Gates"):
 * - `healthy`: the dependency is healthy (for a task: it completed successfully) — required, circular;
 * - `settled`: healthy, or definitively failed — optional;
 * - `started`: the dependency has been started — soft.
 */
export type Gate = 'healthy' | 'settled' | 'started';

export const GATE_OF: Record<DependencyType, Gate> = {
  required: 'healthy',
  optional: 'settled',
  soft: 'started',
  circular: 'healthy',
};

/** `from` depends on `to`. */
export interface GraphEdge {
  from: string;
  to: string;
  type: DependencyType;
  gate: Gate;
  /** Index in `from`'s dependency list. */
  index: number;
}

export interface DependencyGraph<S extends GraphService = GraphService> {
  /** Every service of the profile, enabled or not. */
  services: Map<string, S>;
  /** Edges between services that both exist (unknown dependencies are reported, not kept). */
  edges: GraphEdge[];
  /** Dependencies of a service (outgoing edges). */
  dependenciesOf(name: string): GraphEdge[];
  /** Dependents of a service (incoming edges). */
  dependentsOf(name: string): GraphEdge[];
  /** Groups of services joined only by `circular` edges: they start together. */
  groups: string[][];
  /** Group index of a service, if it is in a circular group. */
  groupOf(name: string): number | undefined;
}
