/** The file health strategy's definition; the implementation (`../file.ts`) loads on the first probe. */
import { definedOnly, lazyStrategy } from '../define.js';
import type { HealthStrategyDefinition } from '../types.js';

export interface FileCheckOptions {
  /** Path that must exist (relative to the service's working directory). */
  path?: string;
}

export const fileHealth: HealthStrategyDefinition<'file', FileCheckOptions, FileCheckOptions> = {
  name: 'file',
  description: 'Healthy once a file exists',
  capabilities: { needsPort: false, needsContainer: false },
  options: (z) => ({ path: z.string().optional().describe('file: path that must exist') }),
  normalize: (raw) => definedOnly(raw),
  describe: (hc) => `file ${hc.path ?? ''}`,
  create: () => lazyStrategy('file', async () => (await import('../file.js')).createFileStrategy()),
};
