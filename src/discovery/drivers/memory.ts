/**
 * The memory backend's definition (the implementation, `../memory.ts`, loads when one is created).
 * Copy this file to add a backend.
 */
import { FULL_CAPABILITIES } from '../record.js';
import type { DiscoveryDriver } from '../types.js';

/** Listed in `registry.ts`: no options of its own (the TTL is a common setting). */
export const memoryDriver: DiscoveryDriver<'memory', object> = {
  name: 'memory',
  description: 'In-process registry: every service in one process (monolithic mode), and tests',
  capabilities: FULL_CAPABILITIES,
  shared: false,
  options: () => ({}),
  defaults: {},
  secretOptions: [],
  create: async (config) => (await import('../memory.js')).createMemoryBackend({ ttlMs: config.ttlMs }),
};
