/** The NATS backend's definition: the implementation (`../nats.ts`) loads when one is created, the NATS client on its first call. */
import { FULL_CAPABILITIES } from '../record.js';
import type { DiscoveryCommonConfig, DiscoveryDriver } from '../types.js';
import type { Electing } from '../election.js';

/** The `discovery:` keys the NATS backend owns. */
export interface NatsDriverOptions {
  /** One URL or several, comma-separated. */
  natsUrl: string;
  natsCredsFile?: string;
  natsToken?: string;
  natsUser?: string;
  natsPassword?: string;
  natsBucket: string;
  /**
   * `kv`: a JetStream key-value bucket; `subjects`: plain subjects and a table in every client
   * (servers without JetStream); `auto` (default): kv when the server has JetStream, else subjects.
   */
  natsMode: NatsMode;
}
export type NatsMode = 'auto' | 'kv' | 'subjects';
/** What the backend is created from. */
export type NatsConfig = DiscoveryCommonConfig & NatsDriverOptions;

/** Listed in `registry.ts`; the NATS client is imported on the backend's first call. It elects (`election`), with JetStream. */
export const natsDriver: DiscoveryDriver<'nats', NatsDriverOptions> & Electing<NatsConfig> = {
  name: 'nats',
  description: 'NATS: a JetStream key-value bucket (kv mode), or plain subjects and heartbeats without JetStream (subjects mode)',
  capabilities: FULL_CAPABILITIES,
  shared: true,
  options: (z) => ({
    natsUrl: z.string().describe('nats: server URL(s), comma-separated'),
    natsCredsFile: z.string().optional(),
    natsToken: z.string().optional(),
    natsUser: z.string().optional(),
    natsPassword: z.string().optional(),
    natsBucket: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .describe('nats: key-value bucket name'),
    natsMode: z.enum(['auto', 'kv', 'subjects']).describe('nats: kv (JetStream), subjects (no JetStream), or auto (kv when the server has JetStream)'),
  }),
  defaults: { natsUrl: 'nats://127.0.0.1:4222', natsBucket: 'services', natsMode: 'auto' },
  secretOptions: ['natsToken', 'natsPassword'],
  urlOptions: ['natsUrl'],
  create: async (config) => (await import('../nats-subjects.js')).createNatsDiscovery(config),
  election: {
    description: "a JetStream KV key created only if absent, refreshed by revision-checked updates, lapsing with the bucket's TTL; term: the create's revision",
    create: async (config, options) => (await import('../election-nats.js')).createNatsElection(config, options),
  },
};
