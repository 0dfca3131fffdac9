/** The etcd backend's definition: the implementation (`../etcd.ts`) loads when one is created, etcd3 on its first call. */
import { FULL_CAPABILITIES } from '../record.js';
import type { DiscoveryCommonConfig, DiscoveryDriver } from '../types.js';
import type { Electing } from '../election.js';

/** The `discovery:` keys the etcd backend owns. */
export interface EtcdDriverOptions {
  etcdEndpoints: string[];
  etcdPrefix: string;
  etcdUsername?: string;
  etcdPassword?: string;
}
/** What the backend is created from. */
export type EtcdConfig = DiscoveryCommonConfig & EtcdDriverOptions;

/** Listed in `registry.ts`; etcd3 is imported on the backend's first call. It elects (`election`). */
export const etcdDriver: DiscoveryDriver<'etcd', EtcdDriverOptions> & Electing<EtcdConfig> = {
  name: 'etcd',
  description: 'etcd v3: leases for TTLs, watches on a key prefix',
  capabilities: FULL_CAPABILITIES,
  shared: true,
  options: (z) => ({
    etcdEndpoints: z.array(z.string()).min(1).describe('etcd: client URLs, e.g. http://127.0.0.1:2379'),
    etcdPrefix: z.string().describe('etcd: key prefix of the registry'),
    etcdUsername: z.string().optional(),
    etcdPassword: z.string().optional(),
  }),
  defaults: { etcdEndpoints: ['http://127.0.0.1:2379'], etcdPrefix: '/atproto-stacks' },
  secretOptions: ['etcdPassword'],
  urlOptions: ['etcdEndpoints'],
  create: async (config) => (await import('../etcd.js')).createEtcdBackend(config),
  election: {
    description: "etcd3's Election on a lease (TTL = the stack's ttl); term: the leader key's create revision; fenced writes in one transaction",
    create: async (config, options) => (await import('../election-etcd.js')).createEtcdElection(config, options),
  },
};
