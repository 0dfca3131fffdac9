/** The file backend's definition (the implementation, `../file.ts`, loads when one is created). */
import path from 'node:path';
import { FULL_CAPABILITIES } from '../record.js';
import type { DiscoveryDriver } from '../types.js';

/** The `discovery:` keys the file backend owns. */
export interface FileDriverOptions {
  /** Root folder, relative to the working directory. */
  fileDirectory: string;
}

/** Listed in `registry.ts`. */
export const fileDriver: DiscoveryDriver<'file', FileDriverOptions> = {
  name: 'file',
  description: 'One JSON file per instance under a folder: one host, no server needed (the default)',
  capabilities: FULL_CAPABILITIES,
  shared: false,
  options: (z) => ({ fileDirectory: z.string().describe('file: folder of the registry, relative to the working directory') }),
  defaults: { fileDirectory: '.stack/discovery' },
  secretOptions: [],
  create: async (config, context) => {
    const { createFileBackend } = await import('../file.js');
    return createFileBackend({ directory: path.resolve(context.cwd ?? process.cwd(), config.fileDirectory), ttlMs: config.ttlMs });
  },
};
