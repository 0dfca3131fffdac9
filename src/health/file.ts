import { access } from 'node:fs/promises';
import path from 'node:path';
import type { HealthStrategy } from './types.js';

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
