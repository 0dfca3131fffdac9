import path from 'node:path';
import { runProbeCommand } from './run-command.js';
import type { HealthStrategy } from './types.js';

/**
 * `command`: run the check's argv (no shell), healthy on exit 0. Only with `shell: true` is the
 * command handed to `/bin/sh -c` (its elements joined by spaces), as the profile author wrote it.
 * Runs in the target's working directory with the target's environment added to ours.
 */
export function createCommandStrategy(): HealthStrategy {
  return {
    name: 'command',
    probe(check, target, signal) {
      const command = check.command ?? [];
      const argv = check.shell ? ['/bin/sh', '-c', command.join(' ')] : command;
      return runProbeCommand(argv, {
        ...(target.cwd !== undefined ? { cwd: path.resolve(target.cwd) } : {}),
        ...(target.env !== undefined ? { env: target.env } : {}),
        timeoutMs: check.timeoutMs,
        signal,
      });
    },
  };
}
