/**
 * NATS discovery without JetStream (`natsMode: subjects`), for servers started without `-js`:
 * plain subjects and a table kept by every client.
 *
 *   services.<service>.register     the full record (with its expiresAt): an instance is there
 *   services.<service>.heartbeat    the full record again, with a later expiresAt
 *   services.<service>.deregister   { service, id }: the instance is gone
 *   services._announce              request/reply: every client answers with the records it owns
 *
 * Every client subscribes to `services.*.*` and keeps a table of instances, each expiring at its
 * record's `expiresAt` unless a heartbeat moves it (so, as in KV mode, hosts are assumed to keep
 * time). A client that starts asks the live instances to announce themselves (one request,
 * replies gathered until they stall), so its first lookup knows everyone without waiting a
 * heartbeat interval. After a reconnect it publishes its own records again and asks again. The KV
 * mode publishes the same register / heartbeat / deregister messages, so a subjects-mode client
 * also follows KV-mode writers.
 *
 * Limits, by nature of having no server-side store: an exclusive registration is checked against
 * the table (which the announce round filled), so two clients claiming one id in the same instant
 * can both win, and a record is only as durable as its owner's heartbeats. Use KV mode (JetStream)
 * where that matters.
 */
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { StackError } from '../errors.js';
import { CollisionError, NotRegisteredError } from './errors.js';
import { natsDriver, type NatsConfig } from './drivers/nats.js';
import { connectOptions, createNatsBackend, drainPending, sharedConnection, toStackError } from './nats.js';
import { assertInstanceId, assertServiceName, isExpired, parseRecord, sortById, toRecord, topologyFingerprint } from './record.js';
import { pause } from '../util/clock.js';
import { backoffAt } from '../util/retry.js';
import { RECONNECT_BACKOFF, redactUrl } from './resync.js';
import { addServiceListener, anySignal, watchList } from './watch.js';
import type { DiscoveryBackend, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';

/** Subject a starting client asks on; every client answers with the records it owns. */
export const ANNOUNCE_SUBJECT = 'services._announce';
/** How long the announce round waits after the last reply (and at most in all). */
const ANNOUNCE_STALL_MS = 100;
const ANNOUNCE_MAX_MS = 1000;
/** How often expired records of services nobody looks up are dropped from the table. */
const SWEEP_EVERY_MS = 30_000;

type Kind = 'register' | 'heartbeat' | 'deregister';

interface OwnRegistration {
  record: ServiceInstance;
  ttlMs: number;
}

/**
 * The NATS backend in the configured mode. `auto` (the default) asks the server: KV mode when it
 * has JetStream, subjects mode when not; the answer is taken on first use, from the server's INFO.
 */
export function createNatsDiscovery(config: NatsConfig): DiscoveryBackend {
  const mode = config.natsMode ?? 'auto';
  if (mode === 'kv') return createNatsBackend(config);
  if (mode === 'subjects') return createNatsSubjectsBackend(config);
  return autoMode(config);
}

function autoMode(config: NatsConfig): DiscoveryBackend {
  let chosen: Promise<DiscoveryBackend> | undefined;
  let closed = false;
  const closing = new AbortController();
  const servers = config.natsUrl
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const backend = (): Promise<DiscoveryBackend> => {
    if (closed) return Promise.reject(new StackError('the nats discovery backend is closed', { code: 'closed' }));
    chosen ??= (async () => {
      const { connect, credsAuthenticator } = await import('@nats-io/transport-node');
      const probe = await connect({ ...connectOptions(config, servers, credsAuthenticator), maxReconnectAttempts: 0 });
      const jetstream = probe.info?.jetstream === true;
      await probe.close();
      return jetstream ? createNatsBackend(config) : createNatsSubjectsBackend(config);
    })().catch((err: unknown) => {
      chosen = undefined; // the next call asks again
      throw toStackError(err, 'connect', servers.map(redactUrl).join(','));
    });
    return chosen;
  };
  return {
    name: 'nats',
    capabilities: natsDriver.capabilities,
    register: async (input, opts) => (await backend()).register(input, opts),
    deregister: async (service, id) => (await backend()).deregister(service, id),
    heartbeat: async (service, id) => (await backend()).heartbeat(service, id),
    lookup: async (service) => (await backend()).lookup(service),
    list: async () => (await backend()).list(),
    check: async () => (await backend()).check(),
    watch(service, opts = {}) {
      return (async function* () {
        // Until the server answers, the mode is unknown: keep asking (a watch outlives an outage).
        let chosenBackend: DiscoveryBackend | undefined;
        for (let failures = 0; !chosenBackend; failures++) {
          if (opts.signal?.aborted || closed) return;
          try {
            chosenBackend = await backend();
          } catch (err) {
            if (err instanceof StackError && err.code === 'closed') return;
            await pause(backoffAt(failures, RECONNECT_BACKOFF), anySignal([opts.signal, closing.signal]));
          }
        }
        yield* chosenBackend.watch(service, opts);
      })();
    },
    async close() {
      closed = true;
      closing.abort();
      const pending = chosen;
      chosen = undefined;
      await (await pending?.catch(() => undefined))?.close();
    },
  };
}

export function createNatsSubjectsBackend(config: NatsConfig): DiscoveryBackend {
  const servers = config.natsUrl
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const where = servers.map(redactUrl).join(',');
  const own = new Map<string, OwnRegistration>();
  const table = new Map<string, Map<string, ServiceInstance>>();
  const listeners = new Map<string, Set<() => void>>();
  let sweeper: NodeJS.Timeout | undefined;
  let closed = false;
  const closing = new AbortController();
  const keyOf = (service: string, id: string) => `${service}\u0000${id}`;

  function notify(service: string): void {
    for (const l of listeners.get(service) ?? []) l();
  }

  /** Live records of a service, dropping the expired ones as we go. */
  function live(service: string, now = Date.now()): Map<string, ServiceInstance> {
    const entries = table.get(service);
    if (!entries) return new Map();
    for (const [id, r] of entries) if (isExpired(r, now)) entries.delete(id);
    if (entries.size === 0) table.delete(service);
    return entries;
  }

  function snapshot(service: string): ServiceInstance[] {
    return sortById([...live(service).values()].map((r) => structuredClone(r)));
  }

  /** Take in a record heard from the wire (or made here); notifies when the topology changed. */
  function learn(record: ServiceInstance): void {
    if (isExpired(record)) return;
    const entries = table.get(record.service) ?? new Map<string, ServiceInstance>();
    const before = entries.get(record.id);
    // A late heartbeat must not move expiry back (messages of one client arrive in order; of two, not).
    if (
      before &&
      before.expiresAt &&
      record.expiresAt &&
      Date.parse(record.expiresAt) < Date.parse(before.expiresAt) &&
      before.registeredAt === record.registeredAt
    )
      return;
    entries.set(record.id, record);
    table.set(record.service, entries);
    if (!before || topologyFingerprint([before]) !== topologyFingerprint([record])) notify(record.service);
  }

  function forget(service: string, id: string): void {
    if (table.get(service)?.delete(id)) notify(service);
  }

  function onMessage(msg: Msg): void {
    const [, service, kind] = msg.subject.split('.');
    if (!service || !kind) return;
    let body: unknown;
    try {
      body = msg.json();
    } catch {
      return; // not ours
    }
    if (kind === 'deregister') {
      const b = body as { service?: unknown; id?: unknown };
      if (b.service === service && typeof b.id === 'string') forget(service, b.id);
      return;
    }
    if (kind !== 'register' && kind !== 'heartbeat') return;
    const record = parseRecord(body);
    if (record && record.service === service) learn(record);
  }

  const shared = sharedConnection(open, where, () => closed);
  const connection = shared.get;

  async function open(): Promise<NatsConnection> {
    const { connect, credsAuthenticator } = await import('@nats-io/transport-node');
    const nc = await connect(connectOptions(config, servers, credsAuthenticator));
    nc.subscribe('services.*.*', { callback: (err, msg) => (err ? undefined : onMessage(msg)) });
    nc.subscribe(ANNOUNCE_SUBJECT, {
      callback: (err, msg) => {
        if (err || !msg.reply) return;
        const mine = [...own.values()].map((r) => r.record).filter((r) => !isExpired(r));
        msg.respond(JSON.stringify(mine));
      },
    });
    await nc.flush();
    await askAnnounce(nc);
    void followStatus(nc);
    // Records of services nobody looks up expire only when looked at: sweep now and then, so a
    // long-lived client's table does not grow with every instance that ever came and went.
    sweeper = setInterval(() => {
      for (const service of [...table.keys()]) live(service);
    }, SWEEP_EVERY_MS);
    sweeper.unref();
    return nc;
  }

  /** Ask every live client for the records it owns; gather replies until they stall. */
  async function askAnnounce(nc: NatsConnection): Promise<void> {
    try {
      const replies = await nc.requestMany(ANNOUNCE_SUBJECT, '', { strategy: 'stall', stall: ANNOUNCE_STALL_MS, maxWait: ANNOUNCE_MAX_MS });
      for await (const reply of replies) {
        let list: unknown;
        try {
          list = reply.json();
        } catch {
          continue;
        }
        if (!Array.isArray(list)) continue;
        for (const item of list) {
          const record = parseRecord(item);
          if (record) learn(record);
        }
      }
    } catch {
      // Nobody answered (no responders) or the round ended early: the table fills from messages.
    }
  }

  async function followStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type !== 'reconnect') continue;
      // The server may be a new one, or have missed our heartbeats: say who we are, ask who is there.
      for (const reg of own.values()) publish(nc, 'register', refreshed(reg));
      void askAnnounce(nc);
      for (const service of listeners.keys()) notify(service);
    }
  }

  function refreshed(reg: OwnRegistration): ServiceInstance {
    if (reg.ttlMs > 0) reg.record = { ...reg.record, expiresAt: new Date(Date.now() + reg.ttlMs).toISOString() };
    return reg.record;
  }

  function publish(nc: NatsConnection, kind: Kind, body: ServiceInstance | { service: string; id: string }): void {
    nc.publish(`services.${body.service}.${kind}`, JSON.stringify(body));
  }

  async function withNats<T>(what: string, op: (nc: NatsConnection) => Promise<T>): Promise<T> {
    const nc = await connection();
    try {
      return await op(nc);
    } catch (err) {
      throw toStackError(err, what, where);
    }
  }

  return {
    name: 'nats',
    capabilities: natsDriver.capabilities,

    async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<ServiceInstance> {
      const ttlMs = opts.ttlMs ?? config.ttlMs;
      const record = toRecord(input, ttlMs);
      const nc = await connection();
      // From here to the insert nothing awaits: concurrent claims in this process cannot interleave.
      if (opts.exclusive && live(record.service).has(record.id)) throw new CollisionError(record.service, record.id, { backend: 'nats' });
      own.set(keyOf(record.service, record.id), { record, ttlMs });
      learn(record);
      return withNats(`register ${record.service}/${record.id}`, async () => {
        publish(nc, 'register', record);
        await nc.flush();
        return structuredClone(record);
      });
    },

    async deregister(service: string, id: string): Promise<void> {
      assertServiceName(service);
      assertInstanceId(id);
      const nc = await connection();
      own.delete(keyOf(service, id));
      forget(service, id);
      await withNats(`deregister ${service}/${id}`, async () => {
        publish(nc, 'deregister', { service, id });
        await nc.flush();
      });
    },

    async heartbeat(service: string, id: string): Promise<void> {
      assertServiceName(service);
      assertInstanceId(id);
      const nc = await connection();
      let reg = own.get(keyOf(service, id));
      if (!reg) {
        // Registered by another client: refresh it while it is still alive, as the KV mode does.
        const known = live(service).get(id);
        if (!known) throw new NotRegisteredError(service, id, { backend: 'nats' });
        reg = { record: known, ttlMs: config.ttlMs };
      } else if (isExpired(reg.record)) {
        // Expired: heartbeats never resurrect (the holder registers again).
        own.delete(keyOf(service, id));
        throw new NotRegisteredError(service, id, { backend: 'nats' });
      }
      const record = refreshed(reg);
      learn(record);
      await withNats(`heartbeat ${service}/${id}`, async () => {
        publish(nc, 'heartbeat', record);
        await nc.flush();
      });
    },

    async lookup(service: string): Promise<ServiceInstance[]> {
      assertServiceName(service);
      await connection();
      return snapshot(service);
    },

    async list(): Promise<ServiceInstance[]> {
      await connection();
      return [...table.keys()].sort().flatMap((s) => snapshot(s));
    },

    watch(service: string, opts: WatchOptions = {}): AsyncIterable<ServiceInstance[]> {
      assertServiceName(service);
      return watchList(
        {
          load: async () => {
            await connection();
            return snapshot(service);
          },
          subscribe: (changed) => addServiceListener(listeners, service, changed),
        },
        anySignal([opts.signal, closing.signal]),
      );
    },

    async check(): Promise<void> {
      await withNats('check', (nc) => nc.flush());
    },

    async close(): Promise<void> {
      closed = true;
      closing.abort();
      clearInterval(sweeper);
      const pending = shared.take();
      own.clear();
      listeners.clear();
      await drainPending(pending);
    },
  };
}
