import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CollisionError } from '../../src/discovery/errors.js';
import { createEtcdBackend } from '../../src/discovery/etcd.js';
import type { DiscoveryBackend } from '../../src/discovery/types.js';
import type { DiscoveryConfig } from '../../src/profile/types.js';
import { startEtcd, type EtcdServer } from '../fixtures/etcd.js';
import { waitFor } from '../helpers/net.js';
import { describeBackendConformance } from './conformance.js';
import { checkError, expectCloseEndsWatches, expectUnreachableWithout, ids, loopbackCertificates, testDiscoveryConfig } from './helpers.js';

let server: EtcdServer;
const opened: DiscoveryBackend[] = [];
let prefixes = 0;

function config(overrides: Partial<DiscoveryConfig> = {}): DiscoveryConfig {
  return testDiscoveryConfig({
    backends: ['etcd'],
    etcdEndpoints: [server.endpoint],
    // A prefix per backend keeps tests independent on one server.
    etcdPrefix: `/etcd-test-${process.pid}-${++prefixes}`,
    ...overrides,
  });
}

function backend(overrides: Partial<DiscoveryConfig> = {}): DiscoveryBackend {
  const b = createEtcdBackend(config(overrides));
  opened.push(b);
  return b;
}

beforeAll(async () => {
  server = await startEtcd();
});

afterAll(async () => {
  await Promise.all(opened.map((b) => b.close()));
  await server?.destroy();
});

describe('etcd backend', () => {
  test('stores the record under <prefix>/services/<service>/<id> on a lease', async () => {
    const prefix = `/layout-${process.pid}`;
    const b = backend({ etcdPrefix: prefix });
    await b.register({ id: 'pds-1', service: 'pds', address: '127.0.0.1', port: 3000, tags: ['atproto'] });
    const { Etcd3 } = await import('etcd3');
    const raw = new Etcd3({ hosts: server.endpoint });
    try {
      const res = await raw.kv.range({ key: Buffer.from(`${prefix}/services/pds/pds-1`) });
      const kv = res.kvs[0];
      expect(kv).toBeDefined();
      expect(JSON.parse(kv!.value.toString())).toMatchObject({ id: 'pds-1', service: 'pds', port: 3000 });
      expect(kv!.lease).not.toBe('0');
    } finally {
      raw.close();
    }
  });

  test('exclusive registration fails on an id another client holds', async () => {
    const prefix = `/collide-${process.pid}`;
    const first = backend({ etcdPrefix: prefix });
    const second = backend({ etcdPrefix: prefix });
    await first.register({ id: 'db-1', service: 'db', address: '127.0.0.1' }, { exclusive: true });
    await expect(second.register({ id: 'db-1', service: 'db', address: '127.0.0.2' }, { exclusive: true })).rejects.toBeInstanceOf(CollisionError);
    expect((await second.lookup('db')).map((i) => i.address)).toEqual(['127.0.0.1']);
    // Once the holder lets go, the id is free again.
    await first.deregister('db', 'db-1');
    await second.register({ id: 'db-1', service: 'db', address: '127.0.0.2' }, { exclusive: true });
    expect((await first.lookup('db')).map((i) => i.address)).toEqual(['127.0.0.2']);
  });

  test('a claim taken over by another client: a late heartbeat and a late deregistration of the first leave the new record alone', async () => {
    const prefix = `/late-${process.pid}`;
    const first = backend({ etcdPrefix: prefix });
    const second = backend({ etcdPrefix: prefix });
    await first.register({ id: 'one', service: 'sched', address: '10.0.0.1' }, { exclusive: true, ttlMs: 1000 });
    // The first is cut off: its lease lapses; the second claims the id (the leader after it).
    await waitFor(async () => (await second.lookup('sched')).length === 0, 10_000, 'the first claim to lapse');
    await second.register({ id: 'one', service: 'sched', address: '10.0.0.2' }, { exclusive: true, ttlMs: 5000 });
    // Healed: the first's heartbeat finds its lease gone and may not put its record back over the second's.
    await expect(first.heartbeat('sched', 'one')).rejects.toBeInstanceOf(CollisionError);
    await first.deregister('sched', 'one');
    expect((await second.lookup('sched')).map((i) => i.address)).toEqual(['10.0.0.2']);
  });

  test('heartbeats keep a registration past its TTL; without them it expires', async () => {
    const b = backend();
    await b.register({ id: 'kept', service: 'svc', address: '127.0.0.1' }, { ttlMs: 1000 });
    await b.register({ id: 'dropped', service: 'svc', address: '127.0.0.1' }, { ttlMs: 1000 });
    const beat = setInterval(() => void b.heartbeat('svc', 'kept').catch(() => undefined), 250);
    try {
      await waitFor(async () => (await b.lookup('svc')).length === 1, 10_000, 'the unbeaten instance to expire');
      expect(ids(await b.lookup('svc'))).toEqual(['kept']);
    } finally {
      clearInterval(beat);
    }
  });

  test('close() ends the watches of the backend', async () => {
    await expectCloseEndsWatches(backend());
  });

  test('a heartbeat for an instance nobody registered is an error', async () => {
    const b = backend();
    await expect(b.heartbeat('svc', 'ghost')).rejects.toMatchObject({ code: 'not_registered' });
  });

  test('a heartbeat after the lease was lost puts the registration back', async () => {
    const prefix = `/relost-${process.pid}`;
    const b = backend({ etcdPrefix: prefix });
    await b.register({ id: 'phoenix', service: 'svc', address: '127.0.0.1' }, { ttlMs: 1000 });
    // Someone revokes every lease (as a server that lost its state would).
    const { Etcd3 } = await import('etcd3');
    const raw = new Etcd3({ hosts: server.endpoint });
    try {
      const res = await raw.kv.range({ key: Buffer.from(`${prefix}/services/svc/phoenix`) });
      await raw.leaseClient.leaseRevoke({ ID: res.kvs[0]!.lease });
    } finally {
      raw.close();
    }
    expect(await b.lookup('svc')).toEqual([]);
    await b.heartbeat('svc', 'phoenix');
    expect(ids(await b.lookup('svc'))).toEqual(['phoenix']);
  });

  test('watch yields the current list, then one list per change', async () => {
    const b = backend();
    const controller = new AbortController();
    const seen: string[][] = [];
    const done = (async () => {
      for await (const list of b.watch('web', { signal: controller.signal })) {
        seen.push(ids(list));
        if (seen.length === 1) await b.register({ id: 'w1', service: 'web', address: '127.0.0.1' });
        else if (seen.length === 2) await b.register({ id: 'w2', service: 'web', address: '127.0.0.1' });
        else if (seen.length === 3) await b.deregister('web', 'w1');
        else break;
      }
    })();
    await done;
    controller.abort();
    expect(seen).toEqual([[], ['w1'], ['w1', 'w2'], ['w2']]);
  });

  test('username and password: accepted when right; a wrong password is refused without printing it', async () => {
    const secured = await startEtcd();
    try {
      const { Etcd3 } = await import('etcd3');
      const admin = new Etcd3({ hosts: secured.endpoint });
      try {
        await admin.role('root').create();
        const root = await admin.user('root').create('root-pass-123');
        await root.addRole('root');
        await admin.auth.authEnable();
      } finally {
        admin.close();
      }
      const good = backend({ etcdEndpoints: [secured.endpoint], etcdUsername: 'root', etcdPassword: 'root-pass-123' });
      await good.check();
      await good.register({ id: 'auth-1', service: 'authd', address: '127.0.0.1' });
      expect(ids(await good.lookup('authd'))).toEqual(['auth-1']);
      await good.close();

      const bad = backend({ etcdEndpoints: [secured.endpoint], etcdUsername: 'root', etcdPassword: 'wrong-pass-456' });
      const err = await checkError(bad);
      expectUnreachableWithout(err, ['wrong-pass-456', 'root-pass-123']);
      expect(err?.exitCode).toBe(3);
      expect(err?.message).toContain('etcd');
    } finally {
      await secured.destroy();
    }
  });

  test('TLS: an https endpoint verified against the configured CA', async () => {
    const certs = await loopbackCertificates();
    const secured = await startEtcd({ tls: { certFile: certs.cert, keyFile: certs.key, caFile: certs.ca } });
    try {
      expect(secured.endpoint.startsWith('https://')).toBe(true);
      const b = backend({ etcdEndpoints: [secured.endpoint], tls: { ca: certs.ca, insecureSkipVerify: false } });
      await b.check();
      await b.register({ id: 'tls-1', service: 'tlsd', address: '127.0.0.1' });
      expect(ids(await b.lookup('tlsd'))).toEqual(['tls-1']);
      await b.close();
    } finally {
      await secured.destroy();
      await rm(certs.dir, { recursive: true, force: true });
    }
  });

  test('credentials never appear in an error message', async () => {
    const b = createEtcdBackend(config({ etcdEndpoints: ['http://127.0.0.1:1'], etcdUsername: 'root', etcdPassword: 'hunter2-secret' }));
    opened.push(b);
    const err = await checkError(b);
    expect(err).toBeDefined();
    expect(String(err?.message)).not.toContain('hunter2-secret');
  });
});

describeBackendConformance('etcd', {
  make: async ({ ttlMs }) => backend({ ttlMs }),
  shortTtlMs: 1000,
});
