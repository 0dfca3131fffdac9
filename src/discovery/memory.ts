/**
 * In-process discovery: for monolithic mode (every service in one process) and for tests.
 *
 * Expiry is lazy: an expired record is dropped when someone looks, and watches schedule a look
 * at the earliest expiry. So the backend owns no timers and leaves nothing behind.
 */
import { CollisionError, NotRegisteredError } from './errors.js';
import { assertServiceName, isExpired, sortById, toRecord } from './record.js';
import { memoryDriver } from './drivers/memory.js';
import { addServiceListener, anySignal, watchList } from './watch.js';
import type { DiscoveryBackend, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';

export interface MemoryBackendOptions {
  /** Default registration TTL; 0 or undefined: registrations never expire. */
  ttlMs?: number;
  /** Name in events and errors; default `memory`. */
  name?: string;
}

interface Entry {
  record: ServiceInstance;
  ttlMs: number | undefined;
}

export function createMemoryBackend(options: MemoryBackendOptions = {}): DiscoveryBackend {
  const name = options.name ?? 'memory';
  const services = new Map<string, Map<string, Entry>>();
  const listeners = new Map<string, Set<() => void>>();
  const closing = new AbortController();

  function notify(service: string): void {
    for (const l of listeners.get(service) ?? []) l();
  }

  /** Live entries of a service, dropping the expired ones as we go. */
  function live(service: string, now = Date.now()): Map<string, Entry> {
    const entries = services.get(service);
    if (!entries) return new Map();
    for (const [id, e] of entries) if (isExpired(e.record, now)) entries.delete(id);
    if (entries.size === 0) services.delete(service);
    return entries;
  }

  function snapshot(service: string): ServiceInstance[] {
    return sortById([...live(service).values()].map((e) => structuredClone(e.record)));
  }

  return {
    name,
    capabilities: memoryDriver.capabilities,

    async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<ServiceInstance> {
      const ttlMs = opts.ttlMs ?? options.ttlMs;
      const record = toRecord(input, ttlMs);
      // Check and insert in one synchronous step: nothing can interleave, so `exclusive` is race-free.
      const entries = live(record.service);
      if (opts.exclusive && entries.has(record.id)) throw new CollisionError(record.service, record.id, { backend: name });
      entries.set(record.id, { record, ttlMs });
      services.set(record.service, entries);
      notify(record.service);
      return structuredClone(record);
    },

    async deregister(service: string, id: string): Promise<void> {
      if (live(service).delete(id)) notify(service);
    },

    async heartbeat(service: string, id: string): Promise<void> {
      const entry = live(service).get(id);
      if (!entry) throw new NotRegisteredError(service, id, { backend: name });
      if (entry.ttlMs) entry.record = { ...entry.record, expiresAt: new Date(Date.now() + entry.ttlMs).toISOString() };
    },

    async lookup(service: string): Promise<ServiceInstance[]> {
      assertServiceName(service);
      return snapshot(service);
    },

    watch(service: string, opts: WatchOptions = {}): AsyncIterable<ServiceInstance[]> {
      assertServiceName(service);
      const signal = anySignal([opts.signal, closing.signal]);
      return watchList(
        {
          load: async () => snapshot(service),
          subscribe: (changed) => addServiceListener(listeners, service, changed),
        },
        signal,
      );
    },

    async list(): Promise<ServiceInstance[]> {
      return [...services.keys()].sort().flatMap((s) => snapshot(s));
    },

    async check(): Promise<void> {},

    async close(): Promise<void> {
      closing.abort();
    },
  };
}
