/**
 * Consul discovery backend (docs/architecture.md, "Adding a driver"), on the `consul` client (v2).
 *
 * Registration is an agent service registration with one TTL check:
 *   ID   `<service>:<id>` — service names are DNS labels and hold no `:`, so the mapping is
 *        one-to-one and one agent can hold the instances of several stacks side by side (a
 *        `-` separator would make `a-b`/`c` and `a`/`b-c` the same ID);
 *   Name `<service>`, Address, Port, Tags as given;
 *   Meta the instance's meta plus `stack-id`, `stack-url`, `stack-registered-at` (Consul has no
 *        fields for them; they are stripped again on the way back), checked against Consul's
 *        limits before anything is sent (consul-rules.ts);
 *   Check `{ TTL: <ttl>, Status: passing, DeregisterCriticalServiceAfter: max(<ttl>, 1m) }`: an
 *        instance that misses its heartbeats is critical (so absent from `?passing` lookups) after
 *        one TTL. The agent reaps it much later (never before a minute, and only every 30 s);
 *        nothing here waits for that: a heartbeat or a registration puts back and passes what the
 *        agent still holds, or no longer holds.
 * Re-registering an ID keeps its check's previous status (the agent restores it "to avoid
 * flapping"): a critical check would stay critical until the next pass, so every registration
 * is followed by a pass.
 *
 * One agent per host. `consulAddress` is the local agent (each host's own, usually
 * 127.0.0.1:8500), not a shared or load-balanced address: agent endpoints (`/v1/agent/*`) only
 * know the services registered through that agent, so heartbeats must reach the agent that
 * registered the instance. A heartbeat that lands on another agent gets a 404 ("unknown check")
 * and registers the instance again there, as it does after an agent restart; the copy on the
 * first agent then goes critical after one TTL and drops out of lookups.
 *
 * Reads come from the catalog, which every agent feeds by anti-entropy a little after its own
 * writes: a lookup right after a register may not show it yet. Lookups read
 * `/v1/health/service/<name>?passing`; watches are blocking queries on the same endpoint with
 * `index` + `wait`, the index kept at least 1 and reset when it goes backwards, and paced by a
 * token bucket so a server or proxy that answers at once cannot make a busy loop. `list()` walks
 * the catalog's service names and looks each one up, so it agrees with lookups. Every call has a
 * timeout.
 *
 * `exclusive`: Consul's agent API has no create-if-absent, so a claim is check-then-register,
 * serialised within this process. It is checked against the local agent (which sees its own
 * registrations at once) and against the catalog (`/v1/health/service/<name>`, every agent's),
 * where an instance whose checks are all non-critical holds the ID. Two hosts claiming one ID
 * within the catalog's convergence time (usually milliseconds) can both win; etcd and NATS
 * detect that race, Consul does not.
 *
 * ACLs: Consul does not refuse a read that a token may not make, it filters the answer (an empty
 * list, `{}`). `check()` therefore proves that the token can see what the backend needs: it must
 * see the cluster's nodes (node:read), and a probe service registered through the agent must come
 * back through the health endpoint lookups use.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { StackError, StackFailedError, UnreachableError } from '../errors.js';
import { pause } from '../util/clock.js';
import { backoffAt } from '../util/retry.js';
import {
  createTokenBucket,
  deregisterAfterMs,
  invalid,
  isStaleSocket,
  isUnknownCheck,
  metaProblems,
  nextBlockingIndex,
  statusOf,
  toStackError,
} from './consul-rules.js';
import { consulDriver, type ConsulConfig } from './drivers/consul.js';
import { CollisionError } from './errors.js';
import { assertInstanceId, assertServiceName, sortById, toRecord, topologyFingerprint } from './record.js';
import { createKeyedQueue, RECONNECT_BACKOFF } from './resync.js';
import type { DiscoveryBackend, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';

/** Meta keys this backend adds; user meta must not use them. */
const META_ID = 'stack-id';
const META_URL = 'stack-url';
const META_REGISTERED_AT = 'stack-registered-at';
const OUR_META = new Set([META_ID, META_URL, META_REGISTERED_AT]);

/** How long one blocking query may wait before it is simply asked again. */
const BLOCKING_WAIT_S = 55;
/** Every other call: an agent that does not answer within this is unreachable. */
const CALL_TIMEOUT_MS = 5000;
/** The service `check()` registers (and removes) to prove the token sees what it registers. */
export const PROBE_SERVICE = 'atproto-stacks-check';
/** How long the probe may take to show up in the catalog (anti-entropy usually takes milliseconds). */
const PROBE_WAIT_MS = 5000;
/** Watch pacing: a burst of 3 requests, then one every 250 ms while answers come back at once. */
const WATCH_BURST = 3;
const WATCH_REFILL_MS = 250;

/** Knobs for tests; the profile does not set them. */
export interface ConsulTuning {
  callTimeoutMs?: number;
  probeWaitMs?: number;
  watchBurst?: number;
  watchRefillMs?: number;
}

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
  Node?: { Node?: string; Address?: string };
  Service: { ID: string; Service: string; Tags?: string[] | null; Address?: string; Port?: number; Meta?: Record<string, string> | null };
  Checks?: { CheckID?: string; Status?: string }[] | null;
}
interface ConsulClient {
  agent: {
    self(o?: CallOptions): Promise<{ Config?: { NodeName?: string } } | undefined>;
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
  catalog: {
    service: { list(o?: CallOptions): Promise<Record<string, string[]>> };
    node: { list(o?: CallOptions): Promise<unknown> };
  };
  status: { leader(o?: CallOptions): Promise<string> };
  destroy(): void;
}

interface OwnRegistration {
  input: InstanceInput;
  ttlMs: number;
  registeredAt: string;
}

export function createConsulBackend(config: ConsulConfig, tuning: ConsulTuning = {}): DiscoveryBackend {
  const target = consulTarget(config);
  const callTimeoutMs = tuning.callTimeoutMs ?? CALL_TIMEOUT_MS;
  const own = new Map<string, OwnRegistration>();
  /** What this backend registered for an instance, to put back where the agent forgot it. */
  const ownRegistration = (service: string, id: string): OwnRegistration => {
    const reg = own.get(serviceId(service, id));
    if (!reg) throw new StackFailedError(`consul: instance '${id}' of service '${service}' is not registered`, { code: 'not_registered' });
    return reg;
  };
  let clientPromise: Promise<ConsulClient> | undefined;
  /** The local agent's node name, once asked (undefined: the token may not read the agent). */
  let localNodePromise: Promise<string | undefined> | undefined;
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
        // Every call that does not set its own (the blocking queries do).
        timeout: callTimeoutMs,
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

  /** One step against the agent; a pooled keep-alive socket to an agent that restarted fails once, so an idempotent step is tried once more. */
  async function withConsul<T>(what: string, op: (c: ConsulClient) => Promise<T>): Promise<T> {
    const consul = await client();
    try {
      return await op(consul);
    } catch (err) {
      if (!isStaleSocket(err)) throw toStackError(err, what, target.display);
    }
    try {
      return await op(consul);
    } catch (err) {
      throw toStackError(err, what, target.display);
    }
  }

  function metaOf(reg: OwnRegistration): Record<string, string> {
    const { input } = reg;
    const meta: Record<string, string> = { ...(input.meta ?? {}) };
    meta[META_ID] = input.id;
    meta[META_REGISTERED_AT] = reg.registeredAt;
    if (input.url !== undefined) meta[META_URL] = input.url;
    return meta;
  }

  /** Everything Consul would refuse about this registration's meta, said at once, before anything is sent. */
  function assertMeta(input: InstanceInput): void {
    const user = input.meta ?? {};
    const problems = Object.keys(user)
      .filter((key) => OUR_META.has(key))
      .map((key) => `meta key '${key}' is reserved by atproto-stacks`);
    const ours = [META_ID, META_REGISTERED_AT, ...(input.url !== undefined ? [META_URL] : [])];
    problems.push(...metaProblems(user, ours));
    if (problems.length > 0) throw invalid(`consul: cannot register ${input.service}/${input.id}: ${problems.join('; ')}`);
  }

  async function put(consul: ConsulClient, reg: OwnRegistration, status: 'passing' | 'critical' = 'passing'): Promise<void> {
    const { input, ttlMs } = reg;
    await consul.agent.service.register({
      id: serviceId(input.service, input.id),
      name: input.service,
      address: input.address,
      ...(input.port !== undefined ? { port: input.port } : {}),
      tags: [...(input.tags ?? [])],
      meta: metaOf(reg),
      check: {
        name: `atproto-stacks TTL for ${input.service}/${input.id}`,
        ttl: `${Math.max(1, Math.round(ttlMs))}ms`,
        status,
        deregistercriticalserviceafter: `${deregisterAfterMs(ttlMs)}ms`,
      },
    });
  }

  const pass = (consul: ConsulClient, sid: string) => consul.agent.check.pass({ id: checkId(sid) });

  function localNode(consul: ConsulClient): Promise<string | undefined> {
    localNodePromise ??= consul.agent.self().then(
      (self) => self?.Config?.NodeName || undefined,
      (err: unknown) => {
        // Without agent:read the node stays unknown (and that is remembered); other failures are asked again next time.
        if (statusOf(err) !== 403) localNodePromise = undefined;
        return undefined;
      },
    );
    return localNodePromise;
  }

  /** An exclusive claim: the ID must not be held, on this agent or (through the catalog) on any other. */
  async function assertFree(consul: ConsulClient, service: string, id: string, sid: string): Promise<void> {
    const [services, checks] = await Promise.all([consul.agent.service.list(), consul.agent.check.list()]);
    if (services[sid] !== undefined && checks[checkId(sid)]?.Status !== 'critical') throw new CollisionError(service, id, { backend: 'consul' });
    const local = await localNode(consul);
    const entries = (await consul.health.service({ service })) as HealthEntry[];
    const held = entries.some(
      (e) =>
        e.Service.ID === sid &&
        // The local agent already answered for its own node, without the catalog's delay.
        (local === undefined || e.Node?.Node !== local) &&
        !(e.Checks ?? []).some((c) => c.Status === 'critical'),
    );
    if (held) throw new CollisionError(service, id, { backend: 'consul' });
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
      assertMeta(input);
      const ttlMs = opts.ttlMs ?? config.ttlMs;
      const record = toRecord(input, ttlMs);
      const reg: OwnRegistration = { input: record, ttlMs, registeredAt: record.registeredAt };
      const what = `register ${input.service}/${input.id}`;
      await oneAtATime(sid, async () => {
        // Three steps, each retried on its own: a retried claim must not find its own registration.
        if (opts.exclusive) await withConsul(what, (consul) => assertFree(consul, input.service, input.id, sid));
        await withConsul(what, (consul) => put(consul, reg));
        own.set(sid, reg);
        // A check that was critical before this registration is still critical: pass it.
        await withConsul(what, (consul) => pass(consul, sid));
      });
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
          await pass(consul, sid);
        } catch (err) {
          if (!isUnknownCheck(err)) throw err;
          // This agent does not hold it (it restarted empty, reaped it, or is not the agent that
          // registered it): put back what we registered, and pass it.
          await put(consul, ownRegistration(service, id));
          await pass(consul, sid);
        }
      };
      await oneAtATime(sid, () => withConsul(`heartbeat ${service}/${id}`, beat));
    },

    async markCritical(service: string, id: string, note: string): Promise<void> {
      const sid = serviceId(service, id);
      // `PUT /v1/agent/check/fail/<check>?note=`: the service stays in the agent's list, its check
      // critical with the note as output, so `?passing` lookups and watches leave it out. Critical
      // for longer than DeregisterCriticalServiceAfter (at least a minute), the agent reaps it; the
      // heartbeat that restores it then registers it again.
      const fail = async (consul: ConsulClient) => {
        try {
          await consul.agent.check.fail({ id: checkId(sid), note });
        } catch (err) {
          if (!isUnknownCheck(err)) throw err;
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
      });
      await withConsul('check (what the ACL token can see)', (consul) => assertVisible(consul));
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
      localNodePromise = undefined;
      own.clear();
      if (pending) (await pending).destroy();
    },
  };

  /** A call context that returns the response with the body, and is cancelled by `signal` or close(). */
  function responseContext(signal?: AbortSignal): { ctx: CallContext; done: () => void } {
    const ctx: CallContext = new EventEmitter();
    ctx.includeResponse = true;
    // An abort can come before the request has started (and listens for `cancel`): mark it too.
    const cancel = () => {
      ctx.canceled = true;
      ctx.emit('cancel');
    };
    signal?.addEventListener('abort', cancel);
    cancelOnClose.add(ctx);
    return {
      ctx,
      done: () => {
        signal?.removeEventListener('abort', cancel);
        cancelOnClose.delete(ctx);
      },
    };
  }

  /**
   * Fail unless the token sees what lookups need. Consul answers a read the token may not make
   * with an empty list rather than a refusal, so "nothing registered" and "not allowed to see it"
   * look the same unless something known to exist is looked for.
   */
  async function assertVisible(consul: ConsulClient): Promise<void> {
    const nodes = responseContext();
    let filtered: boolean;
    try {
      const [res, list] = (await consul.catalog.node.list({ ctx: nodes.ctx })) as [IncomingMessage, unknown];
      filtered = aclFiltered(res);
      // Every cluster has a node (its servers); health reads show an instance only with node:read on its node.
      if (!Array.isArray(list) || list.length === 0) {
        throw hidden(
          `the ACL token sees no node of the cluster, so every lookup would come back empty (Consul filters what a token may not read instead of refusing it). It needs node:read, e.g. node_prefix "" { policy = "read" }`,
          filtered,
        );
      }
    } finally {
      nodes.done();
    }
    await probe(consul);
  }

  /** Register a probe through the agent and wait for it in the health endpoint lookups read. */
  async function probe(consul: ConsulClient): Promise<void> {
    const id = `${PROBE_SERVICE}-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await consul.agent.service.register({
        id,
        name: PROBE_SERVICE,
        check: { ttl: '1m', status: 'passing', deregistercriticalserviceafter: '1m' },
      });
    } catch (err) {
      // The token may not write the probe's name: then only what assertVisible checked before can be vouched for.
      if (statusOf(err) === 403) return;
      throw err;
    }
    const waitMs = tuning.probeWaitMs ?? PROBE_WAIT_MS;
    const deadline = Date.now() + waitMs;
    const take = createTokenBucket(WATCH_BURST, 100);
    let index = 0n;
    let filtered = false;
    try {
      for (;;) {
        await take();
        const remaining = Math.max(10, deadline - Date.now());
        const call = responseContext();
        try {
          const [res, entries] = (await consul.health.service({
            service: PROBE_SERVICE,
            index: index.toString(),
            wait: `${remaining}ms`,
            timeout: remaining + callTimeoutMs,
            ctx: call.ctx,
          })) as [IncomingMessage, HealthEntry[]];
          if (entries.some((e) => e.Service.ID === id)) return;
          filtered ||= aclFiltered(res);
          index = nextBlockingIndex(index, res.headers['x-consul-index']);
        } finally {
          call.done();
        }
        if (Date.now() >= deadline) {
          throw hidden(
            `a probe service registered through the agent did not show up in lookups within ${waitMs} ms. Consul filters what an ACL token may not read instead of refusing it: the token needs service:read and node:read on what the stack looks up (e.g. service_prefix "" and node_prefix "" with policy "read"). Or the agent cannot sync its services to the servers (its own token needs node:write)`,
            filtered,
          );
        }
      }
    } finally {
      await consul.agent.service.deregister({ id }).catch(() => undefined);
    }
  }

  function hidden(message: string, filtered: boolean): UnreachableError {
    const said = filtered ? ' (Consul said results were filtered by ACLs)' : '';
    return new UnreachableError('consul', `consul at ${target.display}: ${message}${said}`, { code: 'unauthorized' });
  }

  /** Blocking queries on `/v1/health/service/<name>?passing`: the current list, then one per change. */
  async function* watchBlocking(service: string, signal?: AbortSignal): AsyncGenerator<ServiceInstance[]> {
    let index = 0n;
    let last: string | undefined;
    let failures = 0;
    const take = createTokenBucket(tuning.watchBurst ?? WATCH_BURST, tuning.watchRefillMs ?? WATCH_REFILL_MS);
    while (!signal?.aborted && !closed) {
      await take(signal);
      if (signal?.aborted || closed) break;
      const call = responseContext(signal);
      let list: ServiceInstance[];
      try {
        const consul = await client();
        const [res, body] = (await consul.health.service({
          service,
          passing: true,
          index: index.toString(),
          wait: `${BLOCKING_WAIT_S}s`,
          timeout: (BLOCKING_WAIT_S + 10) * 1000,
          ctx: call.ctx,
        })) as [IncomingMessage, HealthEntry[]];
        index = nextBlockingIndex(index, res.headers['x-consul-index']);
        list = toInstances(body);
        failures = 0;
      } catch {
        if (signal?.aborted || closed) break;
        failures += 1;
        index = 0n; // after an outage, start over with a fresh, non-blocking read
        await pause(backoffAt(failures, RECONNECT_BACKOFF), signal);
        continue;
      } finally {
        call.done();
      }
      const fingerprint = topologyFingerprint(list);
      if (fingerprint !== last) {
        last = fingerprint;
        yield list;
      }
    }
  }
}

/** `X-Consul-Results-Filtered-By-ACLs: true` (sent only to requests that carry a token). */
function aclFiltered(res: IncomingMessage): boolean {
  return String(res.headers['x-consul-results-filtered-by-acls'] ?? '') === 'true';
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

export interface ConsulTarget {
  host: string;
  port: number;
  secure: boolean;
  /** For messages: scheme, host and port, never credentials. */
  display: string;
}

/** `consulAddress` is `host:port` or a URL; `consulScheme` applies to the former. */
export function consulTarget(config: ConsulConfig): ConsulTarget {
  const raw = config.consulAddress || consulDriver.defaults.consulAddress;
  const url = new URL(raw.includes('://') ? raw : `${config.consulScheme}://${raw}`);
  const secure = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port ? Number(url.port) : secure ? 8501 : 8500;
  return { host, port, secure, display: `${url.protocol}//${url.host}` };
}
