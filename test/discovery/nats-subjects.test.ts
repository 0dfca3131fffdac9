import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createNatsDiscovery, createNatsSubjectsBackend } from '../../src/discovery/nats-subjects.js';
import { createBackend } from '../../src/discovery/index.js';
import type { DiscoveryBackend, ServiceInstance } from '../../src/discovery/types.js';
import type { DiscoveryConfig } from '../../src/profile/types.js';
import { startNats, type NatsServer } from '../fixtures/nats.js';
import { describeBackendConformance } from './conformance.js';
import { checkError, expectCloseEndsWatches, expectUnreachableWithout, ids, testDiscoveryConfig } from './helpers.js';

/** A nats-server started without -js: no JetStream, so no KV. */
let plain: NatsServer;
let withJs: NatsServer;
const opened: DiscoveryBackend[] = [];

function config(overrides: Partial<DiscoveryConfig> = {}): DiscoveryConfig {
  return testDiscoveryConfig({ backends: ['nats'], natsUrl: plain.url, natsMode: 'subjects', ...overrides });
}

function backend(overrides: Partial<DiscoveryConfig> = {}): DiscoveryBackend {
  const b = createNatsSubjectsBackend(config(overrides));
  opened.push(b);
  return b;
}

beforeAll(async () => {
  [plain, withJs] = await Promise.all([startNats({ jetstream: false }), startNats()]);
});

afterAll(async () => {
  await Promise.all(opened.map((b) => b.close()));
  await Promise.all([plain?.destroy(), withJs?.destroy()]);
});

async function rawConnection(url: string) {
  const { connect } = await import('@nats-io/transport-node');
  return connect({ servers: url });
}

describe('nats subjects mode (no JetStream)', () => {
  test('the fixture server really has no JetStream', async () => {
    const nc = await rawConnection(plain.url);
    try {
      expect(nc.info?.jetstream ?? false).toBe(false);
    } finally {
      await nc.close();
    }
  });

  test('register, heartbeat and deregister are messages on services.<service>.*', async () => {
    const b = backend();
    const nc = await rawConnection(plain.url);
    try {
      const sub = nc.subscribe('services.subj.>');
      await nc.flush();
      await b.register({ id: 's-1', service: 'subj', address: '127.0.0.1', port: 1 });
      await b.heartbeat('subj', 's-1');
      await b.deregister('subj', 's-1');
      const seen: string[] = [];
      for await (const m of sub) {
        seen.push(`${m.subject} ${(m.json() as ServiceInstance).id}`);
        if (seen.length === 3) break;
      }
      expect(seen).toEqual(['services.subj.register s-1', 'services.subj.heartbeat s-1', 'services.subj.deregister s-1']);
    } finally {
      await nc.close();
    }
  });

  test('a client started later knows the live instances at once (announce request), not after a heartbeat', async () => {
    // A TTL and heartbeat interval far longer than the test: only the announce round can tell.
    const early = backend({ ttlMs: 600_000, heartbeatIntervalMs: 300_000 });
    await early.register({ id: 'a-1', service: 'announce', address: '127.0.0.1', port: 7 });
    const late = backend({ ttlMs: 600_000 });
    const found = await late.lookup('announce');
    expect(found.map((i) => [i.id, i.port])).toEqual([['a-1', 7]]);
  });

  test("a client learns of another client's registration from its messages, and sees it expire without heartbeats", async () => {
    const watcher = backend();
    const writer = backend({ ttlMs: 1000 });
    const ac = new AbortController();
    const seen: string[][] = [];
    for await (const list of watcher.watch('cross', { signal: ac.signal })) {
      seen.push(ids(list));
      if (seen.length === 1) await writer.register({ id: 'c-1', service: 'cross', address: '127.0.0.1' });
      if (seen.length === 3) break;
    }
    ac.abort();
    expect(seen).toEqual([[], ['c-1'], []]);
  });

  test('after a server restart, clients publish their records again: a client started meanwhile sees them', async () => {
    const own = await startNats({ jetstream: false });
    const local: DiscoveryBackend[] = [];
    try {
      const a = createNatsSubjectsBackend(config({ natsUrl: own.url, ttlMs: 600_000 }));
      local.push(a);
      await a.register({ id: 'r-1', service: 'restarted', address: '127.0.0.1' });
      await own.restart();
      const b = createNatsSubjectsBackend(config({ natsUrl: own.url, ttlMs: 600_000 }));
      local.push(b);
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 20_000);
      let found: string[] = [];
      for await (const list of b.watch('restarted', { signal: ac.signal })) {
        found = ids(list);
        if (found.length > 0) break;
      }
      clearTimeout(timer);
      expect(found).toEqual(['r-1']);
    } finally {
      await Promise.all(local.map((x) => x.close()));
      await own.destroy();
    }
  });

  test('close() ends the watches of the backend', async () => {
    await expectCloseEndsWatches(backend());
  });

  test('a heartbeat for an instance nobody registered is an error', async () => {
    await expect(backend().heartbeat('svc', 'ghost')).rejects.toMatchObject({ code: 'not_registered' });
  });

  test('user and password; a wrong password is refused without printing it', async () => {
    const secured = await startNats({ jetstream: false, user: 'stack', password: 'plain-pass-123' });
    try {
      const good = backend({ natsUrl: secured.url, natsUser: 'stack', natsPassword: 'plain-pass-123' });
      await good.register({ id: 'u-1', service: 'userpass', address: '127.0.0.1' });
      expect(ids(await good.lookup('userpass'))).toEqual(['u-1']);
      const err = await checkError(backend({ natsUrl: secured.url, natsUser: 'stack', natsPassword: 'wrong-pass-456' }));
      expectUnreachableWithout(err, ['wrong-pass-456', 'plain-pass-123']);
    } finally {
      await Promise.all(opened.splice(0).map((b) => b.close()));
      await secured.destroy();
    }
  });
});

describe('natsMode', () => {
  test('auto (the default) uses subjects on a server without JetStream, and KV where JetStream is on', async () => {
    const onPlain = await createBackend('nats', testDiscoveryConfig({ backends: ['nats'], natsUrl: plain.url }));
    const onJs = await createBackend('nats', testDiscoveryConfig({ backends: ['nats'], natsUrl: withJs.url, natsBucket: 'auto-mode' }));
    opened.push(onPlain, onJs);
    await onPlain.register({ id: 'p-1', service: 'automode', address: '127.0.0.1' });
    await onJs.register({ id: 'j-1', service: 'automode', address: '127.0.0.1' });
    expect(ids(await onPlain.lookup('automode'))).toEqual(['p-1']);
    expect(ids(await onJs.lookup('automode'))).toEqual(['j-1']);
    // The KV one really wrote to a bucket.
    const nc = await rawConnection(withJs.url);
    try {
      const { Kvm } = await import('@nats-io/kv');
      const kv = await new Kvm(nc).open('auto-mode');
      expect((await kv.get('automode.j-1'))?.json()).toMatchObject({ id: 'j-1' });
    } finally {
      await nc.close();
    }
  });

  test('explicit kv on a server without JetStream fails clearly instead of silently falling back', async () => {
    const b = createNatsDiscovery(config({ natsMode: 'kv' }));
    opened.push(b);
    await expect(b.check()).rejects.toThrow(/nats/);
  });
});

describeBackendConformance('nats (subjects mode, no JetStream)', {
  make: async ({ ttlMs }) => backend({ ttlMs }),
  shortTtlMs: 1000,
});

test('natsMode auto: a watch started while the server is down begins once it is up', async () => {
  const later = await startNats({ jetstream: false });
  await later.stop();
  const b = createNatsDiscovery(testDiscoveryConfig({ backends: ['nats'], natsUrl: later.url }));
  try {
    const ac = new AbortController();
    const it = b.watch('late', { signal: ac.signal })[Symbol.asyncIterator]();
    const first = it.next();
    await new Promise((r) => setTimeout(r, 300));
    await later.start();
    const result = await Promise.race([first, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    expect(result).toEqual({ done: false, value: [] });
    ac.abort();
  } finally {
    await b.close();
    await later.destroy();
  }
});
