/** The DNS backend's definition (the implementation, `../dns.ts`, loads when one is created). */
import type { DiscoveryCapabilities, DiscoveryDriver } from '../types.js';

/** The `discovery:` keys the DNS backend owns. */
export interface DnsDriverOptions {
  /** `host:port`, `[v6]:port` or a bare IP (port 53). */
  dnsServer: string;
  /** Domain the service names live in. */
  dnsDomain: string;
}

const CAPABILITIES: Readonly<DiscoveryCapabilities> = Object.freeze({
  register: false,
  deregister: false,
  lookup: true,
  watch: false,
  heartbeat: false,
  list: false,
  inject: false,
});

/** Listed in `registry.ts`. */
export const dnsDriver: DiscoveryDriver<'dns', DnsDriverOptions> = {
  name: 'dns',
  description: 'Read-only: SRV, then A/AAAA records from a DNS server (Consul DNS, CoreDNS, dnsmasq)',
  capabilities: CAPABILITIES,
  shared: true,
  options: (z) => ({
    dnsServer: z.string().describe('dns: server to query, host:port'),
    dnsDomain: z.string().describe('dns: domain the service names live in'),
  }),
  defaults: { dnsServer: '127.0.0.1:53', dnsDomain: 'service.consul' },
  secretOptions: [],
  create: async (config) => (await import('../dns.js')).createDnsBackend({ server: config.dnsServer, domain: config.dnsDomain }),
};
