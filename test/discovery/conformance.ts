/**
 * The behaviour every discovery backend shares (the unstorage `test/drivers/utils.ts` pattern):
 * a backend's test file runs this suite in one line, against a real server where there is one.
 *
 *   describeBackendConformance('file', { make: async ({ ttlMs }) => createFileBackend({ ... }) });
 *
 * Writable backends (capabilities.register) get the full suite. Read-only backends (dns, env)
 * get the lookup subset, fed by the target's `seed` hook, which puts records in place by other
 * means (environment variables, a DNS server's zone).
 *
 * Each test uses its own service names, so tests never disturb each other even when they share
 * one server. No test asserts a wall-clock time: waits poll until a condition holds or a
 * generous deadline passes.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { StackError, UnsupportedError } from '../../src/errors.js';
import type { DiscoveryBackend, DiscoveryCapabilities, InstanceInput, ServiceInstance } from '../../src/discovery/types.js';

/** A record a read-only backend should find after `seed`. */
export interface SeedRecord {
  service: string;
  /** An IPv4 literal on loopback (127.x.y.z), so DNS and env agree on what "address" means. */
  address: string;
  port: number;
  url?: string;
}

export interface ConformanceTarget {
  /** Fresh backend for one test; ttlMs is the registration TTL the backend should use by default. */
  make(opts: { ttlMs: number }): Promise<DiscoveryBackend>;
  /** Optional: stop and clean up the server behind it after the suite. */
  cleanup?(): Promise<void>;
  /**
   * Read-only backends: put records in place by other means, so that a backend made by `make`
   * (before or after this call) finds them on its next lookup. Records accumulate across calls.
   */
  seed?(records: SeedRecord[]): Promise<void>;
  /** Read-only backends: can `seed` hold several instances of one service (DNS: yes; env: no)? */
  seedsSeveralInstances?: boolean;
  /** TTL for the expiry tests; default 1500 ms (etcd and NATS count TTLs in whole seconds: use ≥ 1000). */
  shortTtlMs?: number;
  /** Skip tests of capabilities the backend lacks (read from backend.capabilities). */
}

const LONG_TTL_MS = 60_000;
const WAIT_MS = 20_000;

let serial = 0;
/** A DNS-label service name unique to this run and this test. */
function uniqueService(prefix: string): string {
  serial += 1;
  return `${prefix}-${process.pid.toString(36)}-${serial}-${Math.random().toString(36).slice(2, 7)}`;
}

function input(service: string, id: string, port: number, extra: Partial<InstanceInput> = {}): InstanceInput {
  return {
    id,
    service,
    address: '127.0.0.1',
    port,
    url: `http://127.0.0.1:${port}`,
    tags: ['atproto', 'test'],
    meta: { version: '1.2.3', zone: 'a' },
    ...extra,
  };
}

function ids(list: ServiceInstance[]): string[] {
  return list.map((i) => i.id).sort();
}

async function pollUntil<T>(fn: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Pull lists from a watch until one satisfies `ok`; every list seen must be a full list of records. */
async function nextMatching(
  it: AsyncIterator<ServiceInstance[]>,
  ok: (list: ServiceInstance[]) => boolean,
  what: string,
  timeoutMs = WAIT_MS,
): Promise<ServiceInstance[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`watch: timed out waiting for ${what}`)), timeoutMs);
  });
  try {
    for (;;) {
      const r = await Promise.race([it.next(), timeout]);
      if (r.done) throw new Error(`watch ended while waiting for ${what}`);
      expect(Array.isArray(r.value)).toBe(true);
      if (ok(r.value)) return r.value;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves `true` when the iterator finishes within the deadline. */
async function endsWithin(it: AsyncIterator<ServiceInstance[]>, timeoutMs = WAIT_MS): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    for (;;) {
      const r = await Promise.race([it.next().catch((err: unknown) => ({ done: true, error: err })), timeout]);
      if (r === 'timeout') return false;
      if (r.done) return true;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Call a capability and return what it threw (watch: its first `next()`), or undefined. */
async function thrownBy(backend: DiscoveryBackend, capability: keyof DiscoveryCapabilities, service: string): Promise<unknown> {
  try {
    switch (capability) {
      case 'register':
        await backend.register(input(service, 'x-1', 1));
        break;
      case 'deregister':
        await backend.deregister(service, 'x-1');
        break;
      case 'heartbeat':
        await backend.heartbeat(service, 'x-1');
        break;
      case 'lookup':
        await backend.lookup(service);
        break;
      case 'list':
        await backend.list();
        break;
      case 'watch': {
        const ac = new AbortController();
        try {
          await backend.watch(service, { signal: ac.signal })[Symbol.asyncIterator]().next();
        } finally {
          ac.abort();
        }
        break;
      }
      case 'inject':
        if (!backend.environmentFor) throw new UnsupportedError(backend.name, 'inject');
        backend.environmentFor([]);
        break;
    }
  } catch (err) {
    return err;
  }
  return undefined;
}

export function describeBackendConformance(name: string, target: ConformanceTarget): void {
  describe(`discovery backend conformance: ${name}`, () => {
    const opened: DiscoveryBackend[] = [];
    const make = async (ttlMs = LONG_TTL_MS): Promise<DiscoveryBackend> => {
      const b = await target.make({ ttlMs });
      opened.push(b);
      return b;
    };

    afterEach(async () => {
      const all = opened.splice(0);
      await Promise.allSettled(all.map((b) => b.close()));
    });
    afterAll(async () => {
      await target.cleanup?.();
    });

    it('check() succeeds against a reachable backend', async () => {
      const b = await make();
      await expect(b.check()).resolves.toBeUndefined();
    });

    it('declares its capabilities; each one it lacks throws UnsupportedError', async () => {
      const b = await make();
      expect(typeof b.name).toBe('string');
      const service = uniqueService('cap');
      for (const [capability, supported] of Object.entries(b.capabilities) as [keyof DiscoveryCapabilities, boolean][]) {
        expect(typeof supported).toBe('boolean');
        if (supported) continue;
        const err = await thrownBy(b, capability, service);
        expect(err, `${capability} should throw UnsupportedError`).toBeInstanceOf(UnsupportedError);
      }
    });

    it('lookup of an unknown service is an empty list', async ({ skip }) => {
      const b = await make();
      if (!b.capabilities.lookup) return skip();
      await expect(b.lookup(uniqueService('none'))).resolves.toEqual([]);
    });

    describe('read-only lookups of seeded records', () => {
      it.runIf(Boolean(target.seed))('finds a seeded instance with its address and port', async () => {
        const b = await make();
        const service = uniqueService('seed');
        await target.seed!([{ service, address: '127.0.0.7', port: 4100, url: 'http://127.0.0.7:4100' }]);
        const found = await b.lookup(service);
        expect(found).toHaveLength(1);
        const [only] = found;
        expect(only).toMatchObject({ service, address: '127.0.0.7', port: 4100 });
        expect(typeof only!.id).toBe('string');
        expect(only!.id.length).toBeGreaterThan(0);
        expect(Array.isArray(only!.tags)).toBe(true);
        expect(typeof only!.meta).toBe('object');
        expect(Number.isNaN(Date.parse(only!.registeredAt))).toBe(false);
        if (only!.url !== undefined) expect(only!.url).toBe('http://127.0.0.7:4100');
      });

      it.runIf(Boolean(target.seed && target.seedsSeveralInstances))('finds several seeded instances of one service', async () => {
        const b = await make();
        const service = uniqueService('seeds');
        await target.seed!([
          { service, address: '127.0.0.8', port: 4101 },
          { service, address: '127.0.0.9', port: 4102 },
        ]);
        const found = await b.lookup(service);
        expect(found.map((i) => `${i.address}:${i.port}`).sort()).toEqual(['127.0.0.8:4101', '127.0.0.9:4102']);
        expect(new Set(found.map((i) => i.id)).size).toBe(2);
      });
    });

    describe('registration', () => {
      it('register then lookup returns the record with every field', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.register) return skip();
        const service = uniqueService('reg');
        const before = Date.now();
        const returned = await b.register(input(service, 'pds-1', 3000));
        expect(returned).toMatchObject({
          id: 'pds-1',
          service,
          address: '127.0.0.1',
          port: 3000,
          url: 'http://127.0.0.1:3000',
          tags: ['atproto', 'test'],
          meta: { version: '1.2.3', zone: 'a' },
        });
        const registeredAt = Date.parse(returned.registeredAt);
        expect(Number.isNaN(registeredAt)).toBe(false);
        // Clocks of a remote server may differ slightly: only a sanity bound, not a timing assertion.
        expect(registeredAt).toBeGreaterThan(before - 60_000);
        if (returned.expiresAt !== undefined) {
          expect(Date.parse(returned.expiresAt)).toBeGreaterThan(registeredAt);
        }

        const found = await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 1,
          'the registered instance',
        );
        const [record] = found;
        expect(record).toMatchObject({
          id: 'pds-1',
          service,
          address: '127.0.0.1',
          port: 3000,
          url: 'http://127.0.0.1:3000',
          meta: { version: '1.2.3', zone: 'a' },
        });
        expect([...record!.tags].sort()).toEqual(['atproto', 'test']);
        expect(Number.isNaN(Date.parse(record!.registeredAt))).toBe(false);
        if (record!.expiresAt !== undefined) expect(Number.isNaN(Date.parse(record!.expiresAt))).toBe(false);
      });

      it('a minimal registration gets empty tags and meta', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.register) return skip();
        const service = uniqueService('min');
        await b.register({ id: 'm-1', service, address: '127.0.0.1' });
        const found = await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 1,
          'the minimal instance',
        );
        expect(found[0]).toMatchObject({ id: 'm-1', service, address: '127.0.0.1', tags: [], meta: {} });
      });

      it('several instances of one service are all returned', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.register) return skip();
        const service = uniqueService('many');
        await b.register(input(service, 'a-1', 3001));
        await b.register(input(service, 'a-2', 3002));
        await b.register(input(service, 'a-3', 3003));
        const found = await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 3,
          'three instances',
        );
        expect(ids(found)).toEqual(['a-1', 'a-2', 'a-3']);
        expect(found.map((i) => i.port).sort()).toEqual([3001, 3002, 3003]);
        // Other services are not mixed in.
        await expect(b.lookup(uniqueService('other'))).resolves.toEqual([]);
      });

      it('registering an id again without exclusive replaces the record', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.register) return skip();
        const service = uniqueService('upd');
        await b.register(input(service, 'u-1', 3010));
        await b.register(input(service, 'u-1', 3011, { meta: { version: '2' } }));
        const found = await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 1 && l[0]!.port === 3011,
          'the replaced record',
        );
        expect(found[0]!.meta).toEqual({ version: '2' });
      });

      it('deregister removes the instance and leaves the others', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.register || !b.capabilities.deregister) return skip();
        const service = uniqueService('dereg');
        await b.register(input(service, 'd-1', 3020));
        await b.register(input(service, 'd-2', 3021));
        await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 2,
          'two instances',
        );
        await b.deregister(service, 'd-1');
        const left = await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 1,
          'one instance left',
        );
        expect(ids(left)).toEqual(['d-2']);
        await b.deregister(service, 'd-2');
        await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 0,
          'no instance left',
        );
      });

      it('deregister of an unknown instance is not an error', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.deregister) return skip();
        await expect(b.deregister(uniqueService('gone'), 'never-registered')).resolves.toBeUndefined();
      });

      it('exclusive registration of an id already held fails with a collision error', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.register) return skip();
        const service = uniqueService('excl');
        await b.register(input(service, 'e-1', 3030), { exclusive: true });
        const err = await b.register(input(service, 'e-1', 3031), { exclusive: true }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(StackError);
        expect((err as StackError).code).toBe('collision');
        expect((err as Error).message).toContain('e-1');
        // The holder's record is untouched (polled: a catalog may show a write a little later).
        const found = await pollUntil(
          () => b.lookup(service),
          (l) => l.length > 0,
          'the holder',
        );
        expect(found.map((i) => i.port)).toEqual([3030]);
        // A different id is still free.
        await expect(b.register(input(service, 'e-2', 3032), { exclusive: true })).resolves.toMatchObject({ id: 'e-2' });
      });

      it('exclusive registration races: exactly one of several concurrent claims wins', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.register) return skip();
        const service = uniqueService('race');
        const claims = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => b.register(input(service, 'r-1', 3040 + n), { exclusive: true })));
        const won = claims.filter((c) => c.status === 'fulfilled');
        expect(won).toHaveLength(1);
        for (const c of claims) {
          if (c.status === 'rejected') expect((c.reason as StackError).code).toBe('collision');
        }
      });

      it('list() contains the registered instances', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.register || !b.capabilities.list) return skip();
        const s1 = uniqueService('list');
        const s2 = uniqueService('list');
        await b.register(input(s1, 'l-1', 3050));
        await b.register(input(s2, 'l-2', 3051));
        const all = await pollUntil(
          () => b.list(),
          (l) => l.some((i) => i.service === s1 && i.id === 'l-1') && l.some((i) => i.service === s2 && i.id === 'l-2'),
          'both instances in list()',
        );
        expect(all.find((i) => i.id === 'l-1' && i.service === s1)).toMatchObject({ port: 3050, address: '127.0.0.1' });
      });
    });

    describe('TTL', () => {
      const shortTtlMs = target.shortTtlMs ?? 1500;

      it('a registration without heartbeats expires after its TTL', async ({ skip }) => {
        const b = await make(shortTtlMs);
        if (!b.capabilities.register) return skip();
        const service = uniqueService('ttl');
        await b.register(input(service, 't-1', 3060));
        await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 1,
          'the instance to appear',
        );
        await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 0,
          'the instance to expire',
          shortTtlMs * 10 + WAIT_MS,
        );
      });

      it('heartbeats keep a registration alive past its TTL', async ({ skip }) => {
        const b = await make(shortTtlMs);
        if (!b.capabilities.register || !b.capabilities.heartbeat) return skip();
        const service = uniqueService('hb');
        const registered = await b.register(input(service, 'h-1', 3070));
        await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 1,
          'the instance to appear',
        );
        const aliveUntil = Date.parse(registered.registeredAt) + shortTtlMs * 3;
        // Heartbeat at a fraction of the TTL for three TTLs; the record must be there throughout.
        while (Date.now() < aliveUntil) {
          await b.heartbeat(service, 'h-1');
          await new Promise((r) => setTimeout(r, Math.max(100, shortTtlMs / 5)));
          const found = await b.lookup(service);
          expect(ids(found)).toEqual(['h-1']);
        }
        const found = await b.lookup(service);
        expect(found[0]).toMatchObject({ id: 'h-1', port: 3070, address: '127.0.0.1' });
        // And once the heartbeats stop, it expires.
        await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 0,
          'expiry after heartbeats stop',
          shortTtlMs * 10 + WAIT_MS,
        );
      });
    });

    describe('watch', () => {
      it('yields the current list first, then a full list after each change, and stops on abort', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.register || !b.capabilities.watch) return skip();
        const service = uniqueService('watch');
        await b.register(input(service, 'w-1', 3080));
        await pollUntil(
          () => b.lookup(service),
          (l) => l.length === 1,
          'the first instance',
        );

        const ac = new AbortController();
        const it = b.watch(service, { signal: ac.signal })[Symbol.asyncIterator]();
        try {
          const first = await it.next();
          expect(first.done).toBe(false);
          expect(ids(first.value as ServiceInstance[])).toEqual(['w-1']);

          await b.register(input(service, 'w-2', 3081));
          const afterAdd = await nextMatching(it, (l) => ids(l).join() === 'w-1,w-2', 'w-2 to appear');
          expect(afterAdd.find((i) => i.id === 'w-2')).toMatchObject({ port: 3081, service });

          if (b.capabilities.deregister) {
            await b.deregister(service, 'w-1');
            await nextMatching(it, (l) => ids(l).join() === 'w-2', 'w-1 to disappear');
          }
        } finally {
          ac.abort();
        }
        expect(await endsWithin(it)).toBe(true);
      });

      it('a watch of an empty service yields an empty list first', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.watch) return skip();
        const service = uniqueService('wempty');
        const ac = new AbortController();
        const it = b.watch(service, { signal: ac.signal })[Symbol.asyncIterator]();
        try {
          const first = await it.next();
          expect(first).toEqual({ done: false, value: [] });
          if (b.capabilities.register) {
            await b.register(input(service, 'we-1', 3090));
            await nextMatching(it, (l) => ids(l).join() === 'we-1', 'we-1 to appear');
          }
        } finally {
          ac.abort();
        }
        expect(await endsWithin(it)).toBe(true);
      });

      it('an abort while a next() is pending ends the watch', async ({ skip }) => {
        const b = await make();
        if (!b.capabilities.watch) return skip();
        const ac = new AbortController();
        const it = b.watch(uniqueService('wabort'), { signal: ac.signal })[Symbol.asyncIterator]();
        await it.next(); // the current (empty) list
        const pending = it.next();
        ac.abort();
        const r = await Promise.race([
          pending.then(
            (v) => v,
            () => ({ done: true as const, value: undefined }),
          ),
          new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), WAIT_MS)),
        ]);
        expect(r).not.toBe('timeout');
        expect((r as IteratorResult<unknown>).done).toBe(true);
      });

      it('a watch also sees expiry of a registration', async ({ skip }) => {
        const shortTtlMs = target.shortTtlMs ?? 1500;
        const b = await make(shortTtlMs);
        if (!b.capabilities.register || !b.capabilities.watch) return skip();
        const service = uniqueService('wexp');
        const ac = new AbortController();
        const it = b.watch(service, { signal: ac.signal })[Symbol.asyncIterator]();
        try {
          await it.next();
          await b.register(input(service, 'x-1', 3095));
          await nextMatching(it, (l) => ids(l).join() === 'x-1', 'x-1 to appear');
          await nextMatching(it, (l) => l.length === 0, 'x-1 to expire', shortTtlMs * 10 + WAIT_MS);
        } finally {
          ac.abort();
        }
        expect(await endsWithin(it)).toBe(true);
      });
    });
  });
}
