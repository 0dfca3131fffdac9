import type { HealthCheckSpec } from '../../src/profile/types.js';

/** A normalised health check with small defaults, for tests. */
export function makeCheck(overrides: Partial<HealthCheckSpec> = {}): HealthCheckSpec {
  return { strategy: 'http', intervalMs: 1000, timeoutMs: 2000, retries: 3, startPeriodMs: 0, ...overrides };
}
