/**
 * etcd discovery backend (docs/architecture.md, "Adding a driver"), on the `etcd3` client.
 *
 * Layout: key `<etcdPrefix>/services/<service>/<id>` holds the instance's JSON record and is
 * attached to a lease whose TTL is the registration's TTL. A heartbeat is one lease keep-alive,
 * so a registration whose owner stops heartbeating (crashed, or the service is unhealthy)
 * disappears after one TTL; the client does not keep leases alive on its own for that reason.
 *
 * Recovery: if a keep-alive finds the lease gone (the server lost it, or was down longer than
 * the TTL), the registration is re-established with a fresh lease, so after a server restart
 * registrations are back within one heartbeat. Watches re-read the prefix whenever the watch
 * stream (re)connects, so nothing that changed while it was down is missed.
 *
 * Records carry `registeredAt` but no stored `expiresAt`: the lease is the truth about expiry,
 * and rewriting the record on every heartbeat would wake every watcher for nothing. `list()`
 * reports each record's expiry from its lease's remaining time; lookups and watches do not.
 */
import { errorText } from '../util/error-text.js';
import { readFileSync } from 'node:fs';
import type { Etcd3, IOptions } from 'etcd3';
import { StackError, StackFailedError, UnreachableError } from '../errors.js';
import { CollisionError } from './errors.js';
import { etcdDriver, type EtcdConfig } from './drivers/etcd.js';
import { assertInstanceId, assertServiceName, sortById, toRecord } from './record.js';
import { anySignal } from './watch.js';
import type { DiscoveryBackend, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';
import { redactUrlCredentials } from '../util/redact.js';
import { createKeyedQueue, parseStored, RECONNECT_BACKOFF, redactUrl, watchByResync } from './resync.js';
import { backoffAt } from '../util/retry.js';

/** How long one unary call (or one keep-alive round trip) may take: a hung server is "unreachable". */
const REQUEST_TIMEOUT_MS = 5000;

/** What this client registered, so it can keep it alive and put it back after an outage. */
interface OwnRegistration {
  key: string;
  record: ServiceInstance;
  ttlSeconds: number;
  leaseId: string;
  /**
   * Claimed `exclusive`: put back only where the key is free, and removed only while it still
   * hangs on our lease, so a late heartbeat or deregistration (a client cut off, healed later)
   * never replaces or removes the record another client claimed meanwhile.
   */
  exclusive: boolean;
}

export function createEtcdBackend(config: EtcdConfig): DiscoveryBackend {
  const endpoints = config.etcdEndpoints.length > 0 ? config.etcdEndpoints : etcdDriver.defaults.etcdEndpoints;
  const where = endpoints.map(redactUrl).join(',');
  const root = `${config.etcdPrefix.replace(/\/+$/, '')}/services/`;
  const own = new Map<string, OwnRegistration>();
  /** Per key: the tail of its chain of register / deregister / heartbeat calls (see `oneAtATime`). */
  let clientPromise: Promise<Etcd3> | undefined;
  let closed = false;
  /** Aborted by close(): ends every watch of this backend. */
  const closing = new AbortController();

  const keyOf = (service: string, id: string) => {
    assertServiceName(service);
    assertInstanceId(id);
    return `${root}${service}/${id}`;
  };
  const servicePrefix = (service: string) => {
    assertServiceName(service);
    return `${root}${service}/`;
  };

  function client(): Promise<Etcd3> {
    if (closed) throw new StackError('the etcd discovery backend is closed', { code: 'closed' });
    clientPromise ??= import('etcd3').then(({ Etcd3 }) => new Etcd3(clientOptions(config, endpoints)));
    return clientPromise;
  }

  /** Run one etcd operation; a network failure becomes an UnreachableError naming etcd and where. */
  async function withEtcd<T>(what: string, op: (etcd: Etcd3) => Promise<T>): Promise<T> {
    const etcd = await client();
    try {
      return await op(etcd);
    } catch (err) {
      throw toStackError(err, what, where);
    }
  }

  async function grant(etcd: Etcd3, ttlSeconds: number): Promise<string> {
    const res = await etcd.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 });
    return res.ID;
  }

  /**
   * Calls on one key run one at a time, in order: otherwise a heartbeat re-granting a lost lease
   * and a re-registration could each put the key on their own lease, and the loser's revoke
   * would delete the winner's record.
   */
  const oneAtATime = createKeyedQueue();

  /** One keep-alive round trip; the remaining TTL, 0 when the lease no longer exists. */
  async function keepAlive(etcd: Etcd3, leaseId: string): Promise<number> {
    const stream = await etcd.leaseClient.leaseKeepAlive();
    let timer: NodeJS.Timeout | undefined;
    try {
      const res = await new Promise<{ TTL: string }>((resolve, reject) => {
        stream.on('data', resolve);
        stream.on('error', reject);
        timer = setTimeout(
          () => reject(new UnreachableError('etcd', `etcd at ${where} gave no keep-alive answer within ${REQUEST_TIMEOUT_MS} ms`)),
          REQUEST_TIMEOUT_MS,
        );
        stream.write({ ID: leaseId });
      });
      return Number(res.TTL);
    } finally {
      clearTimeout(timer);
      stream.end();
    }
  }

  /** Put a record of ours on a fresh lease (after registration, or when the old lease is gone). */
  async function establish(etcd: Etcd3, reg: Omit<OwnRegistration, 'leaseId' | 'exclusive'>, exclusive: boolean): Promise<string> {
    const leaseId = await grant(etcd, reg.ttlSeconds);
    const value = JSON.stringify(reg.record);
    if (exclusive) {
      const txn = await etcd.if(reg.key, 'Create', '==', 0).then(etcd.put(reg.key).value(value).lease(leaseId)).commit();
      if (!txn.succeeded) {
        await revokeQuietly(etcd, leaseId);
        throw new CollisionError(reg.record.service, reg.record.id, { backend: 'etcd' });
      }
    } else {
      await etcd.put(reg.key).value(value).lease(leaseId);
    }
    return leaseId;
  }

  async function heartbeatKey(etcd: Etcd3, key: string, service: string, id: string): Promise<void> {
    const reg = own.get(key);
    if (!reg) {
      // Registered by another client (another `stack` process): keep its lease alive if it exists.
      const res = await etcd.kv.range({ key: Buffer.from(key) });
      const lease = res.kvs[0]?.lease;
      if (!lease || lease === '0') throw notRegistered(service, id);
      if ((await keepAlive(etcd, lease)) <= 0) throw notRegistered(service, id);
      return;
    }
    if ((await keepAlive(etcd, reg.leaseId)) > 0) return;
    // The lease is gone (expired while etcd or we were away): put the registration back (a claimed
    // one only where the key is free: CollisionError when another client claimed it meanwhile).
    reg.leaseId = await establish(etcd, reg, reg.exclusive);
  }

  /** Every record under a prefix, and the store revision the read saw. */
  async function readRange(prefix: string): Promise<{ list: ServiceInstance[]; revision: bigint }> {
    return withEtcd(`read ${prefix}`, async (etcd) => {
      const res = await etcd.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
      return {
        list: sortById(res.kvs.flatMap((kv) => parseStored(kv.value.toString()))),
        revision: BigInt(res.header.revision),
      };
    });
  }

  async function readPrefix(prefix: string): Promise<ServiceInstance[]> {
    return (await readRange(prefix)).list;
  }

  /**
   * Every record under a prefix, each with the expiry its lease has now (`list()`, for `stack
   * status` across hosts: the age of the last heartbeat). One request per lease, so lookups,
   * which the engine makes often, stay a single read.
   */
  async function readWithExpiry(prefix: string): Promise<ServiceInstance[]> {
    return withEtcd(`read ${prefix}`, async (etcd) => {
      const res = await etcd.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
      const now = Date.now();
      const leases = new Map<string, Promise<number | undefined>>();
      const remaining = (lease: string) => {
        let ttl = leases.get(lease);
        if (!ttl) {
          ttl = etcd.leaseClient.leaseTimeToLive({ ID: lease }).then(
            (r) => Number(r.TTL),
            () => undefined, // gone meanwhile, or not answered: no expiry to show
          );
          leases.set(lease, ttl);
        }
        return ttl;
      };
      const lists = await Promise.all(
        res.kvs.map(async (kv) => {
          const records = parseStored(kv.value.toString());
          const ttl = kv.lease && kv.lease !== '0' ? await remaining(kv.lease) : undefined;
          if (ttl === undefined || !Number.isFinite(ttl) || ttl < 0) return records;
          // etcd truncates the remaining time to whole seconds: the middle of that second is the best guess.
          return records.map((r) => ({ ...r, expiresAt: new Date(now + (ttl + 0.5) * 1000).toISOString() }));
        }),
      );
      return sortById(lists.flat());
    });
  }

  return {
    name: 'etcd',
    capabilities: etcdDriver.capabilities,

    async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<ServiceInstance> {
      const ttlMs = opts.ttlMs ?? config.ttlMs;
      const ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
      const now = Date.now();
      const record = toRecord(input, undefined, now); // no stored expiresAt: the lease is the truth
      const key = keyOf(record.service, record.id);
      await oneAtATime(key, () =>
        withEtcd(`register ${record.service}/${record.id}`, async (etcd) => {
          const leaseId = await establish(etcd, { key, record, ttlSeconds }, !!opts.exclusive);
          const previous = own.get(key);
          own.set(key, { key, record, ttlSeconds, leaseId, exclusive: !!opts.exclusive });
          // The key now hangs on the new lease, so revoking the old one deletes nothing.
          if (previous && previous.leaseId !== leaseId) await revokeQuietly(etcd, previous.leaseId);
        }),
      );
      return { ...record, expiresAt: new Date(now + ttlSeconds * 1000).toISOString() };
    },

    async deregister(service: string, id: string): Promise<void> {
      const key = keyOf(service, id);
      await oneAtATime(key, () =>
        withEtcd(`deregister ${service}/${id}`, async (etcd) => {
          const reg = own.get(key);
          own.delete(key);
          // A claim of ours is removed only while the key still hangs on our lease.
          if (reg?.exclusive) await etcd.if(key, 'Lease', '==', reg.leaseId).then(etcd.delete().key(key)).commit();
          else await etcd.delete().key(key);
          if (reg) await revokeQuietly(etcd, reg.leaseId);
        }),
      );
    },

    async lookup(service: string): Promise<ServiceInstance[]> {
      return readPrefix(servicePrefix(service));
    },

    list(): Promise<ServiceInstance[]> {
      return readWithExpiry(root);
    },

    async heartbeat(service: string, id: string): Promise<void> {
      const key = keyOf(service, id);
      const beat = (etcd: Etcd3) => heartbeatKey(etcd, key, service, id);
      await oneAtATime(key, () => withEtcd(`heartbeat ${service}/${id}`, beat));
    },

    watch(service: string, opts: WatchOptions = {}): AsyncIterable<ServiceInstance[]> {
      const prefix = servicePrefix(service);
      return watchByResync(anySignal([opts.signal, closing.signal]), async (notify) => {
        const openWatcher = async () => {
          const w = await withEtcd(`watch ${prefix}`, (etcd) => etcd.watch().prefix(prefix).create());
          // `connected` also fires after every reconnect: re-read then, since events were missed.
          w.on('put', notify).on('delete', notify).on('connected', notify);
          w.on('error', () => undefined); // the watcher reconnects by itself
          return w;
        };
        let watcher = await openWatcher();
        let highestRevision = 0n;
        return {
          read: async () => {
            const { list, revision } = await readRange(prefix);
            if (revision < highestRevision) {
              // The cluster was rebuilt from scratch: a watch resuming at our old revision would
              // wait for a future that never comes. Watch afresh from now.
              await watcher.cancel().catch(() => undefined);
              watcher = await openWatcher();
            }
            highestRevision = revision;
            return list;
          },
          stop: async () => {
            await watcher.cancel().catch(() => undefined);
          },
        };
      });
    },

    async check(): Promise<void> {
      // Reachable and writable: write a throwaway key, then remove it.
      const probe = `${config.etcdPrefix.replace(/\/+$/, '')}/.check/${process.pid}-${Date.now()}`;
      await withEtcd('check', async (etcd) => {
        await etcd.put(probe).value('ok');
        await etcd.delete().key(probe);
      });
    },

    async close(): Promise<void> {
      closed = true;
      closing.abort();
      const pending = clientPromise;
      clientPromise = undefined;
      if (!pending) return;
      const etcd = await pending;
      // Leave leases to expire on their own: closing a client is not deregistering its services.
      own.clear();
      etcd.close();
    },
  };
}

/** How every etcd client of ours connects (endpoints, credentials, TLS, deadlines, back-off); the election uses it too. */
export function clientOptions(config: EtcdConfig, endpoints: string[]): IOptions {
  const options: IOptions = {
    hosts: endpoints,
    dialTimeout: 3000,
    // A deadline on every unary call, so a hung server fails a call instead of stalling it.
    // Streams (watches, keep-alives) stay open: they have their own liveness handling.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + REQUEST_TIMEOUT_MS }),
    faultHandling: {
      // The default watch backoff grows to many seconds; discovery wants watchers back promptly.
      watchBackoff: quickBackoff(0) as unknown as WatchBackoff,
      // The default per-host circuit breaker fails every call for 5 s after three failures, so
      // that a pool can route around a bad host. With a single endpoint there is nowhere else
      // to go, and it only delays recovery after a restart.
      ...(endpoints.length === 1 ? { host: () => passThroughPolicy as unknown as HostPolicy } : {}),
    },
  };
  if (config.etcdUsername !== undefined) {
    options.auth = { username: config.etcdUsername, password: config.etcdPassword ?? '' };
  }
  // TLS: an `https://` endpoint alone gets the system's roots (etcd3 does that by itself); a CA
  // or a client certificate needs explicit credentials. `insecureSkipVerify` is not available
  // through etcd3's gRPC credentials, so certificates are always verified here.
  const tls = config.tls;
  if (tls?.ca || tls?.cert || tls?.key) {
    options.credentials = {
      // gRPC takes null for "the system's roots"; etcd3's typing insists on a Buffer.
      rootCertificate: tls.ca ? readFileSync(tls.ca) : (null as unknown as Buffer),
      ...(tls.key ? { privateKey: readFileSync(tls.key) } : {}),
      ...(tls.cert ? { certChain: readFileSync(tls.cert) } : {}),
    };
  }
  return options;
}

/** The first key after every key that starts with `prefix` (etcd's range end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key
}

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type WatchBackoff = NonNullable<FaultHandling['watchBackoff']>;
type HostPolicy = ReturnType<NonNullable<FaultHandling['host']>>;

/** The shared reconnect back-off (50 ms doubling up to 2 s) in cockatiel's IBackoff shape. */
function quickBackoff(attempt: number): { duration: number; next(): ReturnType<typeof quickBackoff> } {
  return { duration: backoffAt(attempt, RECONNECT_BACKOFF), next: () => quickBackoff(attempt + 1) };
}

/** A policy (cockatiel's IPolicy shape) that just runs the call. */
const passThroughPolicy = {
  onSuccess: () => ({ dispose() {} }),
  onFailure: () => ({ dispose() {} }),
  // async: a synchronous throw must come back as a rejection (etcd3 chains `.catch` on it).
  async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    return fn({ signal: signal ?? new AbortController().signal });
  },
};

async function revokeQuietly(etcd: Etcd3, leaseId: string): Promise<void> {
  try {
    await etcd.leaseClient.leaseRevoke({ ID: leaseId });
  } catch {
    // Already expired or revoked: the goal is reached.
  }
}

function notRegistered(service: string, id: string): StackError {
  return new StackFailedError(`etcd: instance '${id}' of service '${service}' is not registered`, {
    code: 'not_registered',
  });
}

/** Network and server failures are "unreachable" (exit 3); anything else keeps its own meaning. */
export function toStackError(err: unknown, what: string, where: string): unknown {
  if (err instanceof StackError) return err;
  const name = err instanceof Error ? err.constructor.name : '';
  const message = redactUrlCredentials(errorText(err)); // gRPC quotes the endpoint, password and all
  const unreachable =
    /GRPCUnavailable|GRPCDeadlineExceeded|GRPCConnectFailed|GRPCCancelled|BrokenCircuit|TaskCancelled/.test(name) ||
    /unavailable|ECONNREFUSED|deadline|connect|circuit/i.test(message);
  if (unreachable) {
    return new UnreachableError('etcd', `etcd discovery backend unreachable at ${where} (${what}): ${message}`, {
      cause: err,
    });
  }
  if (/Authentication|Unauthenticated|PermissionDenied|InvalidAuthToken/.test(name)) {
    return new UnreachableError('etcd', `etcd at ${where} refused our credentials (${what})`, {
      cause: err,
      code: 'unauthorized',
    });
  }
  return new StackError(`etcd (${where}) ${what} failed: ${message}`, { code: 'discovery_error', cause: err });
}
