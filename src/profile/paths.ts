import path from 'node:path';
import type { Profile } from './types.js';

/** Where a stack keeps its state, logs, secrets and rendered configs: `.stack/<stack>` unless the profile says. */
export function stateDirOf(profile: Pick<Profile, 'name' | 'stateDir'>, cwd = process.cwd()): string {
  return path.resolve(cwd, profile.stateDir ?? path.join('.stack', profile.name));
}
