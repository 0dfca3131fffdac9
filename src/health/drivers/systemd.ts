/** The systemd health strategy's definition; the implementation (`../systemd.ts`) loads on the first probe. */
import { definedOnly, lazyStrategy } from '../define.js';
import type { HealthStrategyDefinition } from '../types.js';

export interface SystemdCheckOptions {
  /** Unit name, e.g. `postgresql.service`. */
  unit?: string;
}

export const systemdHealth: HealthStrategyDefinition<'systemd', SystemdCheckOptions, SystemdCheckOptions> = {
  name: 'systemd',
  description: 'Healthy while a systemd unit is active',
  capabilities: { needsPort: false, needsContainer: false },
  options: (z) => ({ unit: z.string().optional().describe('systemd: unit name') }),
  normalize: (raw) => definedOnly(raw),
  describe: (hc) => `systemd ${hc.unit ?? ''}`,
  create: () => lazyStrategy('systemd', async () => (await import('../systemd.js')).createSystemdStrategy()),
};
