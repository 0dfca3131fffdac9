/** The plan of a run: what `stack plan` prints and the engine starts from. */
import type { DependencyGraph, GraphEdge } from '../graph/types.js';
import type { ServiceSpec } from '../profile/types.js';

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

/** The dependency graph of a profile's services, as the plan and the engine read it. */
export type StackGraph = DependencyGraph<ServiceSpec>;
