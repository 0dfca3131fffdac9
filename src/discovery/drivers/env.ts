/** The env backend's definition (the implementation, `../env.ts`, loads when one is created). */
import type { DiscoveryCapabilities, DiscoveryDriver } from '../types.js';

const CAPABILITIES: Readonly<DiscoveryCapabilities> = Object.freeze({
  register: false,
  deregister: false,
  lookup: true,
  watch: false,
  heartbeat: false,
  list: true,
  inject: true,
});

/** Listed in `registry.ts`: no options; it reads the environment it is given. */
export const envDriver: DiscoveryDriver<'env', object> = {
  name: 'env',
  description: 'Read-only: ATPROTO_SERVICE_<NAME>_URL/_HOST/_PORT variables, injected into dependents',
  capabilities: CAPABILITIES,
  shared: false,
  options: () => ({}),
  defaults: {},
  secretOptions: [],
  create: async (_config, context) => (await import('../env.js')).createEnvBackend(context.env ? { env: context.env } : {}),
};
