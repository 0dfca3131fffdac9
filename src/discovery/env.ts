/**
 * Discovery through environment variables, the way Docker links and Kubernetes services do it:
 *
 *   ATPROTO_SERVICE_<NAME>_URL   e.g. http://127.0.0.1:2582
 *   ATPROTO_SERVICE_<NAME>_HOST  e.g. 127.0.0.1
 *   ATPROTO_SERVICE_<NAME>_PORT  e.g. 2582
 *
 * where NAME is the service name upper-cased with `-` as `_` (service names are DNS labels, so
 * the mapping is reversible). What it can do, precisely:
 *  - lookup: yes, from the environment it was given (default process.env), read at each call.
 *    At most one instance per service: an environment variable holds one address.
 *  - list: yes, every service with at least one of the three variables.
 *  - inject: yes, `environmentFor(instances)` is what the engine adds to a dependent's environment.
 *  - register, deregister, heartbeat, watch: no. A process cannot change another one's
 *    environment, and its own never changes after start; these throw UnsupportedError.
 */
import { assertServiceName, sortById, unsupported } from './record.js';
import { envDriver } from './drivers/env.js';
import type { DiscoveryBackend, ServiceInstance } from './types.js';

export const ENV_PREFIX = 'ATPROTO_SERVICE_';

export interface EnvBackendOptions {
  /** The environment to read; default process.env (read at each lookup, not copied). */
  env?: Record<string, string | undefined>;
}

/** `pds-admin` → `PDS_ADMIN`. */
export function envName(service: string): string {
  return service.toUpperCase().replace(/-/g, '_');
}

/** The variables a dependent gets for one instance of a service. */
export function variablesFor(instance: ServiceInstance): Record<string, string> {
  const base = `${ENV_PREFIX}${envName(instance.service)}_`;
  const vars: Record<string, string> = { [`${base}HOST`]: instance.address };
  if (instance.port !== undefined) vars[`${base}PORT`] = String(instance.port);
  if (instance.url !== undefined) vars[`${base}URL`] = instance.url;
  return vars;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };

export function createEnvBackend(options: EnvBackendOptions = {}): DiscoveryBackend {
  const env = options.env ?? process.env;
  // An environment is fixed when a process starts: this is the best "registered at" we know.
  const readAt = new Date().toISOString();

  function read(service: string): ServiceInstance | undefined {
    const base = `${ENV_PREFIX}${envName(service)}_`;
    const url = env[`${base}URL`] || undefined;
    let host = env[`${base}HOST`] || undefined;
    const portText = env[`${base}PORT`] || undefined;
    let port = portText !== undefined && /^\d{1,5}$/.test(portText) ? Number(portText) : undefined;
    if (url !== undefined) {
      // HOST and PORT win when given; otherwise they come from the URL.
      try {
        const parsed = new URL(url);
        host ??= parsed.hostname.replace(/^\[(.*)\]$/, '$1');
        port ??= parsed.port ? Number(parsed.port) : DEFAULT_PORTS[parsed.protocol];
      } catch {
        // An unparsable URL is still passed on as given; it only cannot supply host or port.
      }
    }
    if (host === undefined) return undefined;
    const instance: ServiceInstance = { id: service, service, address: host, tags: [], meta: { source: 'env' }, registeredAt: readAt };
    if (port !== undefined) instance.port = port;
    if (url !== undefined) instance.url = url;
    return instance;
  }

  return {
    name: 'env',
    capabilities: envDriver.capabilities,

    async lookup(service: string): Promise<ServiceInstance[]> {
      assertServiceName(service);
      const found = read(service);
      return found ? [found] : [];
    },

    async list(): Promise<ServiceInstance[]> {
      const pattern = new RegExp(`^${ENV_PREFIX}([A-Z0-9_]+)_(URL|HOST|PORT)$`);
      const services = new Set<string>();
      for (const key of Object.keys(env)) {
        const m = pattern.exec(key);
        if (m?.[1]) services.add(m[1].toLowerCase().replace(/_/g, '-'));
      }
      const found = [...services].flatMap((s) => {
        const r = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(s) ? read(s) : undefined;
        return r ? [r] : [];
      });
      return sortById(found);
    },

    /**
     * Variables for a dependent. An environment holds one address per service: with several
     * instances of a service, the first one given wins (callers order them, e.g. by preference).
     */
    environmentFor(instances: ServiceInstance[]): Record<string, string> {
      const seen = new Set<string>();
      const vars: Record<string, string> = {};
      for (const instance of instances) {
        if (seen.has(instance.service)) continue;
        seen.add(instance.service);
        Object.assign(vars, variablesFor(instance));
      }
      return vars;
    },

    register: async () => unsupported('env', 'register'),
    deregister: async () => unsupported('env', 'deregister'),
    heartbeat: async () => unsupported('env', 'heartbeat'),
    watch(): AsyncIterable<ServiceInstance[]> {
      return {
        [Symbol.asyncIterator]: () => ({ next: async () => unsupported('env', 'watch') }),
      };
    },

    async check(): Promise<void> {},
    async close(): Promise<void> {},
  };
}
