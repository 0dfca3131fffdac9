/** The NATS backend's definition: the implementation (`../nats.ts`) loads when one is created, the NATS client on its first call. */
import { FULL_CAPABILITIES } from '../record.js';
import type { DiscoveryCommonConfig, DiscoveryDriver } from '../types.js';

/** The `discovery:` keys the NATS backend owns. */
export interface NatsDriverOptions {
  /** One URL or several, comma-separated. */
  natsUrl: string;
  natsCredsFile?: string;
  natsToken?: string;
  natsUser?: string;
  natsPassword?: string;
  natsBucket: string;
}
/** What the backend is created from. */
export type NatsConfig = DiscoveryCommonConfig & NatsDriverOptions;

/** Listed in `registry.ts`; the NATS client is imported on the backend's first call. */
export const natsDriver: DiscoveryDriver<'nats', NatsDriverOptions> = {
  name: 'nats',
  description: 'NATS JetStream key-value bucket: per-key TTLs, watches',
  capabilities: FULL_CAPABILITIES,
  options: (z) => ({
    natsUrl: z.string().describe('nats: server URL(s), comma-separated'),
    natsCredsFile: z.string().optional(),
    natsToken: z.string().optional(),
    natsUser: z.string().optional(),
    natsPassword: z.string().optional(),
    natsBucket: z.string().regex(/^[A-Za-z0-9_-]+$/).describe('nats: key-value bucket name'),
  }),
  defaults: { natsUrl: 'nats://127.0.0.1:4222', natsBucket: 'services' },
  secretOptions: ['natsToken', 'natsPassword'],
  urlOptions: ['natsUrl'],
  create: async (config) => (await import('../nats.js')).createNatsBackend(config),
};
