/** The command health strategy's definition; the implementation (`../command.ts`) loads on the first probe. */
import { lazyStrategy } from '../define.js';
import type { HealthStrategyDefinition } from '../types.js';

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
  description: 'Run a command (no shell unless asked); healthy on exit 0',
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
  create: () => lazyStrategy('command', async () => (await import('../command.js')).createCommandStrategy()),
};
