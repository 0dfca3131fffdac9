import { access } from 'node:fs/promises';
import path from 'node:path';
import { definedOnly, type HealthStrategy, type HealthStrategyDefinition } from './types.js';

/** `file`: healthy when the path exists (relative paths resolve against the target's cwd). */
export function createFileStrategy(): HealthStrategy {
  return {
    name: 'file',
    async probe(check, target) {
      if (!check.path) return { ok: false, detail: 'file check has no path' };
      const file = path.resolve(target.cwd ?? process.cwd(), check.path);
      try {
        await access(file);
        return { ok: true, detail: `${check.path} exists` };
      } catch {
        return { ok: false, detail: `${check.path} does not exist` };
      }
    },
  };
}

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
  create: () => createFileStrategy(),
};
