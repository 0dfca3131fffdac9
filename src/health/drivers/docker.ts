/** The docker health strategy's definition; the implementation (`../docker.ts`) loads on the first probe. */
import { lazyStrategy } from '../define.js';
import type { HealthStrategyDefinition } from '../types.js';

export const dockerHealth: HealthStrategyDefinition<'docker', object, object> = {
  name: 'docker',
  description: "The container image's own HEALTHCHECK (Docker runtime only)",
  capabilities: { needsPort: false, needsContainer: true },
  options: () => ({}),
  normalize: () => ({}),
  describe: () => 'docker HEALTHCHECK',
  create: () => lazyStrategy('docker', async () => (await import('../docker.js')).createDockerStrategy()),
};
