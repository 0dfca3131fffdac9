/**
 * NATS discovery backend (docs/architecture.md, "Adding a driver"), on `@nats-io/transport-node` and `@nats-io/kv`.
 *
 * Layout: JetStream KV bucket `config.natsBucket` (default `services`), key `<service>.<id>`,
 * value the instance's JSON record. The bucket's TTL (stream max age) is the registration TTL;
 * a heartbeat re-puts the record (with a fresh `expiresAt`), which is what refreshes it. Every
 * change is also announced on `services.<service>.register | heartbeat | deregister`, so plain
 * NATS subscribers can follow the topology without JetStream.
 *
 * Expiry: a KV bucket's TTL drops old values silently (no delete marker, so KV watchers are not
 * told), and a bucket created earlier may carry another TTL than ours. Readers therefore also
 * drop records whose `expiresAt` has passed, and watchers re-read when the earliest one is due.
 * That compares the writer's clock with the reader's: hosts are assumed to keep time (NTP).
 *
 * Outages: the connection reconnects forever. Heartbeats re-put whole records, so a registration
 * lost while the server was away is back with the next heartbeat; on every reconnect this client
 * also re-puts what it registered at once, and watchers re-read and re-subscribe.
 */
import { errorText } from '../util/error-text.js';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions, NatsConnection, TlsOptions } from '@nats-io/transport-node';
import type { KV, KvEntry, Kvm } from '@nats-io/kv';
import { StackError, StackFailedError, UnreachableError } from '../errors.js';
import { CollisionError } from './errors.js';
import { natsDriver, type NatsConfig } from './drivers/nats.js';
import { assertInstanceId, assertServiceName, earliestExpiry, isExpired, sortById, toRecord } from './record.js';
import { anySignal } from './watch.js';
import type { DiscoveryBackend, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';
import { createKeyedQueue, parseStored, RECONNECT_BACKOFF, redactUrl, watchByResync } from './resync.js';
import { pause } from '../util/clock.js';
import { backoffAt } from '../util/retry.js';

/** Node's transport also takes `rejectUnauthorized` (its NodeTlsOptions, not exported by name). */
type NodeTlsOptions = TlsOptions & { rejectUnauthorized?: boolean };

/** How long one request to the server may take before the backend counts it as unreachable. */
const REQUEST_TIMEOUT_MS = 5000;

interface Connected {
  nc: NatsConnection;
  kv: KV;
}

interface OwnRegistration {
  record: ServiceInstance;
  ttlMs: number;
  /**
   * Claimed `exclusive`: the revision of our last write of it. Heartbeats and re-puts then update
   * that very revision, and a deregistration deletes it only there, so a late write (a client cut
   * off, healed later) never replaces or removes the record another client claimed meanwhile.
   */
  revision?: number;
}

type Announcement = 'register' | 'heartbeat' | 'deregister';

export function createNatsBackend(config: NatsConfig): DiscoveryBackend {
  const servers = config.natsUrl
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const where = servers.map(redactUrl).join(',');
  const bucket = config.natsBucket || natsDriver.defaults.natsBucket;
  const own = new Map<string, OwnRegistration>();
  /** Per key: the tail of its chain of register / deregister / heartbeat calls (see `oneAtATime`). */
  /** Called on every reconnect: watchers re-read and re-subscribe. */
  const reconnectListeners = new Set<() => void>();
  let disconnected = false;
  let closed = false;
  /** Aborted by close(): ends every watch of this backend. */
  const closing = new AbortController();

  const shared = sharedConnection(open, where, () => closed);
  const connection = shared.get;

  async function open(): Promise<Connected> {
    const [{ connect, credsAuthenticator }, { Kvm }] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/kv')]);
    const nc = await connect(connectOptions(config, servers, credsAuthenticator));
    const kvm = new Kvm(nc);
    let kv: KV;
    try {
      kv = await ensureBucket(kvm);
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
    void followStatus(nc, kvm);
    return { nc, kv };
  }

  /** Create the bucket, or use it as it is if it exists with another configuration (TTL). */
  async function ensureBucket(kvm: Kvm): Promise<KV> {
    try {
      return await kvm.create(bucket, { ttl: config.ttlMs, history: 1 });
    } catch (err) {
      // Readers honour each record's own expiresAt, so another bucket TTL is harmless.
      if (!/already in use|different configuration/i.test(String((err as Error)?.message))) throw err;
      return kvm.open(bucket);
    }
  }

  async function followStatus(nc: NatsConnection, kvm: Kvm): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') disconnected = true;
      if (status.type !== 'reconnect') continue;
      disconnected = false;
      // A server rebuilt without its store has no bucket: make it again before re-putting.
      await ensureBucket(kvm).catch(() => undefined);
      void reestablish();
      for (const listener of reconnectListeners) listener();
    }
  }

  /**
   * Calls on one key run one at a time, in order: a heartbeat's put racing a deregistration's
   * delete could otherwise bring the record back after it was removed.
   */
  const oneAtATime = createKeyedQueue();

  /** Put back everything we registered (the server may have lost it, or it expired meanwhile). */
  async function reestablish(): Promise<void> {
    for (const key of [...own.keys()]) {
      await oneAtATime(key, async () => {
        const reg = own.get(key); // deregistered meanwhile: nothing to put back
        if (reg) await putRecord(reg, 'heartbeat');
      }).catch(() => undefined); // the next heartbeat tries again
    }
  }

  async function withNats<T>(what: string, op: (c: Connected) => Promise<T>): Promise<T> {
    const c = await connection();
    // While reconnecting, requests would only queue up (some never to be answered): fail now.
    if (disconnected) {
      throw new UnreachableError('nats', `nats discovery backend unreachable at ${where} (${what}): disconnected, reconnecting`);
    }
    try {
      return await op(c);
    } catch (err) {
      throw toStackError(err, what, where);
    }
  }

  function announce(nc: NatsConnection, kind: Announcement, record: ServiceInstance | { service: string; id: string }) {
    nc.publish(`services.${record.service}.${kind}`, JSON.stringify(record));
  }

  async function putRecord(reg: OwnRegistration, kind: Announcement): Promise<ServiceInstance> {
    const now = Date.now();
    const record = { ...reg.record, expiresAt: new Date(now + reg.ttlMs).toISOString() };
    const { nc, kv } = await connection();
    const key = keyOf(record.service, record.id);
    if (reg.revision === undefined) await kv.put(key, JSON.stringify(record));
    else {
      try {
        reg.revision = await kv.update(key, JSON.stringify(record), reg.revision);
      } catch (err) {
        if (!isWrongSequence(err)) throw err;
        // Expired, or claimed by another client since: not ours to renew (registering claims it
        // afresh). Kept as it is, so that removing it later still touches only our revision.
        throw notRegistered(record.service, record.id);
      }
    }
    reg.record = record;
    announce(nc, kind, record);
    return record;
  }

  /**
   * The latest entry of every key under a filter, and the stream's last sequence when the read
   * began. Keys come from the stream's subject list (one request and reply) rather than
   * `kv.keys()`, whose consumer can hang forever when the server goes away mid-read; every
   * step here has a timeout.
   */
  async function readEntries(filter: string): Promise<{ lastSeq: number; entries: KvEntry[] }> {
    return withNats(`read ${filter}`, async ({ nc, kv }) => {
      const subjectPrefix = `$KV.${bucket}.`;
      const reply = await nc.request(`$JS.API.STREAM.INFO.KV_${bucket}`, JSON.stringify({ subjects_filter: `${subjectPrefix}${filter}` }), {
        timeout: REQUEST_TIMEOUT_MS,
      });
      const info = reply.json<{
        state?: { last_seq?: number; subjects?: Record<string, number> };
        error?: { description?: string };
      }>();
      if (info.error) throw new Error(`stream info: ${info.error.description ?? 'error'}`);
      const keys = Object.keys(info.state?.subjects ?? {}).map((subject) => subject.slice(subjectPrefix.length));
      const entries = await Promise.all(keys.map((k) => kv.get(k)));
      return { lastSeq: info.state?.last_seq ?? 0, entries: entries.filter((e): e is KvEntry => e !== null) };
    });
  }

  async function readKeys(filter: string): Promise<ServiceInstance[]> {
    const { entries } = await readEntries(filter);
    const now = Date.now();
    return sortById(entries.flatMap((e) => (e.operation === 'PUT' ? parseStored(e.string()) : [])).filter((r) => !isExpired(r, now)));
  }

  return {
    name: 'nats',
    capabilities: natsDriver.capabilities,

    async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<ServiceInstance> {
      const ttlMs = opts.ttlMs ?? config.ttlMs;
      const record = toRecord(input, ttlMs);
      const key = keyOf(input.service, input.id);
      return oneAtATime(key, () =>
        withNats(`register ${input.service}/${input.id}`, async ({ nc, kv }) => {
          const value = JSON.stringify(record);
          if (opts.exclusive) own.set(key, { record, ttlMs, revision: await claim(kv, key, value, record) });
          else {
            await kv.put(key, value);
            own.set(key, { record, ttlMs });
          }
          announce(nc, 'register', record);
          return record;
        }),
      );
    },

    async deregister(service: string, id: string): Promise<void> {
      const key = keyOf(service, id);
      await oneAtATime(key, () =>
        withNats(`deregister ${service}/${id}`, async ({ nc, kv }) => {
          const reg = own.get(key);
          own.delete(key);
          const entry = await kv.get(key);
          if (!entry || entry.operation !== 'PUT') return;
          // A claim of ours is removed only at the revision we last wrote.
          if (reg?.revision !== undefined && entry.revision !== reg.revision) return;
          await kv.delete(key, reg?.revision !== undefined ? { previousSeq: reg.revision } : {}).catch((err: unknown) => {
            if (!isWrongSequence(err)) throw err;
          });
          announce(nc, 'deregister', { service, id });
        }),
      );
    },

    async lookup(service: string): Promise<ServiceInstance[]> {
      assertServiceName(service);
      return readKeys(`${service}.>`);
    },

    list(): Promise<ServiceInstance[]> {
      return readKeys('>');
    },

    async heartbeat(service: string, id: string): Promise<void> {
      const key = keyOf(service, id);
      const beat = async ({ kv }: Connected) => {
        let reg = own.get(key);
        if (!reg) {
          // Registered by another client: refresh what is stored, if it still is.
          const entry = await kv.get(key);
          const [record] = entry && entry.operation === 'PUT' ? parseStored(entry.string()) : [];
          if (!record || isExpired(record)) throw notRegistered(service, id);
          reg = { record, ttlMs: config.ttlMs };
        }
        await putRecord(reg, 'heartbeat');
      };
      await oneAtATime(key, () => withNats(`heartbeat ${service}/${id}`, beat));
    },

    watch(service: string, opts: WatchOptions = {}): AsyncIterable<ServiceInstance[]> {
      assertServiceName(service);
      const filter = `${service}.>`;
      return watchByResync(anySignal([opts.signal, closing.signal]), async (notify) => {
        let stopped = false;
        const stopping = new AbortController();
        const known = new KnownEntries();
        let updates: { stop(): void } | undefined;
        let expiryTimer: NodeJS.Timeout | undefined;
        let subscribed: () => void = () => undefined;
        const firstSubscription = new Promise<void>((resolve) => (subscribed = resolve));
        // The KV watch (an ordered consumer) does not survive a server restart: keep one alive,
        // subscribing again whenever it ends, after a reconnect, or after a failed attempt.
        const keepSubscribed = async () => {
          let failures = 0;
          while (!stopped && !closed) {
            try {
              const { kv } = await connection();
              const iter = await kv.watch({ key: filter, include: 'updates' });
              updates = iter;
              if (stopped) break;
              failures = 0;
              known.stale(); // changes made while we had no subscription: read everything again
              notify();
              subscribed();
              // Each update carries its value: apply it, no round trip (this is the fast path).
              for await (const entry of iter) if (known.apply(entry)) notify();
              // The watch ended without us asking (its consumer went away): pause, then again.
              if (!stopped) await pause(50, stopping.signal);
            } catch {
              failures += 1;
              subscribed(); // the first read goes ahead anyway; it retries on its own
              await pause(backoffAt(failures, RECONNECT_BACKOFF), stopping.signal);
            } finally {
              updates?.stop();
              updates = undefined;
            }
          }
        };
        const onReconnect = () => updates?.stop(); // ends the loop's iteration: it subscribes again
        reconnectListeners.add(onReconnect);
        void keepSubscribed();
        await firstSubscription;
        return {
          read: async () => {
            // A read that was in flight when the connection dropped may never be answered:
            // abandon it on reconnect (the watch loop reads again).
            let abandon: () => void = () => undefined;
            const abandoned = new Promise<never>((_, reject) => {
              abandon = () => reject(new Error('reconnected while reading'));
            });
            reconnectListeners.add(abandon);
            try {
              if (known.isStale) {
                const generation = known.generation;
                known.replaceWith(await Promise.race([readEntries(filter), abandoned]), generation);
              }
            } finally {
              reconnectListeners.delete(abandon);
            }
            const list = known.list();
            // Values dropped by TTL raise no event: when the earliest record is due, look at the
            // server again (its own max age may have dropped values too).
            clearTimeout(expiryTimer);
            const due = earliestExpiry(list);
            if (due !== undefined) {
              expiryTimer = setTimeout(
                () => {
                  known.stale();
                  notify();
                },
                Math.max(0, due - Date.now()) + 20,
              );
            }
            return list;
          },
          stop: async () => {
            stopped = true;
            stopping.abort();
            clearTimeout(expiryTimer);
            reconnectListeners.delete(onReconnect);
            updates?.stop();
          },
        };
      });
    },

    async check(): Promise<void> {
      // Reachable and writable: a probe value put and purged (one fixed key, so nothing piles up).
      await withNats('check', async ({ nc, kv }) => {
        await kv.put('_check.probe', 'ok');
        await kv.purge('_check.probe');
        await nc.flush();
      });
    },

    async close(): Promise<void> {
      closed = true;
      closing.abort();
      const pending = shared.take();
      own.clear();
      reconnectListeners.clear();
      await drainPending(pending?.then((c) => c.nc));
    },
  };
}

/**
 * How every NATS backend connects (both modes): credentials, TLS, reconnecting forever, and a
 * PING every heartbeat interval. A connection whose peer went silent (the host cut off from the
 * network, a link down: nothing resets the socket) is given up after two unanswered PINGs and
 * replaced; left to TCP, its retransmissions back off so far that a host whose link came back
 * after a minute would stay unregistered for about as long again (the client's default PING
 * interval is 2 minutes).
 */
export function connectOptions(
  config: NatsConfig,
  servers: string[],
  credsAuthenticator: typeof import('@nats-io/transport-node').credsAuthenticator,
): ConnectionOptions {
  return {
    servers,
    name: 'atproto-stacks',
    maxReconnectAttempts: -1, // reconnect forever: discovery outlives server restarts
    reconnectTimeWait: 250,
    timeout: 3000,
    pingInterval: Math.max(250, config.heartbeatIntervalMs || 10_000),
    maxPingOut: 2,
    ...(config.natsToken ? { token: config.natsToken } : {}),
    ...(config.natsUser ? { user: config.natsUser, pass: config.natsPassword ?? '' } : {}),
    ...(config.natsCredsFile ? { authenticator: credsAuthenticator(readFileSync(config.natsCredsFile)) } : {}),
    ...tlsOptions(config, servers),
  };
}

/**
 * TLS when the URL asks for it (`tls://`) or TLS files are configured. `insecureSkipVerify`
 * turns off certificate verification (for test setups only).
 */
function tlsOptions(config: NatsConfig, servers: string[]): { tls?: NodeTlsOptions } {
  const tls = config.tls;
  const wanted = servers.some((s) => s.startsWith('tls://')) || !!(tls?.ca || tls?.cert || tls?.key);
  if (!wanted) return {};
  return {
    tls: {
      ...(tls?.ca ? { caFile: tls.ca } : {}),
      ...(tls?.cert ? { certFile: tls.cert } : {}),
      ...(tls?.key ? { keyFile: tls.key } : {}),
      ...(tls?.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
    },
  };
}

/**
 * What a watcher knows of its keys: the latest entry of each, by revision (the stream sequence),
 * fed both by full reads and by the KV watch's updates. Comparing revisions makes the two
 * sources commute: an update that arrives during a full read is neither lost nor undone.
 */
class KnownEntries {
  #entries = new Map<string, { revision: number; record?: ServiceInstance }>();
  /** Bumped by every `stale()`; a full read counts only if none happened while it ran. */
  #generation = 0;
  #freshGeneration = -1;

  get isStale(): boolean {
    return this.#freshGeneration !== this.#generation;
  }

  get generation(): number {
    return this.#generation;
  }

  /** The next read goes to the server. */
  stale(): void {
    this.#generation += 1;
  }

  /** Take in one entry; true when it changed what we know. */
  apply(entry: Pick<KvEntry, 'key' | 'revision' | 'operation' | 'string'>): boolean {
    const current = this.#entries.get(entry.key);
    if (current && current.revision >= entry.revision) return false;
    const [record] = entry.operation === 'PUT' ? parseStored(entry.string()) : [];
    this.#entries.set(entry.key, record ? { revision: entry.revision, record } : { revision: entry.revision });
    return true;
  }

  /**
   * A full read begun at `generation`: its entries, and the end of every key it no longer lists
   * (dropped by age).
   */
  replaceWith({ lastSeq, entries }: { lastSeq: number; entries: KvEntry[] }, generation: number): void {
    const listed = new Set<string>();
    for (const entry of entries) {
      listed.add(entry.key);
      this.apply(entry);
    }
    for (const [key, known] of this.#entries) {
      if (!listed.has(key) && known.revision <= lastSeq) this.#entries.delete(key);
    }
    this.#freshGeneration = generation;
  }

  list(now = Date.now()): ServiceInstance[] {
    const records: ServiceInstance[] = [];
    for (const { record } of this.#entries.values()) if (record && !isExpired(record, now)) records.push(record);
    return sortById(records);
  }
}

/** Create-if-absent (its revision); a value left behind only because its TTL passed does not block a claim. */
async function claim(kv: KV, key: string, value: string, record: ServiceInstance): Promise<number> {
  try {
    return await kv.create(key, value);
  } catch (err) {
    if (!isWrongSequence(err)) throw err;
  }
  const entry = await kv.get(key);
  const [held] = entry && entry.operation === 'PUT' ? parseStored(entry.string()) : [];
  if (entry && held && isExpired(held)) {
    try {
      return await kv.update(key, value, entry.revision);
    } catch (err) {
      if (!isWrongSequence(err)) throw err;
    }
  }
  throw new CollisionError(record.service, record.id, { backend: 'nats' });
}

function isWrongSequence(err: unknown): boolean {
  return /wrong last sequence|10071/i.test(String((err as Error)?.message ?? err));
}

/**
 * `<service>.<id>`. Instance ids may hold `.` and `:`, which a KV key token cannot (`.` splits
 * tokens): those are written `=2E`, `=3A` (and `=` itself `=3D`), so the key stays one token.
 * Records are read from values, never parsed back from keys.
 */
function keyOf(service: string, id: string): string {
  assertServiceName(service);
  assertInstanceId(id);
  return `${service}.${id.replace(/[^-_a-zA-Z0-9]/g, (c) => `=${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)}`;
}

function notRegistered(service: string, id: string): StackError {
  return new StackFailedError(`nats: instance '${id}' of service '${service}' is not registered`, {
    code: 'not_registered',
  });
}

/**
 * The one connection a NATS backend shares (both modes), opened on first use: a failed attempt is
 * forgotten, so the next call tries again; once the backend is closed every call fails. `take()`
 * hands the pending connection over to close() and forgets it.
 */
export function sharedConnection<T>(
  open: () => Promise<T>,
  where: string,
  isClosed: () => boolean,
): { get: () => Promise<T>; take: () => Promise<T> | undefined } {
  let connecting: Promise<T> | undefined;
  return {
    get: () => {
      if (isClosed()) return Promise.reject(new StackError('the nats discovery backend is closed', { code: 'closed' }));
      connecting ??= open().catch((err: unknown) => {
        connecting = undefined; // the next call tries again
        throw toStackError(err, 'connect', where);
      });
      return connecting;
    },
    take: () => {
      const pending = connecting;
      connecting = undefined;
      return pending;
    },
  };
}

/** Close a backend's connection, if one was ever opened: drained, so what was published is sent. */
export async function drainPending(pending: Promise<NatsConnection> | undefined): Promise<void> {
  if (!pending) return;
  try {
    const nc = await pending;
    // Registrations stay until their TTL: closing is not deregistering.
    await nc.drain().catch(() => nc.close());
  } catch {
    // Never connected: nothing to close.
  }
}

export function toStackError(err: unknown, what: string, where: string): unknown {
  if (err instanceof StackError) return err;
  const message = errorText(err);
  const name = err instanceof Error ? err.name : '';
  if (/Authorization|Authentication|AUTHORIZATION_VIOLATION|permissions/i.test(`${name} ${message}`)) {
    return new UnreachableError('nats', `nats at ${where} refused our credentials (${what})`, {
      cause: err,
      code: 'unauthorized',
    });
  }
  if (/certificate|altname|TLS|SSL/i.test(message) || /^ERR_TLS|^CERT_|SELF_SIGNED/.test(String((err as { code?: unknown })?.code))) {
    return new UnreachableError('nats', `nats at ${where}: TLS handshake failed (${what}): ${message}`, { cause: err, code: 'tls' });
  }
  if (
    /Connection|Timeout|Closed|Disconnect|NoResponders|RequestError/i.test(name) ||
    /ECONNREFUSED|connection|timeout|disconnect|no responders|closed/i.test(message)
  ) {
    return new UnreachableError('nats', `nats discovery backend unreachable at ${where} (${what}): ${message}`, {
      cause: err,
    });
  }
  return new StackError(`nats (${where}) ${what} failed: ${message}`, { code: 'discovery_error', cause: err });
}
