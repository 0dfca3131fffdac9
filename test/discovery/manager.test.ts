import { afterEach, describe, expect, it, vi } from 'vitest';
import { UnreachableError, UnsupportedError } from '../../src/errors.js';
import { CollisionError } from '../../src/discovery/errors.js';
import { createEnvBackend } from '../../src/discovery/env.js';
import { createFileBackend } from '../../src/discovery/file.js';
import { createDiscoveryManager, type DiscoveryManager, type DiscoveryManagerOptions } from '../../src/discovery/manager.js';
import { createMemoryBackend } from '../../src/discovery/memory.js';
import type { DiscoveryEvent, InstanceInput, ServiceInstance } from '../../src/discovery/types.js';
import { instrument } from './helpers.js';
import { createManualClock } from '../../src/util/clock.js';

const managers: DiscoveryManager[] = [];
function manager(opts: DiscoveryManagerOptions): DiscoveryManager {
  const m = createDiscoveryManager(opts);
  managers.push(m);
  return m;
}
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

const pds = (id = 'pds-1', port = 3000): InstanceInput => ({ id, service: 'pds', address: '127.0.0.1', port });
const ids = (list: readonly ServiceInstance[]): string[] => list.map((i) => i.id).sort();

async function until<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('lookup: cache and coalescing', () => {
  it('1,000 concurrent cold lookups of one service cause exactly one backend request', async () => {
    const backend = instrument(createMemoryBackend());
    await backend.register(pds());
    const m = manager({ backends: [backend] });
    backend.calls.lookup = 0;
    const answers = await Promise.all(Array.from({ length: 1000 }, () => m.lookup('pds')));
    expect(backend.calls.lookup).toBe(1);
    expect(new Set(answers).size).toBe(1);
    expect(ids(answers[0]!)).toEqual(['pds-1']);
  });

  it('answers from the cache until it expires, per service', async () => {
    let clock = 1_000_000;
    const backend = instrument(createMemoryBackend());
    await backend.register(pds());
    const m = manager({ backends: [backend], cacheTtlMs: 1000, now: () => clock });
    await m.lookup('pds');
    await m.lookup('pds');
    await m.lookup('plc');
    expect(backend.calls.lookup).toBe(2); // one per service
    clock += 999;
    await m.lookup('pds');
    expect(backend.calls.lookup).toBe(2);
    clock += 2;
    await m.lookup('pds');
    expect(backend.calls.lookup).toBe(3);
  });

  it('a registration or deregistration through the manager invalidates the cached answer', async () => {
    const m = manager({ backends: [createMemoryBackend()], cacheTtlMs: 60_000 });
    expect(await m.lookup('pds')).toEqual([]);
    await m.register(pds());
    expect(ids(await m.lookup('pds'))).toEqual(['pds-1']);
    await m.deregister('pds', 'pds-1');
    expect(await m.lookup('pds')).toEqual([]);
  });

  it('an answer fetched before a change is not cached after it', async () => {
    const backend = instrument(createMemoryBackend());
    const m = manager({ backends: [backend], cacheTtlMs: 60_000 });
    const inFlight = m.lookup('pds'); // started before the registration
    await m.register(pds());
    await inFlight;
    expect(ids(await m.lookup('pds'))).toEqual(['pds-1']);
  });

  it('returns frozen lists, so one caller cannot corrupt what others are given', async () => {
    const m = manager({ backends: [createMemoryBackend()] });
    await m.register(pds());
    const list = await m.lookup('pds');
    expect(() => (list as ServiceInstance[]).push(list[0]!)).toThrow(TypeError);
    expect(() => {
      (list[0] as { port?: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe('lookup: ordered fallback and last-known-good', () => {
  it('asks backends in order; the first non-empty answer wins and later ones are not asked', async () => {
    const first = instrument(createMemoryBackend(), 'first');
    const second = instrument(createMemoryBackend(), 'second');
    await first.register(pds('from-first'));
    await second.register(pds('from-second'));
    await second.register({ id: 'plc-1', service: 'plc', address: '127.0.0.2' });
    const m = manager({ backends: [first, second] });
    expect(ids(await m.lookup('pds'))).toEqual(['from-first']);
    expect(second.calls.lookup ?? 0).toBe(0);
    expect(ids(await m.lookup('plc'))).toEqual(['plc-1']); // empty in first: falls through
  });

  it('a backend that fails falls through to the next, with a fallback event', async () => {
    const first = instrument(createMemoryBackend(), 'first');
    const second = instrument(createMemoryBackend(), 'second');
    await second.register(pds('from-second'));
    first.down = true;
    const events: DiscoveryEvent[] = [];
    const m = manager({ backends: [first, second], onEvent: (e) => events.push(e) });
    expect(ids(await m.lookup('pds'))).toEqual(['from-second']);
    expect(events).toContainEqual(expect.objectContaining({ type: 'fallback', backend: 'first', service: 'pds' }));
  });

  it('serves the last known good answer while every backend is down, with a stale event', async () => {
    const backend = instrument(createMemoryBackend(), 'only');
    await backend.register(pds());
    const events: DiscoveryEvent[] = [];
    const m = manager({ backends: [backend], cacheTtlMs: 0, onEvent: (e) => events.push(e) });
    expect(ids(await m.lookup('pds'))).toEqual(['pds-1']);
    backend.down = true;
    expect(ids(await m.lookup('pds'))).toEqual(['pds-1']);
    expect(events.some((e) => e.type === 'stale' && e.service === 'pds')).toBe(true);
    backend.down = false;
    await backend.deregister('pds', 'pds-1');
    expect(await m.lookup('pds')).toEqual([]); // up again: its answer counts, even an empty one
  });

  it('without any good answer to fall back on, an outage is UnreachableError (exit 3)', async () => {
    const a = instrument(createMemoryBackend(), 'a');
    const b = instrument(createMemoryBackend(), 'b');
    a.down = true;
    b.down = true;
    const m = manager({ backends: [a, b] });
    const err = await m.lookup('pds').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as UnreachableError).exitCode).toBe(3);
    expect((err as Error).message).toMatch(/a is down.*b is down/);
  });
});

describe('register, deregister, collisions', () => {
  it('registers in every backend that can, skipping read-only ones, and deregisters likewise', async () => {
    const a = createMemoryBackend({ name: 'a' });
    const b = createMemoryBackend({ name: 'b' });
    const m = manager({ backends: [a, createEnvBackend({ env: {} }), b] });
    expect(m.canRegister).toBe(true);
    await m.register(pds());
    expect(ids(await a.lookup('pds'))).toEqual(['pds-1']);
    expect(ids(await b.lookup('pds'))).toEqual(['pds-1']);
    await m.deregister('pds', 'pds-1');
    expect(await a.lookup('pds')).toEqual([]);
    expect(await b.lookup('pds')).toEqual([]);
  });

  it('an exclusive registration that collides anywhere fails and leaves no half-registration', async () => {
    const a = createMemoryBackend({ name: 'a' });
    const b = createMemoryBackend({ name: 'b' });
    await b.register(pds('pds-1', 9999)); // someone else holds the id in b
    const m = manager({ backends: [a, b] });
    await expect(m.register(pds('pds-1', 3000), { exclusive: true })).rejects.toBeInstanceOf(CollisionError);
    expect(await a.lookup('pds')).toEqual([]);
    expect((await b.lookup('pds')).map((i) => i.port)).toEqual([9999]);
  });

  it('registration succeeds when one of several backends is down (with an event), fails with exit 3 when all are', async () => {
    const a = instrument(createMemoryBackend(), 'a');
    const b = instrument(createMemoryBackend(), 'b');
    const events: DiscoveryEvent[] = [];
    const m = manager({ backends: [a, b], onEvent: (e) => events.push(e) });
    a.down = true;
    await m.register(pds());
    expect(ids(await b.lookup('pds'))).toEqual(['pds-1']);
    expect(events).toContainEqual(expect.objectContaining({ type: 'error', backend: 'a' }));
    b.down = true;
    const err = await m.register(pds('pds-2')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as UnreachableError).exitCode).toBe(3);
  });

  it('asking read-only discovery to register is UnsupportedError', async () => {
    const m = manager({ backends: [createEnvBackend({ env: {} })] });
    expect(m.canRegister).toBe(false);
    await expect(m.register(pds())).rejects.toBeInstanceOf(UnsupportedError);
  });

  it('check() passes while one backend is usable and fails with UnreachableError when none is', async () => {
    const good = createMemoryBackend();
    const bad = createFileBackend({ directory: '/dev/null/discovery' });
    const events: DiscoveryEvent[] = [];
    await expect(manager({ backends: [bad, good], onEvent: (e) => events.push(e) }).check()).resolves.toBeUndefined();
    expect(events).toContainEqual(expect.objectContaining({ type: 'fallback', backend: 'file' }));
    const only = manager({ backends: [createFileBackend({ directory: '/dev/null/discovery' })] });
    await expect(only.check()).rejects.toBeInstanceOf(UnreachableError);
    expect((await only.checkEach()).map((c) => c.ok)).toEqual([false]);
  });
});

describe('keepAlive', () => {
  it('keeps a registration alive past its TTL and restores it when the backend loses it', async () => {
    const backend = createMemoryBackend({ ttlMs: 300 });
    const events: DiscoveryEvent[] = [];
    const m = manager({ backends: [backend], cacheTtlMs: 0, onEvent: (e) => events.push(e) });
    const registered = await m.register(pds());
    const stop = m.keepAlive(pds(), 60);
    // Alive across several TTLs.
    const aliveUntil = Date.parse(registered.registeredAt) + 1200;
    while (Date.now() < aliveUntil) {
      expect(ids(await backend.lookup('pds'))).toEqual(['pds-1']);
      await new Promise((r) => setTimeout(r, 50));
    }
    // The backend forgets it (a restart, an expiry while unreachable): the next beat registers again.
    await backend.deregister('pds', 'pds-1');
    await until(
      () => backend.lookup('pds'),
      (l) => l.length === 1,
      'the registration to be restored',
    );
    expect(events).toContainEqual(expect.objectContaining({ type: 'reconnect', service: 'pds' }));
    await stop();
    await until(
      () => backend.lookup('pds'),
      (l) => l.length === 0,
      'expiry once stopped',
    );
  });
});

describe('keepAlive and deregister', () => {
  it('deregister stops the heartbeats, so nothing brings the registration back', async () => {
    const backend = instrument(createMemoryBackend({ ttlMs: 10_000 }));
    const m = manager({ backends: [backend], cacheTtlMs: 0 });
    await m.register(pds());
    m.keepAlive(pds(), 10);
    await until(
      () => backend.calls.heartbeat ?? 0,
      (n) => n >= 2,
      'a few heartbeats',
    );
    await m.deregister('pds', 'pds-1');
    const beats = backend.calls.heartbeat ?? 0;
    const registers = backend.calls.register ?? 0;
    await new Promise((r) => setTimeout(r, 100)); // ten intervals
    expect(backend.calls.heartbeat ?? 0).toBe(beats);
    expect(backend.calls.register ?? 0).toBe(registers);
    expect(await backend.lookup('pds')).toEqual([]);
  });
});

describe('a heartbeat under way when the registration is removed', () => {
  it('fails without registering it again (a supervisor cut off and healed must not bring back what it let go)', async () => {
    const inner = createMemoryBackend({ ttlMs: 10_000 });
    let failBeat: (() => void) | undefined;
    let registers = 0;
    const backend = {
      ...inner,
      register: (...args: Parameters<typeof inner.register>) => {
        registers++;
        return inner.register(...args);
      },
      // The beat hangs (the backend is unreachable), and fails once released.
      heartbeat: () => new Promise<void>((_, reject) => (failBeat = () => reject(new Error('lease gone')))),
    };
    const m = manager({ backends: [backend], cacheTtlMs: 0 });
    await m.register(pds(), { exclusive: true });
    m.keepAlive(pds(), 10, { exclusive: true });
    await until(
      () => failBeat !== undefined,
      (v) => v,
      'a heartbeat under way',
    );
    const removing = m.deregister('pds', 'pds-1');
    await inner.deregister('pds', 'pds-1'); // meanwhile the record went (expired, or fenced by another host)
    failBeat!();
    await removing;
    expect(registers).toBe(1);
    expect(await inner.lookup('pds')).toEqual([]);
  });
});

describe('withdraw and restore', () => {
  it('a backend without markCritical deregisters the withdrawn instance; heartbeats meanwhile do not bring it back; restore registers it again', async () => {
    const backend = instrument(createMemoryBackend({ ttlMs: 10_000 }));
    const m = manager({ backends: [backend], cacheTtlMs: 0 });
    await m.register(pds());
    m.keepAlive(pds(), 10);
    await until(
      () => backend.calls.heartbeat ?? 0,
      (n) => n >= 2,
      'a few heartbeats',
    );
    await m.withdraw('pds', 'pds-1', 'unhealthy: HTTP 500');
    expect(await m.lookup('pds')).toEqual([]);
    const beats = backend.calls.heartbeat ?? 0;
    const registers = backend.calls.register ?? 0;
    await m.heartbeat('pds', 'pds-1');
    await new Promise((r) => setTimeout(r, 100)); // ten intervals
    expect(backend.calls.heartbeat ?? 0).toBe(beats);
    expect(backend.calls.register ?? 0).toBe(registers);
    expect(await backend.lookup('pds')).toEqual([]);
    await m.restore('pds', 'pds-1');
    expect(ids(await m.lookup('pds'))).toEqual(['pds-1']);
    // The loop beats again.
    await until(
      () => backend.calls.heartbeat ?? 0,
      (n) => n > beats,
      'heartbeats to resume',
    );
  });

  it('per backend: marked critical where the backend can, deregistered elsewhere', async () => {
    const plain = instrument(createMemoryBackend(), 'plain');
    const critical = new Map<string, string>();
    const inner = createMemoryBackend();
    const marking = instrument(inner, 'marking');
    marking.markCritical = async (service, id, note) => {
      marking.calls.markCritical = (marking.calls.markCritical ?? 0) + 1;
      critical.set(`${service}/${id}`, note);
    };
    const m = manager({ backends: [marking, plain], cacheTtlMs: 0 });
    await m.register(pds());
    await m.withdraw('pds', 'pds-1', 'unhealthy: HTTP 500');
    expect(critical.get('pds/pds-1')).toBe('unhealthy: HTTP 500');
    expect(marking.calls.deregister ?? 0).toBe(0);
    expect(ids(await inner.lookup('pds'))).toEqual(['pds-1']); // still registered there
    expect(plain.calls.deregister).toBe(1);
    expect(await plain.lookup('pds')).toEqual([]);
    const beats = marking.calls.heartbeat ?? 0;
    await m.restore('pds', 'pds-1');
    expect(marking.calls.heartbeat).toBe(beats + 1); // the beat that passes its check
    expect(ids(await plain.lookup('pds'))).toEqual(['pds-1']);
  });

  it('a restore asked for right after a withdrawal does not overtake it', async () => {
    const inner = createMemoryBackend();
    const marking = instrument(inner, 'marking');
    let status = 'passing';
    marking.markCritical = async () => {
      await new Promise((r) => setTimeout(r, 20)); // a slow agent
      status = 'critical';
    };
    marking.heartbeat = async (service, id) => {
      await inner.heartbeat(service, id);
      status = 'passing';
    };
    const m = manager({ backends: [marking], cacheTtlMs: 0 });
    await m.register(pds());
    await Promise.all([m.withdraw('pds', 'pds-1', 'unhealthy'), m.restore('pds', 'pds-1')]);
    expect(status).toBe('passing');
  });
});

describe('input errors', () => {
  it("a bad service name is the caller's error, not an outage: no fallback, no stale answer", async () => {
    const events: DiscoveryEvent[] = [];
    const m = manager({ backends: [createMemoryBackend()], onEvent: (e) => events.push(e) });
    await expect(m.lookup('Not A Label')).rejects.toMatchObject({ code: 'invalid_input' });
    expect(events).toEqual([]);
  });
});

describe('watch: merged streams', () => {
  it('merges the backends into one stream of full lists, and ends on abort', async () => {
    const a = createMemoryBackend({ name: 'a' });
    const b = createMemoryBackend({ name: 'b' });
    const m = manager({ backends: [a, b] });
    const ac = new AbortController();
    const it = m.watch('pds', { signal: ac.signal })[Symbol.asyncIterator]();
    const next = async (): Promise<string[]> => ids(((await it.next()).value ?? []) as ServiceInstance[]);
    expect(await next()).toEqual([]);
    await a.register(pds('in-a'));
    expect(await next()).toEqual(['in-a']);
    await b.register(pds('in-b'));
    expect(await next()).toEqual(['in-a', 'in-b']);
    await b.register(pds('in-a', 4000)); // same id in both: the earlier backend's record wins
    await a.deregister('pds', 'in-a');
    const merged = await until(
      async () => ((await it.next()).value ?? []) as ServiceInstance[],
      (l) => l.some((i) => i.id === 'in-a' && i.port === 4000),
      "b's in-a",
    );
    expect(ids(merged)).toEqual(['in-a', 'in-b']);
    ac.abort();
    expect((await it.next()).done).toBe(true);
  });

  it('includes backends that cannot watch by polling them', async () => {
    const env = createEnvBackend({ env: { ATPROTO_SERVICE_PDS_URL: 'http://127.0.0.9:3000' } });
    const mem = createMemoryBackend();
    const m = manager({ backends: [mem, env], pollIntervalMs: 50 });
    const ac = new AbortController();
    const it = m.watch('pds', { signal: ac.signal })[Symbol.asyncIterator]();
    expect(((await it.next()).value as ServiceInstance[]).map((i) => i.address)).toEqual(['127.0.0.9']);
    await mem.register(pds('mem-1'));
    expect(ids((await it.next()).value as ServiceInstance[])).toEqual(['mem-1', 'pds']);
    ac.abort();
    expect((await it.next()).done).toBe(true);
  });

  it('keeps the last list of a backend whose watch fails, and resumes it when it is back', async () => {
    const flaky = instrument(createMemoryBackend(), 'flaky');
    const steady = createMemoryBackend({ name: 'steady' });
    await steady.register(pds('steady-1'));
    flaky.down = true;
    const events: DiscoveryEvent[] = [];
    const m = manager({ backends: [flaky, steady], watchRetryMs: 20, onEvent: (e) => events.push(e) });
    const ac = new AbortController();
    const it = m.watch('pds', { signal: ac.signal })[Symbol.asyncIterator]();
    expect(ids((await it.next()).value as ServiceInstance[])).toEqual(['steady-1']);
    expect(events).toContainEqual(expect.objectContaining({ type: 'error', backend: 'flaky' }));
    flaky.down = false;
    await flaky.register(pds('flaky-1'));
    expect(ids((await it.next()).value as ServiceInstance[])).toEqual(['flaky-1', 'steady-1']);
    expect(events).toContainEqual(expect.objectContaining({ type: 'reconnect', backend: 'flaky' }));
    ac.abort();
    expect((await it.next()).done).toBe(true);
  });

  it("retries a failed backend's watch on the manager's clock, the delay doubling each time", async () => {
    const flaky = instrument(createMemoryBackend(), 'flaky');
    const steady = createMemoryBackend({ name: 'steady' });
    await steady.register(pds('steady-1'));
    flaky.down = true;
    const clock = createManualClock();
    const m = manager({ backends: [flaky, steady], watchRetryMs: 100, clock });
    const ac = new AbortController();
    const it = m.watch('pds', { signal: ac.signal })[Symbol.asyncIterator]();
    expect(ids((await it.next()).value as ServiceInstance[])).toEqual(['steady-1']);
    const attempts = [flaky.calls.watch];
    for (const wait of [100, 200, 400]) {
      await clock.advance(wait - 1);
      attempts.push(flaky.calls.watch); // not yet: no timer of its own fires behind the clock's back
      await clock.advance(1);
      attempts.push(flaky.calls.watch);
    }
    expect(attempts).toEqual([1, 1, 2, 2, 3, 3, 4]);
    ac.abort();
    expect((await it.next()).done).toBe(true);
  });

  it('a watch sees changes and the cache is invalidated by them', async () => {
    const backend = createMemoryBackend();
    const m = manager({ backends: [backend], cacheTtlMs: 60_000 });
    expect(await m.lookup('pds')).toEqual([]); // cached: empty
    const ac = new AbortController();
    const it = m.watch('pds', { signal: ac.signal })[Symbol.asyncIterator]();
    await it.next();
    await backend.register(pds()); // behind the manager's back
    expect(ids((await it.next()).value as ServiceInstance[])).toEqual(['pds-1']);
    expect(ids(await m.lookup('pds'))).toEqual(['pds-1']);
    ac.abort();
  });
});

describe('close()', () => {
  it('ends watches, stops heartbeats and leaves no timer behind', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const m = createDiscoveryManager({ backends: [createMemoryBackend({ ttlMs: 10_000 })] });
    await m.register(pds());
    m.keepAlive(pds(), 1000);
    const it = m.watch('pds')[Symbol.asyncIterator]();
    expect(ids((await it.next()).value as ServiceInstance[])).toEqual(['pds-1']);
    const pending = it.next();
    await vi.advanceTimersByTimeAsync(2500); // a few heartbeats
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    await m.close();
    expect((await pending).done).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    await expect(m.lookup('pds')).rejects.toMatchObject({ code: 'closed' });
  });
});
