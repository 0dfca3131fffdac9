/** The tcp health strategy's definition; the implementation (`../tcp.ts`) loads on the first probe. */
import { lazyStrategy } from '../define.js';
import type { HealthStrategyDefinition } from '../types.js';

export const tcpHealth: HealthStrategyDefinition<'tcp', object, object> = {
  name: 'tcp',
  description: 'Open a TCP connection; healthy when it is accepted',
  capabilities: { needsPort: true, needsContainer: false },
  options: () => ({}),
  normalize: () => ({}),
  describe: (hc) => `tcp ${hc.host ?? '127.0.0.1'}:${hc.port ?? '?'}`,
  create: () => lazyStrategy('tcp', async () => (await import('../tcp.js')).createTcpStrategy()),
};
