import path from 'node:path';
import { runProbeCommand } from './run-command.js';
import type { HealthStrategy, HealthStrategyDefinition } from './types.js';

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

/** The keys of `healthCheck` the command strategy owns, as written. */
export interface CommandCheckRaw {
  command?: string | string[];
  shell?: boolean;
}
export interface CommandCheckOptions {
  /** argv (or a single string run through a shell when `shell` is true). */
  command?: string[];
  shell?: boolean;
}

export const commandHealth: HealthStrategyDefinition<'command', CommandCheckRaw, CommandCheckOptions> = {
  name: 'command',
  description: "Run a command (no shell unless asked); healthy on exit 0",
  capabilities: { needsPort: false, needsContainer: false },
  options: (z, t) => ({
    command: t.argv.optional().describe('command: argv list (a string only with shell: true)'),
    shell: z.boolean().optional(),
  }),
  normalize: (raw) => ({
    ...(raw.command !== undefined ? { command: [raw.command].flat() } : {}),
    ...(raw.shell !== undefined ? { shell: raw.shell } : {}),
  }),
  describe: (hc) => `command ${hc.command?.[0] ?? ''}`,
  create: () => createCommandStrategy(),
};
