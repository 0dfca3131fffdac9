/**
 * Read-only discovery through DNS (Consul's DNS interface, CoreDNS, dnsmasq, a zone file):
 *
 *  1. SRV `_<service>._tcp.<domain>`: one instance per SRV record, its port from the record, its
 *     address from the target's A/AAAA records (or the target name when it has none);
 *  2. otherwise A/AAAA `<service>.<domain>`: one instance per address, without a port.
 *
 * Queries go to a configurable server and port (node:dns Resolver), never the system resolver,
 * so tests and dev stacks can point at a local server on an unprivileged port.
 * DNS cannot register or be watched; those calls throw UnsupportedError.
 */
import { promises as dnsPromises, type SrvRecord } from 'node:dns';
import { isIP } from 'node:net';
import { InvalidInputError, UnreachableError } from '../errors.js';
import { assertServiceName, unsupported } from './record.js';
import { dnsDriver } from './drivers/dns.js';
import type { DiscoveryBackend, ServiceInstance } from './types.js';

export interface DnsBackendOptions {
  /** `host:port`, `[v6]:port` or a bare IP (port 53). Default: the system's resolvers. */
  server?: string;
  /** Domain the service names live in, e.g. `service.consul`. */
  domain: string;
  /** Per-query timeout; default 2000 ms. */
  timeoutMs?: number;
  /** Attempts per query; default 2. */
  tries?: number;
}

/** Answers meaning "no such record": an empty result, not a failure. */
const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN']);

function codeOf(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'EUNKNOWN';
}

/** Check the configured server is an IP literal with an optional port, as node:dns requires. */
function validateServer(server: string): void {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(server) ?? /^([^:]+)(?::(\d+))?$/.exec(server);
  const host = m?.[1];
  const port = m?.[2] === undefined ? 53 : Number(m[2]);
  const ok = (host !== undefined && isIP(host) !== 0) || isIP(server) === 6;
  if (!ok || !(port > 0 && port < 65536)) {
    throw new InvalidInputError(
      [{ code: 'invalid_dns_server', path: 'discovery.dnsServer', message: `'${server}' is not an IP address with an optional port (e.g. 127.0.0.1:5353)` }],
      'invalid discovery configuration',
    );
  }
}

export function createDnsBackend(options: DnsBackendOptions): DiscoveryBackend {
  const domain = options.domain.replace(/\.$/, '');
  const resolver = new dnsPromises.Resolver({ timeout: options.timeoutMs ?? 2000, tries: options.tries ?? 2 });
  if (options.server) {
    validateServer(options.server);
    resolver.setServers([options.server]);
  }
  const where = options.server ?? 'the system resolver';

  /** Run a query; "no such record" is an empty list, anything else means DNS is not usable. */
  async function query<T>(run: () => Promise<T[]>, name: string): Promise<T[]> {
    try {
      return await run();
    } catch (err) {
      const code = codeOf(err);
      if (NOT_FOUND.has(code)) return [];
      throw new UnreachableError(`dns ${where}`, `dns discovery: query for ${name} at ${where} failed (${code})`, { cause: err });
    }
  }

  async function addressesOf(name: string): Promise<string[]> {
    const [v4, v6] = await Promise.all([query(() => resolver.resolve4(name), name), query(() => resolver.resolve6(name), name)]);
    return [...v4, ...v6];
  }

  function instance(service: string, id: string, address: string, now: string, extra: Partial<ServiceInstance>): ServiceInstance {
    return { id, service, address, tags: [], meta: {}, registeredAt: now, ...extra };
  }

  return {
    name: 'dns',
    capabilities: dnsDriver.capabilities,

    async lookup(service: string): Promise<ServiceInstance[]> {
      assertServiceName(service);
      // DNS knows no registration time: "registered" means "seen by this lookup".
      const now = new Date().toISOString();
      const srvName = `_${service}._tcp.${domain}`;
      const srv = await query<SrvRecord>(() => resolver.resolveSrv(srvName), srvName);
      if (srv.length > 0) {
        // RFC 2782 preference: lower priority first, then heavier weight.
        srv.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
        return Promise.all(
          srv.map(async (r) => {
            const target = r.name.replace(/\.$/, '');
            const [address] = await addressesOf(target);
            return instance(service, `${target}:${r.port}`, address ?? target, now, {
              port: r.port,
              meta: { target, priority: String(r.priority), weight: String(r.weight) },
            });
          }),
        );
      }
      const hostName = `${service}.${domain}`;
      const addresses = await addressesOf(hostName);
      return addresses.map((address) => instance(service, address, address, now, { meta: { target: hostName } }));
    },

    async check(): Promise<void> {
      // Any answer, even "no such name", proves the server is there and serves the domain.
      const probe = `_stack-check._tcp.${domain}`;
      await query(() => resolver.resolveSrv(probe), probe);
    },

    register: async () => unsupported('dns', 'register'),
    deregister: async () => unsupported('dns', 'deregister'),
    heartbeat: async () => unsupported('dns', 'heartbeat'),
    list: async () => unsupported('dns', 'list'),
    watch(): AsyncIterable<ServiceInstance[]> {
      return { [Symbol.asyncIterator]: () => ({ next: async () => unsupported('dns', 'watch') }) };
    },

    async close(): Promise<void> {
      resolver.cancel();
    },
  };
}
