/**
 * Consul discovery backend (docs/architecture.md, "Adding a driver"), on the `consul` client (v2).
 *
 * Registration is an agent service registration with one TTL check:
 *   ID   `<service>:<id>` — service names are DNS labels and hold no `:`, so the mapping is
 *        one-to-one and one agent can hold the instances of several stacks side by side (a
 *        `-` separator would make `a-b`/`c` and `a`/`b-c` the same ID);
 *   Name `<service>`, Address, Port, Tags as given;
 *   Meta the instance's meta plus `stack-id`, `stack-url`, `stack-registered-at` (Consul has no
 *        fields for them; they are stripped again on the way back);
 *   Check `{ TTL: <ttl>, Status: passing, DeregisterCriticalServiceAfter: <ttl> }`: an instance
 *        that misses its heartbeats is critical (so absent from lookups) after one TTL, and the
 *        agent removes it one TTL later (real Consul rounds that up to a minute).
 * A heartbeat passes the check `service:<ID>`. Lookups read `/v1/health/service/<name>?passing`;
 * watches are blocking queries on the same endpoint with `index` + `wait`. `list()` walks the
 * catalog's service names and looks each one up, so it agrees with lookups.
 *
 * `exclusive`: Consul's agent API has no create-if-absent, so a claim is check-then-register,
 * serialised within this process. Two processes racing for one id on one agent can both win;
 * etcd and NATS detect that race, Consul does not.
 */
import { errorText } from '../util/error-text.js';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ExitCode, StackError, StackFailedError, UnreachableError } from '../errors.js';
import { CollisionError } from './errors.js';
import { consulDriver, type ConsulConfig } from './drivers/consul.js';
import { assertInstanceId, assertServiceName, sortById, toRecord, topologyFingerprint } from './record.js';
import type { DiscoveryBackend, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';
import { createKeyedQueue, RECONNECT_BACKOFF } from './resync.js';
import { pause } from '../util/clock.js';
import { backoffAt } from '../util/retry.js';

/** Meta keys this backend adds; user meta must not use them. */
const META_ID = 'stack-id';
const META_URL = 'stack-url';
const META_REGISTERED_AT = 'stack-registered-at';
const OUR_META = new Set([META_ID, META_URL, META_REGISTERED_AT]);

/** How long one blocking query may wait before it is simply asked again. */
const BLOCKING_WAIT_S = 55;

// The slice of the `consul` client this backend uses (its bundled typings omit `ctx`, TLS and
// several endpoints).
interface CallContext extends EventEmitter {
  includeResponse?: boolean;
  /** papi refuses to start a request on a context already marked canceled. */
  canceled?: boolean;
}
interface CallOptions {
  ctx?: CallContext;
  timeout?: number;
  index?: string;
  wait?: string;
}
interface AgentServiceView {
  ID: string;
  Service: string;
}
interface AgentCheckView {
  CheckID: string;
  Status: string;
  ServiceID: string;
}
interface HealthEntry {
  Node?: { Address?: string };
  Service: { ID: string; Service: string; Tags?: string[] | null; Address?: string; Port?: number; Meta?: Record<string, string> | null };
}
interface ConsulClient {
  agent: {
    service: {
      register(o: Record<string, unknown>): Promise<unknown>;
      deregister(o: { id: string } & CallOptions): Promise<unknown>;
      list(o?: CallOptions): Promise<Record<string, AgentServiceView>>;
    };
    check: {
      pass(o: { id: string; note?: string } & CallOptions): Promise<unknown>;
      fail(o: { id: string; note?: string } & CallOptions): Promise<unknown>;
      list(o?: CallOptions): Promise<Record<string, AgentCheckView>>;
    };
  };
  health: { service(o: { service: string; passing?: boolean } & CallOptions): Promise<unknown> };
  catalog: { service: { list(o?: CallOptions): Promise<Record<string, string[]>> } };
  status: { leader(o?: CallOptions): Promise<string> };
  destroy(): void;
}

interface OwnRegistration {
  input: InstanceInput;
  ttlMs: number;
  registeredAt: string;
}

export function createConsulBackend(config: ConsulConfig): DiscoveryBackend {
  const target = consulTarget(config);
  const own = new Map<string, OwnRegistration>();
  /** What this backend registered for an instance, to put back where the agent forgot it. */
  const ownRegistration = (service: string, id: string): OwnRegistration => {
    const reg = own.get(serviceId(service, id));
    if (!reg) throw new StackFailedError(`consul: instance '${id}' of service '${service}' is not registered`, { code: 'not_registered' });
    return reg;
  };
  /** Per service ID: the tail of its chain of register / deregister / heartbeat calls. */
  let clientPromise: Promise<ConsulClient> | undefined;
  let closed = false;
  const cancelOnClose = new Set<CallContext>();

  function client(): Promise<ConsulClient> {
    if (closed) return Promise.reject(new StackError('the consul discovery backend is closed', { code: 'closed' }));
    clientPromise ??= import('consul').then(({ default: Consul }) => {
      const tls = config.tls;
      const options: Record<string, unknown> = {
        host: target.host,
        port: target.port,
        secure: target.secure,
        ...(config.consulToken ? { defaults: { token: config.consulToken } } : {}),
        ...(tls?.ca ? { ca: readFileSync(tls.ca) } : {}),
        ...(tls?.cert ? { cert: readFileSync(tls.cert) } : {}),
        ...(tls?.key ? { key: readFileSync(tls.key) } : {}),
        ...(tls?.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
      };
      return new (Consul as unknown as new (o: Record<string, unknown>) => ConsulClient)(options);
    });
    return clientPromise;
  }

  async function withConsul<T>(what: string, op: (c: ConsulClient) => Promise<T>): Promise<T> {
    const consul = await client();
    try {
      return await op(consul);
    } catch (err) {
      // A pooled keep-alive socket to an agent that restarted fails once; every call here is
      // idempotent, so one retry on a fresh socket is safe.
      if (!isStaleSocket(err)) throw toStackError(err, what, target.display);
    }
    try {
      return await op(consul);
    } catch (err) {
      throw toStackError(err, what, target.display);
    }
  }

  async function put(consul: ConsulClient, reg: OwnRegistration, status: 'passing' | 'critical' = 'passing'): Promise<void> {
    const { input, ttlMs } = reg;
    const meta: Record<string, string> = { ...(input.meta ?? {}) };
    for (const key of Object.keys(meta)) {
      if (OUR_META.has(key)) throw invalid(`consul: meta key '${key}' is reserved by atproto-stacks`);
    }
    meta[META_ID] = input.id;
    meta[META_REGISTERED_AT] = reg.registeredAt;
    if (input.url !== undefined) meta[META_URL] = input.url;
    await consul.agent.service.register({
      id: serviceId(input.service, input.id),
      name: input.service,
      address: input.address,
      ...(input.port !== undefined ? { port: input.port } : {}),
      tags: [...(input.tags ?? [])],
      meta,
      check: {
        name: `atproto-stacks TTL for ${input.service}/${input.id}`,
        ttl: `${Math.max(1, Math.round(ttlMs))}ms`,
        status,
        deregistercriticalserviceafter: `${Math.max(1, Math.round(ttlMs))}ms`,
      },
    });
  }

  async function lookup(consul: ConsulClient, service: string): Promise<ServiceInstance[]> {
    const entries = (await consul.health.service({ service, passing: true })) as HealthEntry[];
    return toInstances(entries);
  }

  /**
   * Calls on one service ID run one at a time, in order: that makes an exclusive claim's
   * check-then-register atomic within this process, and keeps a heartbeat that re-registers a
   * forgotten service from undoing a deregistration that overtook it.
   */
  const oneAtATime = createKeyedQueue();

  return {
    name: 'consul',
    capabilities: consulDriver.capabilities,

    async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<ServiceInstance> {
      const sid = serviceId(input.service, input.id);
      const ttlMs = opts.ttlMs ?? config.ttlMs;
      const record = toRecord(input, ttlMs);
      const reg: OwnRegistration = { input: record, ttlMs, registeredAt: record.registeredAt };
      await oneAtATime(sid, () =>
        withConsul(`register ${input.service}/${input.id}`, async (consul) => {
          if (opts.exclusive) {
            const [services, checks] = await Promise.all([consul.agent.service.list(), consul.agent.check.list()]);
            const held = services[sid] !== undefined && checks[checkId(sid)]?.Status !== 'critical';
            if (held) throw new CollisionError(input.service, input.id, { backend: 'consul' });
          }
          await put(consul, reg);
          own.set(sid, reg);
        }),
      );
      return record;
    },

    async deregister(service: string, id: string): Promise<void> {
      const sid = serviceId(service, id);
      await oneAtATime(sid, () =>
        withConsul(`deregister ${service}/${id}`, async (consul) => {
          own.delete(sid);
          try {
            await consul.agent.service.deregister({ id: sid });
          } catch (err) {
            if (statusOf(err) !== 404) throw err; // already gone: the goal is reached
          }
        }),
      );
    },

    async lookup(service: string): Promise<ServiceInstance[]> {
      assertServiceName(service);
      return withConsul(`lookup ${service}`, (consul) => lookup(consul, service));
    },

    list(): Promise<ServiceInstance[]> {
      return withConsul('list', async (consul) => {
        const names = Object.keys(await consul.catalog.service.list()).sort();
        const all = await Promise.all(names.map((name) => lookup(consul, name)));
        return all.flat();
      });
    },

    async heartbeat(service: string, id: string): Promise<void> {
      const sid = serviceId(service, id);
      const beat = async (consul: ConsulClient) => {
        try {
          await consul.agent.check.pass({ id: checkId(sid) });
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
          // The agent no longer knows it (restarted, or reaped it): put back what we registered.
          await put(consul, ownRegistration(service, id));
        }
      };
      await oneAtATime(sid, () => withConsul(`heartbeat ${service}/${id}`, beat));
    },

    async markCritical(service: string, id: string, note: string): Promise<void> {
      const sid = serviceId(service, id);
      // `PUT /v1/agent/check/fail/<check>?note=`: the service stays in the agent's list, its check
      // critical with the note as output, so `?passing` lookups and watches leave it out. Critical
      // longer than DeregisterCriticalServiceAfter (the TTL; Consul's minimum is a minute), the
      // agent reaps it; the heartbeat that restores it then registers it again.
      const fail = async (consul: ConsulClient) => {
        try {
          await consul.agent.check.fail({ id: checkId(sid), note });
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
          // The agent forgot it: put it back, already failing, so it is not sent traffic meanwhile.
          await put(consul, ownRegistration(service, id), 'critical');
          await consul.agent.check.fail({ id: checkId(sid), note });
        }
      };
      await oneAtATime(sid, () => withConsul(`mark ${service}/${id} critical`, fail));
    },

    watch(service: string, opts: WatchOptions = {}): AsyncIterable<ServiceInstance[]> {
      assertServiceName(service);
      return watchBlocking(service, opts.signal);
    },

    async check(): Promise<void> {
      await withConsul('check', async (consul) => {
        const leader = await consul.status.leader();
        if (!leader) throw new UnreachableError('consul', `consul at ${target.display} has no cluster leader`);
        // Needs the ACL token to be accepted (status endpoints do not look at it).
        await consul.catalog.service.list();
      });
    },

    async close(): Promise<void> {
      closed = true;
      for (const ctx of cancelOnClose) {
        ctx.canceled = true;
        ctx.emit('cancel');
      }
      cancelOnClose.clear();
      const pending = clientPromise;
      clientPromise = undefined;
      own.clear();
      if (pending) (await pending).destroy();
    },
  };

  /** Blocking queries on `/v1/health/service/<name>?passing`: the current list, then one per change. */
  async function* watchBlocking(service: string, signal?: AbortSignal): AsyncGenerator<ServiceInstance[]> {
    let index = '0';
    let last: string | undefined;
    let failures = 0;
    while (!signal?.aborted && !closed) {
      const ctx: CallContext = new EventEmitter();
      ctx.includeResponse = true;
      // An abort can come before the request has started (and listens for `cancel`): mark it too.
      const cancel = () => {
        ctx.canceled = true;
        ctx.emit('cancel');
      };
      signal?.addEventListener('abort', cancel);
      cancelOnClose.add(ctx);
      let list: ServiceInstance[];
      try {
        const consul = await client();
        const [res, body] = (await consul.health.service({
          service,
          passing: true,
          index,
          wait: `${BLOCKING_WAIT_S}s`,
          timeout: (BLOCKING_WAIT_S + 10) * 1000,
          ctx,
        })) as [IncomingMessage, HealthEntry[]];
        const next = BigInt(String(res.headers['x-consul-index'] ?? '0'));
        // An index that goes backwards (a restarted agent) or is not positive resets the watch.
        index = next > 0n && next >= BigInt(index) ? next.toString() : '0';
        list = toInstances(body);
        failures = 0;
      } catch {
        if (signal?.aborted || closed) break;
        failures += 1;
        index = '0'; // after an outage, start over with a fresh, non-blocking read
        await pause(backoffAt(failures, RECONNECT_BACKOFF), signal);
        continue;
      } finally {
        signal?.removeEventListener('abort', cancel);
        cancelOnClose.delete(ctx);
      }
      const fingerprint = topologyFingerprint(list);
      if (fingerprint !== last) {
        last = fingerprint;
        yield list;
      }
    }
  }
}

/** The id Consul gives a service's only check: `service:<service ID>`. */
function checkId(sid: string): string {
  return `service:${sid}`;
}

function serviceId(service: string, id: string): string {
  assertServiceName(service);
  assertInstanceId(id);
  return `${service}:${id}`;
}

/**
 * Health entries to instances. Services registered by other tools have no `stack-*` meta: their
 * id is the Consul service ID and their registration time is unknown (the epoch stands for it).
 */
function toInstances(entries: HealthEntry[]): ServiceInstance[] {
  const list = entries.map(({ Node, Service: s }) => {
    const meta = { ...(s.Meta ?? {}) };
    const record: ServiceInstance = {
      id: meta[META_ID] ?? s.ID,
      service: s.Service,
      address: s.Address || Node?.Address || '',
      tags: [...(s.Tags ?? [])],
      meta: Object.fromEntries(Object.entries(meta).filter(([k]) => !OUR_META.has(k))),
      registeredAt: meta[META_REGISTERED_AT] ?? new Date(0).toISOString(),
    };
    if (s.Port) record.port = s.Port;
    if (meta[META_URL] !== undefined) record.url = meta[META_URL];
    return record;
  });
  return sortById(list);
}

interface ConsulTarget {
  host: string;
  port: number;
  secure: boolean;
  /** For messages: scheme, host and port, never credentials. */
  display: string;
}

/** `consulAddress` is `host:port` or a URL; `consulScheme` applies to the former. */
function consulTarget(config: ConsulConfig): ConsulTarget {
  const raw = config.consulAddress || consulDriver.defaults.consulAddress;
  const url = new URL(raw.includes('://') ? raw : `${config.consulScheme}://${raw}`);
  const secure = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port ? Number(url.port) : secure ? 8501 : 8500;
  return { host, port, secure, display: `${url.protocol}//${url.host}` };
}

function isStaleSocket(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  return e?.code === 'ECONNRESET' || e?.code === 'EPIPE' || /socket hang up/.test(e?.message ?? '');
}

function statusOf(err: unknown): number | undefined {
  const e = err as { statusCode?: number; response?: { statusCode?: number } } | undefined;
  return e?.statusCode ?? e?.response?.statusCode;
}

function invalid(message: string): StackError {
  return new StackError(message, { code: 'invalid_input', exitCode: ExitCode.invalidInput });
}

function toStackError(err: unknown, what: string, where: string): unknown {
  if (err instanceof StackError) return err;
  const status = statusOf(err);
  const message = errorText(err);
  if (status === 403 || status === 401) {
    // Consul's 403 bodies do not carry the token, but nothing about it is worth echoing either.
    return new UnreachableError('consul', `consul at ${where} refused our ACL token (${what}: HTTP ${status})`, {
      cause: err,
      code: 'unauthorized',
    });
  }
  if (status === 400) return invalid(`consul (${where}) rejected ${what}: ${message}`);
  if (status === undefined) {
    return new UnreachableError('consul', `consul discovery backend unreachable at ${where} (${what}): ${message}`, {
      cause: err,
    });
  }
  return new StackError(`consul (${where}) ${what} failed: ${message}`, { code: 'discovery_error', cause: err });
}
