/**
 * Discovery's front door: build backends by name, a manager over the configured ones, and the
 * small library API services use to register themselves and find each other.
 *
 * Backends load lazily: `stack plan` never pays for etcd3 or the NATS client, and a backend
 * whose client library is missing fails only when someone configures it.
 */
import path from 'node:path';
import { ExitCode, StackError } from '../errors.js';
import type { DiscoveryBackendName, DiscoveryConfig } from '../profile/types.js';
import { createDiscoveryManager, type DiscoveryManager, type DiscoveryManagerOptions } from './manager.js';
import type { DiscoveryBackend, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';

export type { DiscoveryManager, DiscoveryManagerOptions } from './manager.js';
export { createDiscoveryManager } from './manager.js';
export { CollisionError, NotRegisteredError } from './errors.js';
export type * from './types.js';

/** The defaults a profile gets (mirrors profile/normalize.ts), for services configuring discovery in code. */
export const DEFAULT_DISCOVERY_CONFIG: Readonly<DiscoveryConfig> = Object.freeze({
  backends: ['file'],
  consulAddress: '127.0.0.1:8500',
  consulScheme: 'http',
  etcdEndpoints: ['http://127.0.0.1:2379'],
  etcdPrefix: '/atproto-stacks',
  natsUrl: 'nats://127.0.0.1:4222',
  natsBucket: 'services',
  fileDirectory: '.stack/discovery',
  dnsServer: '127.0.0.1:53',
  dnsDomain: 'service.consul',
  ttlMs: 30_000,
  heartbeatIntervalMs: 10_000,
} satisfies DiscoveryConfig);

export function discoveryConfig(overrides: Partial<DiscoveryConfig> = {}): DiscoveryConfig {
  return { ...DEFAULT_DISCOVERY_CONFIG, backends: [...DEFAULT_DISCOVERY_CONFIG.backends], etcdEndpoints: [...DEFAULT_DISCOVERY_CONFIG.etcdEndpoints], ...overrides };
}

export interface CreateBackendOptions {
  /** Environment the env backend reads; default process.env. */
  env?: Record<string, string | undefined>;
  /** Folder a relative `fileDirectory` resolves against; default the working directory. */
  cwd?: string;
}

type RemoteBackendFactory = (config: DiscoveryConfig) => DiscoveryBackend | Promise<DiscoveryBackend>;

/**
 * Backends that talk to a server, each in its own module with its own client library. The module
 * names are held in variables so this file does not depend on them at compile time.
 */
const REMOTE_BACKENDS: Record<'etcd' | 'nats' | 'consul', { module: string; factory: string }> = {
  etcd: { module: './etcd.js', factory: 'createEtcdBackend' },
  nats: { module: './nats.js', factory: 'createNatsBackend' },
  consul: { module: './consul.js', factory: 'createConsulBackend' },
};

async function loadRemoteFactory(name: keyof typeof REMOTE_BACKENDS): Promise<RemoteBackendFactory> {
  const { module, factory } = REMOTE_BACKENDS[name];
  let mod: Record<string, unknown>;
  try {
    mod = (await import(module)) as Record<string, unknown>;
  } catch (err) {
    throw new StackError(`the ${name} discovery backend could not be loaded: ${err instanceof Error ? err.message : String(err)}`, {
      code: 'backend_unavailable',
      exitCode: ExitCode.invalidInput,
      path: 'discovery.backends',
      cause: err,
    });
  }
  const create = mod[factory];
  if (typeof create !== 'function') {
    throw new StackError(`the ${name} discovery backend module does not export ${factory}()`, {
      code: 'backend_unavailable',
      exitCode: ExitCode.invalidInput,
      path: 'discovery.backends',
    });
  }
  return create as RemoteBackendFactory;
}

/** Build one backend by name from the profile's discovery settings. */
export async function createBackend(name: DiscoveryBackendName, config: DiscoveryConfig, opts: CreateBackendOptions = {}): Promise<DiscoveryBackend> {
  switch (name) {
    case 'memory': {
      const { createMemoryBackend } = await import('./memory.js');
      return createMemoryBackend({ ttlMs: config.ttlMs });
    }
    case 'file': {
      const { createFileBackend } = await import('./file.js');
      return createFileBackend({ directory: path.resolve(opts.cwd ?? process.cwd(), config.fileDirectory), ttlMs: config.ttlMs });
    }
    case 'env': {
      const { createEnvBackend } = await import('./env.js');
      return createEnvBackend(opts.env ? { env: opts.env } : {});
    }
    case 'dns': {
      const { createDnsBackend } = await import('./dns.js');
      return createDnsBackend({ server: config.dnsServer, domain: config.dnsDomain });
    }
    case 'etcd':
    case 'nats':
    case 'consul':
      return (await loadRemoteFactory(name))(config);
    default: {
      const unknown: never = name;
      throw new StackError(`unknown discovery backend '${String(unknown)}'`, { code: 'invalid_input', exitCode: ExitCode.invalidInput, path: 'discovery.backends' });
    }
  }
}

export interface CreateDiscoveryOptions extends CreateBackendOptions, Omit<DiscoveryManagerOptions, 'backends' | 'ownsBackends'> {}

/** A manager over the configured backends, in the configured order. */
export async function createDiscovery(config: DiscoveryConfig, opts: CreateDiscoveryOptions = {}): Promise<DiscoveryManager> {
  const names = config.backends.length > 0 ? config.backends : DEFAULT_DISCOVERY_CONFIG.backends;
  const backends: DiscoveryBackend[] = [];
  try {
    for (const name of names) backends.push(await createBackend(name, config, opts));
  } catch (err) {
    await Promise.allSettled(backends.map((b) => b.close()));
    throw err;
  }
  const { env: _env, cwd: _cwd, ...managerOptions } = opts;
  return createDiscoveryManager({ ...managerOptions, backends, ownsBackends: true });
}

/** What a service registers about itself: everything but its role, which is the first argument. */
export type SelfRegistration = Omit<InstanceInput, 'service'>;

export interface DiscoveryClientRegisterOptions extends RegisterOptions {
  /** Heartbeat until deregistered or closed; default true, every `heartbeatIntervalMs`. */
  keepAlive?: boolean;
}

/** The library API for services (DESIGN.md §5): roles instead of service names, heartbeats built in. */
export interface DiscoveryClient {
  register(role: string, instance: SelfRegistration, opts?: DiscoveryClientRegisterOptions): Promise<ServiceInstance>;
  deregister(role: string, id: string): Promise<void>;
  lookup(role: string): Promise<ServiceInstance[]>;
  watch(role: string, opts?: WatchOptions): AsyncIterable<ServiceInstance[]>;
  /** The manager underneath, for everything else. */
  readonly manager: DiscoveryManager;
  /** Stop heartbeats and watches; registrations are left to expire unless deregistered first. */
  close(): Promise<void>;
}

/** Bind the library API to a manager (or build one from a discovery config, defaults filled in). */
export async function createDiscoveryClient(
  source: Partial<DiscoveryConfig> | DiscoveryManager,
  opts: CreateDiscoveryOptions = {},
): Promise<DiscoveryClient> {
  const isManager = (s: typeof source): s is DiscoveryManager => typeof (s as DiscoveryManager).lookup === 'function';
  const config = isManager(source) ? DEFAULT_DISCOVERY_CONFIG : discoveryConfig(source);
  const manager = isManager(source) ? source : await createDiscovery(config, opts);
  const heartbeats = new Map<string, () => Promise<void>>();
  const keyOf = (role: string, id: string): string => `${role}\u0000${id}`;

  return {
    manager,
    async register(role, instance, registerOpts = {}) {
      const { keepAlive = true, ...rest } = registerOpts;
      const input: InstanceInput = { ...instance, service: role };
      const record = await manager.register(input, rest);
      const key = keyOf(role, instance.id);
      await heartbeats.get(key)?.();
      heartbeats.delete(key);
      if (keepAlive && manager.backends.some((b) => b.capabilities.heartbeat)) {
        heartbeats.set(key, manager.keepAlive(input, config.heartbeatIntervalMs, rest));
      }
      return record;
    },
    async deregister(role, id) {
      const key = keyOf(role, id);
      await heartbeats.get(key)?.();
      heartbeats.delete(key);
      await manager.deregister(role, id);
    },
    lookup: (role) => manager.lookup(role),
    watch: (role, watchOpts) => manager.watch(role, watchOpts),
    async close() {
      await Promise.allSettled([...heartbeats.values()].map((stop) => stop()));
      heartbeats.clear();
      if (!isManager(source)) await manager.close();
    },
  };
}
