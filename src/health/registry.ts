/**
 * Every health strategy, one line each. The `healthCheck` schema (strategy names, each strategy's
 * keys), its normalisation, `HealthCheckSpec` and the text `stack plan` prints are derived from
 * this list. Adding a strategy: its definition in `drivers/<name>.ts` (copy `drivers/file.ts`), its
 * probe in `<name>.ts` (copy `file.ts`), one line here, and one line in
 * `test/health/strategies.test.ts` running the shared cases (`strategy.case.ts`).
 *
 * Importing this file is cheap (`stack validate` does): a strategy's implementation, with the
 * modules it needs (node:http, child processes), loads on its first probe.
 */
import { UnsupportedError } from '../errors.js';
import type { UnionToIntersection } from '../util/driver.js';
import { commandHealth } from './drivers/command.js';
import { dockerHealth } from './drivers/docker.js';
import { fileHealth } from './drivers/file.js';
import { httpHealth } from './drivers/http.js';
import { systemdHealth } from './drivers/systemd.js';
import { tcpHealth } from './drivers/tcp.js';
import type { HealthCheckCommon, HealthStrategy, HealthStrategyDefinition } from './types.js';

export const HEALTH_STRATEGIES = [httpHealth, tcpHealth, commandHealth, fileHealth, systemdHealth, dockerHealth] as const;

type AnyHealthStrategy = (typeof HEALTH_STRATEGIES)[number];
export type HealthStrategyName = AnyHealthStrategy['name'];
export const HEALTH_STRATEGY_NAMES = HEALTH_STRATEGIES.map((s) => s.name) as readonly HealthStrategyName[] as readonly [
  HealthStrategyName,
  ...HealthStrategyName[],
];

type OptionsOf<D> = D extends HealthStrategyDefinition<string, object, infer O> ? O : never;
type RawOf<D> = D extends HealthStrategyDefinition<string, infer R, object> ? R : never;
/** Every strategy's own keys of `healthCheck`, as written in a profile. */
export type HealthCheckRawOptions = UnionToIntersection<RawOf<AnyHealthStrategy>>;
/** A normalised health check: the common settings and every strategy's own keys. */
export type HealthCheckSpec = HealthCheckCommon & UnionToIntersection<OptionsOf<AnyHealthStrategy>>;

/** The definition of a strategy; throws UnsupportedError for a name no definition has. */
export function healthStrategyDefinition(name: string): HealthStrategyDefinition<string, object, object> {
  const found = HEALTH_STRATEGIES.find((s) => s.name === name) as HealthStrategyDefinition<string, object, object> | undefined;
  if (!found) throw new UnsupportedError('health checks', `strategy '${name}'`);
  return found;
}

/** What `stack plan` prints for a check. */
export function describeHealthCheck(check: HealthCheckSpec): string {
  return healthStrategyDefinition(check.strategy).describe(check);
}

const instances = new Map<string, HealthStrategy>();

/** The default strategy for a name (strategies are stateless, so one instance each is shared). */
export function strategyFor(name: HealthStrategyName): HealthStrategy {
  let strategy = instances.get(name);
  if (!strategy) {
    strategy = healthStrategyDefinition(name).create();
    instances.set(name, strategy);
  }
  return strategy;
}
