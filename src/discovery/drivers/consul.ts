/** The Consul backend's definition: the implementation (`../consul.ts`) loads when one is created, the consul client on its first call. */
import { FULL_CAPABILITIES } from '../record.js';
import type { DiscoveryCommonConfig, DiscoveryDriver } from '../types.js';
import type { Electing } from '../election.js';

/** The `discovery:` keys the Consul backend owns. */
export interface ConsulDriverOptions {
  /**
   * `host:port` or a URL of this host's own Consul agent: agent endpoints only know what was
   * registered through them, so heartbeats must reach the agent that registered (not a shared or
   * load-balanced address).
   */
  consulAddress: string;
  consulToken?: string;
  consulScheme: 'http' | 'https';
}
/** What the backend is created from. */
export type ConsulConfig = DiscoveryCommonConfig & ConsulDriverOptions;

/** Listed in `registry.ts`; the consul client is imported on the backend's first call. It elects (`election`). */
export const consulDriver: DiscoveryDriver<'consul', ConsulDriverOptions> & Electing<ConsulConfig> = {
  name: 'consul',
  description: "Consul's catalog: TTL health checks, blocking queries for watches",
  capabilities: FULL_CAPABILITIES,
  shared: true,
  options: (z) => ({
    consulAddress: z.string().describe("consul: this host's own agent, host:port or a URL (heartbeats must reach the agent that registered)"),
    consulToken: z.string().optional(),
    consulScheme: z.enum(['http', 'https']),
  }),
  defaults: { consulAddress: '127.0.0.1:8500', consulScheme: 'http' },
  secretOptions: ['consulToken'],
  urlOptions: ['consulAddress'],
  create: async (config) => (await import('../consul.js')).createConsulBackend(config),
  election: {
    description:
      "a session with a TTL (half the stack's ttl) and a lock-delay, and a KV lock on the leader key; term: the lock's ModifyIndex; fenced writes in one transaction with check-index and check-session",
    create: async (config, options) => (await import('../election-consul.js')).createConsulElection(config, options),
  },
};
