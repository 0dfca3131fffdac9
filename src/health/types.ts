/**
 * Health seam: a strategy probes an *endpoint*, never a runtime type (testcontainers-node's flaw
 * was wait strategies bound to Docker). The engine asks the runtime for a `HealthTarget`
 * (`runtime.endpoint(handle, port)` plus the service's cwd and environment) and hands it here.
 */
import type { OptionSchemas } from '../util/driver.js';
import type { HealthCheckSpec, HealthStrategyName } from './registry.js';

export type { HealthStrategyName } from './registry.js';

export type ContainerHealth = 'starting' | 'healthy' | 'unhealthy' | 'none';

/** Where and how to probe one service instance. */
export interface HealthTarget {
  /** http / tcp: host to reach the service at; default the check's `host`, then 127.0.0.1. */
  host?: string;
  /** http / tcp: port to probe; default the check's `port`. */
  port?: number;
  /**
   * http / tcp: `host` may be probed although it is not loopback: it is the address of a declared
   * host (a service placed on it), or was written in the check (which the profile's rules allow
   * only for loopback and declared hosts' addresses). Anything else stays refused.
   */
  remoteAllowed?: boolean;
  /** docker strategy only: the container's own HEALTHCHECK status, supplied by the runtime. */
  containerHealth?: () => Promise<ContainerHealth>;
  /** command / file: folder relative paths resolve against (the service's working directory). */
  cwd?: string;
  /** command: variables added to our own environment for the probe command. */
  env?: Record<string, string>;
}

/** The outcome of one probe. `detail` is for humans (status code, exit code, error) and holds no secrets. */
export interface ProbeResult {
  ok: boolean;
  detail: string;
}

/**
 * One way of judging health. `probe` never throws for an unhealthy service: it resolves
 * `{ ok: false }` with the reason. It gives up after `check.timeoutMs` or when `signal` aborts.
 */
export interface HealthStrategy {
  readonly name: HealthStrategyName;
  probe(check: HealthCheckSpec, target: HealthTarget, signal: AbortSignal): Promise<ProbeResult>;
}

/** What every normalised check has, whatever its strategy. All durations in milliseconds. */
export interface HealthCheckCommon {
  strategy: HealthStrategyName;
  /** http / tcp: host to probe; default 127.0.0.1 (loopback only). */
  host?: string;
  /** Port to probe; default the service's port. */
  port?: number;
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

/**
 * A health strategy's definition, listed in `registry.ts`: the profile schema of `healthCheck`,
 * its normalisation and the text `stack plan` prints are derived from these.
 *
 * `Raw` is the strategy's own keys of `healthCheck` as written in a profile, `Options` the same
 * keys normalised (shorthands expanded, defaults filled in).
 */
export interface HealthStrategyDefinition<Name extends string = string, Raw extends object = object, Options extends object = object> {
  readonly name: Name;
  /** One line, for documentation. */
  readonly description: string;
  readonly capabilities: {
    /** Probes an address (host and port), so the check needs a port. */
    readonly needsPort: boolean;
    /** Needs a container's own HEALTHCHECK (only a runtime with containers can supply it). */
    readonly needsContainer: boolean;
  };
  /** The zod schema of each key of `healthCheck` this strategy owns. */
  readonly options: OptionSchemas<Raw>;
  /** The owned keys normalised; keys the profile left out stay out unless they have a default. */
  normalize(raw: Raw): Options;
  /** What `stack plan` prints, e.g. `http http://127.0.0.1:2583/xrpc/_health`. */
  describe(check: HealthCheckCommon & Options): string;
  /** The default instance (strategies are stateless). No heavy client: created on first use all the same. */
  create(): HealthStrategy;
}
