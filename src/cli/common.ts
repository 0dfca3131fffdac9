/** Options and helpers shared by commands. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Output } from './output.js';

export interface CommonOptions {
  profile?: string;
  json?: boolean;
}

const DEFAULT_FILES = ['stack.yaml', 'stack.yml', 'stack.json', 'stack.toml'];
/** The built-in profile used when no --profile is given and there is no ./stack.yaml. */
export const FALLBACK_PROFILE = 'dev-cluster';

/** `--profile`, else ./stack.yaml (or .yml/.json/.toml), else the built-in dev-cluster (with a note). */
export function profileRef(opts: CommonOptions, o: Output, cwd = process.cwd()): string {
  if (opts.profile) return opts.profile;
  const found = DEFAULT_FILES.find((f) => existsSync(path.join(cwd, f)));
  if (found) return `./${found}`;
  if (!opts.json) o.err(`no --profile given and no ./stack.yaml here: using the built-in profile '${FALLBACK_PROFILE}'`);
  return FALLBACK_PROFILE;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
