/** The registry of health strategies by name. */
import { UnsupportedError } from '../errors.js';
import type { HealthStrategyName } from '../profile/types.js';
import { createCommandStrategy } from './command.js';
import { createDockerStrategy } from './docker.js';
import { createFileStrategy } from './file.js';
import { createHttpStrategy } from './http.js';
import { createSystemdStrategy } from './systemd.js';
import { createTcpStrategy } from './tcp.js';
import type { HealthStrategy } from './types.js';

const factories: Record<HealthStrategyName, () => HealthStrategy> = {
  http: () => createHttpStrategy(),
  tcp: () => createTcpStrategy(),
  command: () => createCommandStrategy(),
  file: () => createFileStrategy(),
  systemd: () => createSystemdStrategy(),
  docker: () => createDockerStrategy(),
};

const instances = new Map<HealthStrategyName, HealthStrategy>();

/** The default strategy for a name (strategies are stateless, so one instance each is shared). */
export function strategyFor(name: HealthStrategyName): HealthStrategy {
  let strategy = instances.get(name);
  if (!strategy) {
    const factory = Object.hasOwn(factories, name) ? factories[name] : undefined;
    if (!factory) throw new UnsupportedError('health checks', `strategy '${String(name)}'`);
    strategy = factory();
    instances.set(name, strategy);
  }
  return strategy;
}
