/**
 * The discovery manager: what the engine, templates and services talk to, in front of one or
 * more backends (the Dynamo discovery design: backends are dumb, the manager is smart).
 *
 *  - lookup: a short-lived local cache; concurrent lookups of one service share one backend
 *    request; backends are asked in order and the first non-empty answer wins (errors fall
 *    through); while backends are down, the last good answer is served with a 'stale' event.
 *  - register / deregister / heartbeat: in every backend that can; collisions roll back.
 *  - keepAlive: a heartbeat loop that re-registers wherever a registration was lost.
 *  - withdraw / restore: take an unhealthy instance out of lookups and put it back. A backend that
 *    can mark it critical (Consul) keeps it registered, failing; the others deregister it. Its
 *    heartbeats pause meanwhile (a beat would pass the check, or register it again).
 *  - watch: the backends' watch streams merged into one stream of full lists.
 *
 * Nothing outlives `close()`: every timer, loop and watch is tied to one AbortController.
 */
import { pause, realClock, type Clock } from '../util/clock.js';
import { backoffAt } from '../util/retry.js';
import { errorText } from '../util/error-text.js';
import { StackError, UnreachableError, UnsupportedError } from '../errors.js';
import { CollisionError } from './errors.js';
import { assertServiceName, topologyFingerprint } from './record.js';
import { abortPromise, anySignal, watchList } from './watch.js';
import { createKeyedQueue } from './resync.js';
import type { DiscoveryBackend, DiscoveryEvent, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';

export interface DiscoveryManagerOptions {
  /** In order of preference for lookups. */
  backends: DiscoveryBackend[];
  /** How long a lookup answer is reused; default 1000 ms; 0 turns the cache off (coalescing stays). */
  cacheTtlMs?: number;
  /** Warnings worth logging: fallbacks, stale answers, reconnects, background errors. */
  onEvent?(e: DiscoveryEvent): void;
  /** How often `watch` polls a backend that can look up but not watch (dns, env); default 5000 ms. */
  pollIntervalMs?: number;
  /** First retry delay after a backend's watch fails (doubles up to 30 s); default 500 ms. */
  watchRetryMs?: number;
  /** How long a watch waits for a slow backend's first list before yielding without it; default 2000 ms. */
  firstListTimeoutMs?: number;
  /** Close the backends on `close()`; default true (the manager owns them). */
  ownsBackends?: boolean;
  /** Clock for cache expiry; swappable in tests (default: `clock.now`). */
  now?: () => number;
  /** Clock for the waits between watch retries; default the real clock. */
  clock?: Clock;
}

export interface BackendCheck {
  backend: string;
  ok: boolean;
  error?: StackError;
}

export interface DiscoveryManager {
  readonly backends: readonly DiscoveryBackend[];
  /** True when at least one backend can register. */
  readonly canRegister: boolean;
  /** Instances of a service. The list is shared and frozen: copy it before changing it. */
  lookup(service: string): Promise<ServiceInstance[]>;
  register(instance: InstanceInput, opts?: RegisterOptions): Promise<ServiceInstance>;
  deregister(service: string, id: string): Promise<void>;
  heartbeat(service: string, id: string): Promise<void>;
  /**
   * Take a registered instance out of lookups while it is unhealthy: marked critical (with
   * `reason` as its note) where the backend can, deregistered elsewhere; its heartbeats pause.
   */
  withdraw(service: string, id: string, reason: string): Promise<void>;
  /** Undo `withdraw`: heartbeat it where it was marked critical (which passes it), register it again elsewhere. */
  restore(service: string, id: string): Promise<void>;
  /** Heartbeat every `intervalMs`, re-registering where the registration was lost. Returns stop. */
  keepAlive(instance: InstanceInput, intervalMs: number, opts?: RegisterOptions): () => Promise<void>;
  watch(service: string, opts?: WatchOptions): AsyncIterable<ServiceInstance[]>;
  list(): Promise<ServiceInstance[]>;
  /** Passes when at least one backend is usable (the others are reported as events). */
  check(): Promise<void>;
  /** Every backend's health, for `stack discovery test`. */
  checkEach(): Promise<BackendCheck[]>;
  /** Variables a dependent gets from backends that inject (env); empty when none does. */
  environmentFor(instances: ServiceInstance[]): Record<string, string>;
  /** Forget cached answers (one service, or all). */
  invalidate(service?: string): void;
  close(): Promise<void>;
}

interface CacheEntry {
  /** Already resolved: a cache hit returns this very promise, allocating nothing. */
  promise: Promise<ServiceInstance[]>;
  until: number;
}

interface Registration {
  input: InstanceInput;
  opts: RegisterOptions;
}

/** Error text safe to log: credentials in URLs are masked. */
export function describeError(err: unknown): string {
  const text = errorText(err);
  return text.replace(/(\/\/)[^/@\s]*@/g, '$1***@');
}

function asStackError(backend: string, action: string, err: unknown): StackError {
  if (err instanceof StackError) return err;
  return new UnreachableError(`${backend} discovery`, `${backend} discovery: ${action} failed: ${describeError(err)}`, { cause: err });
}

function freeze(list: ServiceInstance[]): ServiceInstance[] {
  for (const r of list) {
    Object.freeze(r.tags);
    Object.freeze(r.meta);
    Object.freeze(r);
  }
  return Object.freeze(list) as ServiceInstance[];
}

/** Union by id; on a conflict the earlier backend's record wins. */
function mergeLists(lists: readonly (readonly ServiceInstance[] | undefined)[]): ServiceInstance[] {
  const byId = new Map<string, ServiceInstance>();
  for (const list of lists) for (const r of list ?? []) if (!byId.has(r.id)) byId.set(r.id, r);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export function createDiscoveryManager(options: DiscoveryManagerOptions): DiscoveryManager {
  const backends = [...options.backends];
  const cacheTtlMs = options.cacheTtlMs ?? 1000;
  const pollIntervalMs = options.pollIntervalMs ?? 5000;
  const watchRetryMs = options.watchRetryMs ?? 500;
  const firstListTimeoutMs = options.firstListTimeoutMs ?? 2000;
  const clock = options.clock ?? realClock;
  const now = options.now ?? (() => clock.now());
  const emit = (e: DiscoveryEvent): void => {
    try {
      options.onEvent?.(e);
    } catch {
      // a logging callback must never break discovery
    }
  };

  const lookupBackends = backends.filter((b) => b.capabilities.lookup);
  const writable = backends.filter((b) => b.capabilities.register);
  const names = backends.map((b) => b.name).join(', ') || 'none';

  const cache = new Map<string, CacheEntry>();
  const inflight = new Map<string, Promise<ServiceInstance[]>>();
  /** Bumped by every invalidation, so an answer fetched before a change is never cached after it. */
  const generations = new Map<string, number>();
  const lastKnownGood = new Map<string, ServiceInstance[]>();
  const registrations = new Map<string, Registration>();
  /** Running heartbeat loops by registration, so deregister can stop them first. */
  const keepAlives = new Map<string, Set<() => Promise<void>>>();
  /** Withdrawn registrations: their heartbeats are skipped until `restore`. */
  const withdrawn = new Set<string>();
  /** Heartbeats under way by registration, so withdraw can wait for a beat that would undo it. */
  const beats = new Map<string, Set<Promise<void>>>();
  /** Background work (watch pumps, heartbeats) that close() waits for. */
  const background = new Set<Promise<unknown>>();
  const closing = new AbortController();
  let closed = false;

  const keyOf = (service: string, id: string): string => `${service}\u0000${id}`;

  function track<T>(p: Promise<T>): Promise<T> {
    background.add(p);
    void p.then(
      () => background.delete(p),
      () => background.delete(p),
    );
    return p;
  }

  function assertOpen(): void {
    if (closed) throw new StackError('the discovery manager is closed', { code: 'closed' });
  }

  function invalidate(service?: string): void {
    if (service === undefined) {
      for (const s of new Set([...cache.keys(), ...inflight.keys()])) invalidate(s);
      return;
    }
    cache.delete(service);
    inflight.delete(service);
    generations.set(service, (generations.get(service) ?? 0) + 1);
  }

  /** Ask backends in order; first non-empty answer wins. */
  async function resolve(service: string): Promise<ServiceInstance[]> {
    const failures: StackError[] = [];
    let answered = false;
    for (const [index, b] of lookupBackends.entries()) {
      let list: ServiceInstance[];
      try {
        list = await b.lookup(service);
      } catch (err) {
        const e = asStackError(b.name, `lookup of '${service}'`, err);
        failures.push(e);
        const next = lookupBackends[index + 1];
        const then = next ? `trying ${next.name}` : 'no backend left to try';
        emit({ type: 'fallback', backend: b.name, service, message: `lookup of '${service}' failed, ${then}: ${describeError(e)}` });
        continue;
      }
      answered = true;
      if (list.length > 0) {
        lastKnownGood.set(service, list);
        return list;
      }
    }
    if (failures.length === 0) {
      // Every backend answered, and none knows the service: that is news, not an outage.
      lastKnownGood.delete(service);
      return [];
    }
    const stale = lastKnownGood.get(service);
    if (stale) {
      emit({
        type: 'stale',
        backend: lookupBackends.map((b) => b.name).join(', '),
        service,
        message: `serving the last known instances of '${service}' while discovery is unavailable`,
      });
      return stale;
    }
    if (answered) return [];
    if (failures.length === 1) throw failures[0]!;
    throw new UnreachableError('discovery', `no discovery backend could look up '${service}': ${failures.map(describeError).join('; ')}`, {
      cause: failures[0],
    });
  }

  function fetchAndCache(service: string): Promise<ServiceInstance[]> {
    // Checked on a miss only: a bad name is the caller's mistake, not a backend outage to fall back from.
    try {
      assertServiceName(service);
    } catch (err) {
      return Promise.reject(err);
    }
    const generation = generations.get(service) ?? 0;
    const p = resolve(service).then((list) => {
      const frozen = freeze(list);
      if (!closed && (generations.get(service) ?? 0) === generation && cacheTtlMs > 0) {
        cache.set(service, { promise: Promise.resolve(frozen), until: now() + cacheTtlMs });
      }
      return frozen;
    });
    inflight.set(service, p);
    const forget = (): void => {
      if (inflight.get(service) === p) inflight.delete(service);
    };
    p.then(forget, forget);
    return p;
  }

  function lookup(service: string): Promise<ServiceInstance[]> {
    if (closed) return Promise.reject(new StackError('the discovery manager is closed', { code: 'closed' }));
    // The hot path: one Map lookup and one clock read.
    const hit = cache.get(service);
    if (hit !== undefined && hit.until > now()) return hit.promise;
    return inflight.get(service) ?? fetchAndCache(service);
  }

  async function registerIn(targets: DiscoveryBackend[], input: InstanceInput, opts: RegisterOptions): Promise<ServiceInstance> {
    const results = await Promise.allSettled(targets.map((b) => b.register(input, opts)));
    const succeeded = targets.filter((_, i) => results[i]!.status === 'fulfilled');
    const collision = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && r.reason instanceof CollisionError);
    if (collision) {
      // Someone else holds the id somewhere: take back what we claimed elsewhere, so both do not half-own it.
      await Promise.allSettled(succeeded.map((b) => b.deregister(input.service, input.id)));
      throw collision.reason;
    }
    const failures = targets.flatMap((b, i) => {
      const r = results[i]!;
      return r.status === 'rejected' ? [{ backend: b, error: asStackError(b.name, `register of '${input.service}/${input.id}'`, r.reason) }] : [];
    });
    const first = results.find((r): r is PromiseFulfilledResult<ServiceInstance> => r.status === 'fulfilled');
    if (!first) {
      if (failures.length === 1) throw failures[0]!.error;
      throw new UnreachableError(
        'discovery',
        `no discovery backend could register '${input.service}/${input.id}': ${failures.map((f) => describeError(f.error)).join('; ')}`,
        {
          cause: failures[0]?.error,
        },
      );
    }
    for (const f of failures) {
      emit({ type: 'error', backend: f.backend.name, service: input.service, message: `registered elsewhere, but not here: ${describeError(f.error)}` });
    }
    return first.value;
  }

  async function register(input: InstanceInput, opts: RegisterOptions = {}): Promise<ServiceInstance> {
    assertOpen();
    if (writable.length === 0) throw new UnsupportedError(`discovery (${names})`, 'register');
    try {
      const record = await registerIn(writable, input, opts);
      registrations.set(keyOf(input.service, input.id), { input, opts });
      return record;
    } finally {
      invalidate(input.service);
    }
  }

  async function deregister(service: string, id: string): Promise<void> {
    assertOpen();
    const targets = backends.filter((b) => b.capabilities.deregister);
    if (targets.length === 0) throw new UnsupportedError(`discovery (${names})`, 'deregister');
    // Forget it, then stop heartbeats: a beat in flight would otherwise re-register what we remove
    // (one that fails re-registers only what is still known: `beatIn`).
    const key = keyOf(service, id);
    registrations.delete(key);
    await Promise.allSettled([...(keepAlives.get(key) ?? [])].map((stop) => stop()));
    registrations.delete(key);
    withdrawn.delete(key);
    const results = await Promise.allSettled(targets.map((b) => b.deregister(service, id)));
    invalidate(service);
    const failures = targets.flatMap((b, i) => {
      const r = results[i]!;
      return r.status === 'rejected' ? [asStackError(b.name, `deregister of '${service}/${id}'`, r.reason)] : [];
    });
    if (failures.length === targets.length) throw failures[0]!;
    for (const f of failures) emit({ type: 'error', backend: 'discovery', service, message: `deregister failed in one backend: ${describeError(f)}` });
  }

  async function heartbeat(service: string, id: string): Promise<void> {
    assertOpen();
    const targets = backends.filter((b) => b.capabilities.heartbeat);
    if (targets.length === 0) throw new UnsupportedError(`discovery (${names})`, 'heartbeat');
    const key = keyOf(service, id);
    // Withdrawn: a beat would pass its critical check, or register it again where it was removed.
    if (withdrawn.has(key)) return;
    const beat = beatIn(targets, service, id);
    const set = beats.get(key) ?? new Set();
    set.add(beat);
    beats.set(key, set);
    try {
      await beat;
    } finally {
      set.delete(beat);
      if (set.size === 0 && beats.get(key) === set) beats.delete(key);
    }
  }

  async function beatIn(targets: DiscoveryBackend[], service: string, id: string): Promise<void> {
    const key = keyOf(service, id);
    const known = registrations.get(key);
    const outcomes = await Promise.all(
      targets.map(async (b): Promise<StackError | undefined> => {
        try {
          await b.heartbeat(service, id);
          return undefined;
        } catch (beatErr) {
          // Lost (expired while the backend was down, or the backend restarted empty): register again,
          // unless it was deregistered (or registered anew) while this beat was under way.
          if (!known || registrations.get(key) !== known || !b.capabilities.register || withdrawn.has(key))
            return asStackError(b.name, `heartbeat of '${service}/${id}'`, beatErr);
          try {
            await b.register(known.input, known.opts);
            invalidate(service);
            emit({ type: 'reconnect', backend: b.name, service, message: `registration of '${service}/${id}' was lost and has been restored` });
            return undefined;
          } catch (regErr) {
            return asStackError(b.name, `re-registration of '${service}/${id}'`, regErr);
          }
        }
      }),
    );
    const failures = outcomes.filter((e): e is StackError => e !== undefined);
    if (failures.length === targets.length) throw failures[0]!;
    for (const f of failures) emit({ type: 'error', backend: 'discovery', service, message: describeError(f) });
  }

  /** Mark critical where the backend can; deregister elsewhere. */
  const canMarkCritical = (b: DiscoveryBackend): boolean => b.capabilities.heartbeat && typeof b.markCritical === 'function';

  /** One outcome per backend: fine when at least one did its part; the others are reported as events. */
  function settle(targets: DiscoveryBackend[], results: PromiseSettledResult<unknown>[], service: string, action: string): void {
    const failures = targets.flatMap((b, i) => {
      const r = results[i]!;
      return r.status === 'rejected' ? [asStackError(b.name, action, r.reason)] : [];
    });
    if (failures.length > 0 && failures.length === targets.length) throw failures[0]!;
    for (const f of failures) emit({ type: 'error', backend: 'discovery', service, message: `${action} failed in one backend: ${describeError(f)}` });
  }

  /** Withdrawals and restorations of one registration run in order: a restore never overtakes the withdrawal before it. */
  const inTurn = createKeyedQueue();

  async function withdraw(service: string, id: string, reason: string): Promise<void> {
    assertOpen();
    const key = keyOf(service, id);
    const targets = backends.filter((b) => canMarkCritical(b) || b.capabilities.deregister);
    if (targets.length === 0) throw new UnsupportedError(`discovery (${names})`, 'withdraw');
    await inTurn(key, async () => {
      withdrawn.add(key);
      // A beat already under way would pass the check (or register it again) after we fail it.
      await Promise.allSettled([...(beats.get(key) ?? [])]);
      const results = await Promise.allSettled(targets.map((b) => (canMarkCritical(b) ? b.markCritical!(service, id, reason) : b.deregister(service, id))));
      invalidate(service);
      settle(targets, results, service, `withdrawal of '${service}/${id}'`);
    });
  }

  async function restore(service: string, id: string): Promise<void> {
    assertOpen();
    const key = keyOf(service, id);
    await inTurn(key, async () => {
      if (!withdrawn.delete(key)) return;
      const known = registrations.get(key);
      const targets = backends.filter((b) => canMarkCritical(b) || (b.capabilities.deregister && b.capabilities.register && known));
      const results = await Promise.allSettled(targets.map((b) => (canMarkCritical(b) ? b.heartbeat(service, id) : b.register(known!.input, known!.opts))));
      invalidate(service);
      settle(targets, results, service, `restoration of '${service}/${id}'`);
    });
  }

  function keepAlive(instance: InstanceInput, intervalMs: number, opts: RegisterOptions = {}): () => Promise<void> {
    assertOpen();
    const key = keyOf(instance.service, instance.id);
    if (!registrations.has(key)) registrations.set(key, { input: instance, opts });
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let beating: Promise<void> | undefined;

    const schedule = (): void => {
      if (stopped || closed) return;
      timer = setTimeout(() => {
        beating = track(
          heartbeat(instance.service, instance.id).catch((err: unknown) => {
            if (!closed) emit({ type: 'error', backend: names, service: instance.service, message: `heartbeat failed: ${describeError(err)}` });
          }),
        ).finally(() => {
          beating = undefined;
          schedule();
        });
      }, intervalMs);
      // A heartbeat alone must not keep a process alive: its service's own work does that.
      timer.unref();
    };

    const stop = async (): Promise<void> => {
      stopped = true;
      clearTimeout(timer);
      const set = keepAlives.get(key);
      set?.delete(stop);
      if (set?.size === 0) keepAlives.delete(key);
      await beating;
    };
    const set = keepAlives.get(key) ?? new Set();
    set.add(stop);
    keepAlives.set(key, set);
    schedule();
    return stop;
  }

  /** A watch for a backend that can look up but not watch: poll it. */
  function pollingWatch(b: DiscoveryBackend, service: string, signal: AbortSignal): AsyncIterable<ServiceInstance[]> {
    return watchList(
      {
        load: () => b.lookup(service),
        subscribe(changed) {
          const timer = setInterval(changed, pollIntervalMs);
          timer.unref();
          return () => clearInterval(timer);
        },
      },
      signal,
    );
  }

  async function* mergedWatch(service: string, outer: AbortSignal | undefined): AsyncGenerator<ServiceInstance[], void, undefined> {
    assertOpen();
    const sources = backends.filter((b) => b.capabilities.watch || b.capabilities.lookup);
    if (sources.length === 0) throw new UnsupportedError(`discovery (${names})`, 'watch');
    const stop = new AbortController();
    const signal = anySignal([outer, closing.signal, stop.signal]);

    const latest: (ServiceInstance[] | undefined)[] = sources.map(() => undefined);
    const heardFrom = sources.map(() => false);
    let dirty = false;
    let firstDeadlinePassed = false;
    let wake: (() => void) | undefined;
    const poke = (): void => {
      dirty = true;
      wake?.();
    };

    // Each source feeds `latest[i]`; a failed watch keeps its last list and is retried with backoff.
    const pump = async (b: DiscoveryBackend, i: number): Promise<void> => {
      let retries = 0;
      let failing = false;
      while (!signal.aborted) {
        try {
          const stream = b.capabilities.watch ? b.watch(service, { signal }) : pollingWatch(b, service, signal);
          for await (const list of stream) {
            if (signal.aborted) break;
            if (failing) {
              failing = false;
              emit({ type: 'reconnect', backend: b.name, service, message: `watch of '${service}' resumed` });
            }
            latest[i] = list;
            heardFrom[i] = true;
            retries = 0;
            poke();
          }
        } catch (err) {
          if (signal.aborted) break;
          failing = true;
          emit({ type: 'error', backend: b.name, service, message: `watch of '${service}' failed, retrying: ${describeError(err)}` });
          heardFrom[i] = true; // do not hold the first list back for a backend that is down
          poke();
        }
        await pause(backoffAt(retries++, { initialDelayMs: watchRetryMs, factor: 2, maxDelayMs: Math.max(watchRetryMs, 30_000) }), signal, clock);
      }
    };
    const pumps = sources.map((b, i) => track(pump(b, i)));
    const firstDeadline = setTimeout(() => {
      firstDeadlinePassed = true;
      poke();
    }, firstListTimeoutMs);
    firstDeadline.unref();
    const aborted = abortPromise(signal);

    try {
      let last: string | undefined;
      while (!signal.aborted) {
        const ready = heardFrom.every(Boolean) || (firstDeadlinePassed && heardFrom.some(Boolean));
        if (!dirty || !ready) {
          await Promise.race([new Promise<void>((r) => (wake = r)), aborted.promise]);
          wake = undefined;
          continue;
        }
        dirty = false;
        const merged = mergeLists(latest);
        const fingerprint = topologyFingerprint(merged);
        if (fingerprint !== last) {
          last = fingerprint;
          invalidate(service); // the cache must not answer with what this watch just saw change
          yield merged;
        }
      }
    } finally {
      clearTimeout(firstDeadline);
      aborted.dispose();
      stop.abort();
      await Promise.allSettled(pumps);
    }
  }

  async function list(): Promise<ServiceInstance[]> {
    assertOpen();
    const sources = backends.filter((b) => b.capabilities.list);
    if (sources.length === 0) throw new UnsupportedError(`discovery (${names})`, 'list');
    const results = await Promise.allSettled(sources.map((b) => b.list()));
    const failures: StackError[] = [];
    const byKey = new Map<string, ServiceInstance>();
    results.forEach((r, i) => {
      const b = sources[i]!;
      if (r.status === 'rejected') {
        const e = asStackError(b.name, 'list', r.reason);
        failures.push(e);
        emit({ type: 'fallback', backend: b.name, message: `list failed: ${describeError(e)}` });
        return;
      }
      for (const rec of r.value) if (!byKey.has(keyOf(rec.service, rec.id))) byKey.set(keyOf(rec.service, rec.id), rec);
    });
    if (failures.length === sources.length) throw failures[0]!;
    return [...byKey.values()].sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
  }

  async function checkEach(): Promise<BackendCheck[]> {
    assertOpen();
    const results = await Promise.allSettled(backends.map((b) => b.check()));
    return results.map((r, i) => {
      const b = backends[i]!;
      return r.status === 'fulfilled' ? { backend: b.name, ok: true } : { backend: b.name, ok: false, error: asStackError(b.name, 'check', r.reason) };
    });
  }

  async function check(): Promise<void> {
    const checks = await checkEach();
    const bad = checks.filter((c) => !c.ok);
    if (checks.length > 0 && bad.length === checks.length) throw bad[0]!.error!;
    for (const c of bad) emit({ type: 'fallback', backend: c.backend, message: `unavailable, using the other backends: ${describeError(c.error)}` });
  }

  function environmentFor(instances: ServiceInstance[]): Record<string, string> {
    const vars: Record<string, string> = {};
    for (const b of backends) if (b.capabilities.inject && b.environmentFor) Object.assign(vars, b.environmentFor(instances));
    return vars;
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    closing.abort();
    await Promise.allSettled([...keepAlives.values()].flatMap((set) => [...set].map((stop) => stop())));
    await Promise.allSettled([...background]);
    cache.clear();
    inflight.clear();
    if (options.ownsBackends ?? true) await Promise.allSettled(backends.map((b) => b.close()));
  }

  return {
    backends,
    canRegister: writable.length > 0,
    lookup,
    register,
    deregister,
    heartbeat,
    withdraw,
    restore,
    keepAlive,
    watch: (service, opts = {}) => ({ [Symbol.asyncIterator]: () => mergedWatch(service, opts.signal) }),
    list,
    check,
    checkEach,
    environmentFor,
    invalidate,
    close,
  };
}
