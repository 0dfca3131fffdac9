import type { DependencyType, ServiceSpec } from '../profile/types.js';

/**
 * What a dependent waits for before it may start (DESIGN.md §3):
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

export interface DependencyGraph {
  /** Every service of the profile, enabled or not. */
  services: Map<string, ServiceSpec>;
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

export interface PlannedService {
  name: string;
  kind: ServiceSpec['kind'];
  runtime: ServiceSpec['runtime'];
  wave: number;
  /** What it runs: the image or argv[0]; never environment values. */
  runs?: string;
  port?: number;
  health?: string;
  group?: number;
}

export interface Plan {
  stack: string;
  /** Start waves, first first; a circular group sits in one wave. */
  order: string[][];
  edges: GraphEdge[];
  groups: string[][];
  services: PlannedService[];
  /** Enabled services that can never start (a required dependency is disabled or blocked). */
  blocked: { service: string; reason: string }[];
  /** Services that are not part of this run (disabled, or not selected). */
  skipped: { service: string; reason: string }[];
  /** The longest health-gated chain: what bounds how fast the stack can be up. */
  criticalChain: string[];
}
