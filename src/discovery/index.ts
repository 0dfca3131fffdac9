/**
 * Discovery's front door: build backends by name, a manager over the configured ones, and the
 * small library API services use to register themselves and find each other.
 *
 * Backends are listed in `registry.ts`. Their client libraries load lazily: `stack plan` never
 * pays for etcd3 or the NATS client, and a backend whose client library is missing fails only
 * when someone uses it.
 */
import { ExitCode, StackError } from '../errors.js';
import { createDiscoveryManager, type DiscoveryManager, type DiscoveryManagerOptions } from './manager.js';
import {
  DEFAULT_DISCOVERY_BACKENDS,
  DISCOVERY_BACKEND_NAMES,
  DISCOVERY_COMMON_DEFAULTS,
  discoveryDriver,
  discoveryDriverDefaults,
  type DiscoveryBackendName,
  type DiscoveryConfig,
} from './registry.js';
import { discoveryConfigFromEnv, isMonolith, sharedMemoryBackend } from './client-env.js';
import type { DiscoveryBackend, DiscoveryBackendContext, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';

export type { DiscoveryManager, DiscoveryManagerOptions } from './manager.js';
export { createDiscoveryManager } from './manager.js';
export { CollisionError, NotRegisteredError } from './errors.js';
export {
  STACK_DISCOVERY_VARIABLE,
  DISCOVERY_KIND_VARIABLE,
  discoveryEnvironmentFor,
  discoveryConfigFromEnv,
  type DiscoveryEnvironmentOptions,
} from './client-env.js';
export type * from './types.js';
export { DISCOVERY_DRIVERS, DISCOVERY_BACKEND_NAMES, discoveryDriver, type DiscoveryBackendName, type DiscoveryConfig } from './registry.js';

/** The defaults a profile gets (the same values: both come from the registry), for services configuring discovery in code. */
export const DEFAULT_DISCOVERY_CONFIG: Readonly<DiscoveryConfig> = Object.freeze({
  backends: [...DEFAULT_DISCOVERY_BACKENDS],
  ...discoveryDriverDefaults(),
  ...DISCOVERY_COMMON_DEFAULTS,
} satisfies DiscoveryConfig);

/** The defaults with `overrides` on top (a fresh copy: arrays are not shared with the defaults). */
export function discoveryConfig(overrides: Partial<DiscoveryConfig> = {}): DiscoveryConfig {
  return { ...structuredClone(DEFAULT_DISCOVERY_CONFIG), ...overrides };
}

export type CreateBackendOptions = DiscoveryBackendContext;

/** Build one backend by name from the profile's discovery settings. */
export async function createBackend(name: DiscoveryBackendName, config: DiscoveryConfig, opts: CreateBackendOptions = {}): Promise<DiscoveryBackend> {
  const driver = discoveryDriver(name);
  if (!driver) {
    throw new StackError(`unknown discovery backend '${String(name)}' (known: ${DISCOVERY_BACKEND_NAMES.join(', ')})`, {
      code: 'invalid_input',
      exitCode: ExitCode.invalidInput,
      path: 'discovery.backends',
    });
  }
  return driver.create(config, opts);
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
  return createDiscoveryManager({ ...managerOptionsOf(opts), backends, ownsBackends: true });
}

function managerOptionsOf(opts: CreateDiscoveryOptions): Omit<DiscoveryManagerOptions, 'backends' | 'ownsBackends'> {
  const { env: _env, cwd: _cwd, ...managerOptions } = opts;
  return managerOptions;
}

/** What a service registers about itself: everything but its role, which is the first argument. */
export type SelfRegistration = Omit<InstanceInput, 'service'>;

export interface DiscoveryClientRegisterOptions extends RegisterOptions {
  /** Heartbeat until deregistered or closed; default true, every `heartbeatIntervalMs`. */
  keepAlive?: boolean;
}

/** The library API for services (docs/architecture.md): roles instead of service names, heartbeats built in. */
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

/**
 * Bind the library API to a manager, or build one from a discovery config (defaults filled in).
 *
 * With no config, the settings come from the environment: a service started by `stack` finds its
 * stack's discovery in `STACK_DISCOVERY` (see client-env.ts), so two lines register it and watch
 * its peers:
 *
 *   const discovery = await createDiscoveryClient();
 *   await discovery.register('api', { id: 'api-1', address: '127.0.0.1', port: 8080 });
 *
 * `DISCOVERY_KIND=nats` picks backends by name; neither variable set means the defaults. With
 * `memory` (monolith mode) every client of the process shares one in-process registry.
 */
export async function createDiscoveryClient(source?: Partial<DiscoveryConfig> | DiscoveryManager, opts: CreateDiscoveryOptions = {}): Promise<DiscoveryClient> {
  const isManager = (s: typeof source): s is DiscoveryManager => typeof (s as DiscoveryManager | undefined)?.lookup === 'function';
  const given = source ?? discoveryConfigFromEnv(opts.env) ?? {};
  const config = isManager(given) ? DEFAULT_DISCOVERY_CONFIG : discoveryConfig(given);
  const ownsManager = !isManager(given);
  const manager = isManager(given)
    ? given
    : source === undefined && isMonolith(config.backends)
      ? createDiscoveryManager({ ...managerOptionsOf(opts), backends: [await sharedMemoryBackend(config.ttlMs)], ownsBackends: false })
      : await createDiscovery(config, opts);
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
      if (ownsManager) await manager.close();
    },
  };
}
