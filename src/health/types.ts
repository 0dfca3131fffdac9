/**
 * Health seam: a strategy probes an *endpoint*, never a runtime type (testcontainers-node's flaw
 * was wait strategies bound to Docker). The engine asks the runtime for a `HealthTarget`
 * (`runtime.endpoint(handle, port)` plus the service's cwd and environment) and hands it here.
 */
import type { HealthCheckSpec, HealthStrategyName } from '../profile/types.js';

export type ContainerHealth = 'starting' | 'healthy' | 'unhealthy' | 'none';

/** Where and how to probe one service instance. */
export interface HealthTarget {
  /** http / tcp: host to reach the service at; default the check's `host`, then 127.0.0.1. */
  host?: string;
  /** http / tcp: port to probe; default the check's `port`. */
  port?: number;
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
