import type { OptionSchemas } from '../util/driver.js';
import type { DiscoveryBackendName } from './registry.js';

/**
 * Service discovery seam (docs/architecture.md, "The seams"): one small interface, many backends, a manager in front.
 *
 * A backend is a factory returning a plain object (the unstorage driver pattern); heavy client
 * libraries are imported lazily inside the factory's first use, never at module load.
 */

/** One registered instance of a service (a "role" in the SignalDB/Dynamo vocabulary). */
export interface ServiceInstance {
  /** Unique per instance within its service, e.g. `pds-1` or `pds-<host>-<pid>`. */
  id: string;
  /** The role / service name (a DNS label). */
  service: string;
  /** Host name or IP address the instance is reachable at. */
  address: string;
  port?: number;
  /** Full URL when the service speaks HTTP, e.g. `http://127.0.0.1:2582`. */
  url?: string;
  tags: string[];
  meta: Record<string, string>;
  /** ISO-8601 timestamps. */
  registeredAt: string;
  expiresAt?: string;
}

/** What a caller passes to `register`; the backend stamps the times. */
export type InstanceInput = Omit<ServiceInstance, 'registeredAt' | 'expiresAt' | 'tags' | 'meta'> & {
  tags?: string[];
  meta?: Record<string, string>;
};

export interface RegisterOptions {
  /** Registration lifetime without a heartbeat. */
  ttlMs?: number;
  /** Fail with a collision error if an instance with this id is already registered by someone else. */
  exclusive?: boolean;
}

/** What a backend can do. Asking for something it lacks is an `UnsupportedError`, never a no-op. */
export interface DiscoveryCapabilities {
  register: boolean;
  deregister: boolean;
  lookup: boolean;
  watch: boolean;
  heartbeat: boolean;
  /** Lists every service (for `stack discovery ls`). */
  list: boolean;
  /** Injects addresses into dependents' environments (the env backend). */
  inject: boolean;
}

export interface WatchOptions {
  signal?: AbortSignal;
}

export interface DiscoveryBackend {
  readonly name: string;
  readonly capabilities: DiscoveryCapabilities;
  register(instance: InstanceInput, opts?: RegisterOptions): Promise<ServiceInstance>;
  deregister(service: string, id: string): Promise<void>;
  lookup(service: string): Promise<ServiceInstance[]>;
  /** Async iterable of full instance lists: the current list first, then one per change. */
  watch(service: string, opts?: WatchOptions): AsyncIterable<ServiceInstance[]>;
  /** Refresh the registration's TTL. */
  heartbeat(service: string, id: string): Promise<void>;
  /**
   * Keep the registration but mark it failing, so lookups (which ask for passing instances) skip
   * it, with `note` saying why (Consul: the TTL check goes critical). The next `heartbeat` passes
   * it again. A backend without it can only withdraw an instance by deregistering it.
   */
  markCritical?(service: string, id: string, note: string): Promise<void>;
  /** Every registered instance of every service. */
  list(): Promise<ServiceInstance[]>;
  /** env backend: the variables a dependent gets for these instances. */
  environmentFor?(instances: ServiceInstance[]): Record<string, string>;
  /** Check the backend is reachable (and writable, if it can register). Throws UnreachableError. */
  check(): Promise<void>;
  close(): Promise<void>;
}

export type DiscoveryBackendFactory<Options> = (options: Options) => DiscoveryBackend;

/** Events a manager emits for logging: fallbacks, stale answers, reconnects. */
export interface DiscoveryEvent {
  type: 'fallback' | 'stale' | 'reconnect' | 'error';
  backend: string;
  service?: string;
  message: string;
}

/** The discovery settings every backend shares (the rest belong to the backends: see `DiscoveryDriver`). */
export interface DiscoveryCommonConfig {
  /** Ordered list: register in every writable one, look up in order. */
  backends: DiscoveryBackendName[];
  ttlMs: number;
  heartbeatIntervalMs: number;
  /** TLS for the backends that talk to a server (etcd, NATS, Consul). */
  tls?: { ca?: string; cert?: string; key?: string; insecureSkipVerify: boolean };
}

/** What a backend's factory gets besides the profile's settings. */
export interface DiscoveryBackendContext {
  /** Environment the env backend reads; default process.env. */
  env?: Record<string, string | undefined>;
  /** Folder relative paths (`fileDirectory`) resolve against; default the working directory. */
  cwd?: string;
}

/** Keys of T that are not optional. */
type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];

/**
 * A discovery backend's definition: everything the rest of `stack` needs to know about it without
 * loading it. The profile schema, the normalised defaults, the redaction of printed profiles and
 * `DiscoveryConfig` are all derived from the definitions listed in `registry.ts`.
 *
 * `Options` is the backend's slice of the profile's `discovery:` section: flat keys prefixed with
 * the backend's name (`etcdEndpoints`), normalised values (the same as the raw ones: durations
 * are common settings, not options).
 */
export interface DiscoveryDriver<Name extends string = string, Options extends object = object> {
  readonly name: Name;
  /** One line, for documentation and `--help`. */
  readonly description: string;
  readonly capabilities: Readonly<DiscoveryCapabilities>;
  /**
   * Its records are seen from other machines (a server all hosts reach): it can carry a stack
   * across hosts. False for one machine's registries (a folder, the environment, memory).
   */
  readonly shared: boolean;
  /** The zod schema of each option key the backend owns under `discovery:`. */
  readonly options: OptionSchemas<Options>;
  /** The value of every required option a profile leaves out: the one place defaults live. */
  readonly defaults: Readonly<Pick<Options, RequiredKeys<Options>>>;
  /** Option keys whose values are secrets: masked wherever a profile is printed. */
  readonly secretOptions: readonly (keyof Options & string)[];
  /** Option keys holding URLs, which may embed a password (`nats://user:pass@host`): masked too. */
  readonly urlOptions?: readonly (keyof Options & string)[];
  /**
   * Build the backend. Heavy client libraries are imported here, on first use, never at module
   * load: `stack validate` imports every definition and must stay fast.
   */
  create(config: DiscoveryCommonConfig & Options, context: DiscoveryBackendContext): DiscoveryBackend | Promise<DiscoveryBackend>;
}
