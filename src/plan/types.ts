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
  /** The host it is placed on (`host:`; `all`: every host), in a profile with hosts. */
  host?: string;
  /** Leader-follower: it runs on the leader's host only. */
  singleton?: true;
}

/**
 * A service this run depends on but does not start: it runs on another host of the stack, or is
 * `external` (run by another stack). The run's gates wait for a passing record of it in discovery.
 */
export interface RemoteDependency {
  service: string;
  /** The host it runs on (a service of this stack). */
  host?: string;
  /** A singleton (leader-follower): it runs on whichever host leads, met by this stack's record from any host. */
  leader?: true;
  /** Run by someone else (`external: true`). */
  external?: true;
  /** external: the stack whose registrations count (`stack:`); absent: any stack's. Same-stack services: this stack's. */
  stack?: string;
  /** The services of this run that wait for it. */
  dependents: string[];
}

export interface Plan {
  stack: string;
  /** The host this run is (`--host`), in a profile with hosts. */
  host?: string;
  /** Leader-follower: this is the run of the singletons its host's supervisor starts while it leads. */
  share?: 'leader';
  /** Start waves, first first; a circular group sits in one wave. */
  order: string[][];
  edges: GraphEdge[];
  groups: string[][];
  services: PlannedService[];
  /** Enabled services that can never start (a required dependency is disabled or blocked). */
  blocked: { service: string; reason: string }[];
  /** Services that are not part of this run (disabled, not selected, on another host, external). */
  skipped: { service: string; reason: string }[];
  /** What this run waits for in discovery: services on other hosts and external ones it depends on. */
  remote?: RemoteDependency[];
  /** The longest health-gated chain: what bounds how fast the stack can be up. */
  criticalChain: string[];
}

/** The dependency graph of a profile's services, as the plan and the engine read it. */
export type StackGraph = DependencyGraph<ServiceSpec>;
