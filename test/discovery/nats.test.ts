import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectOptions, createNatsBackend } from '../../src/discovery/nats.js';
import type { DiscoveryBackend, ServiceInstance } from '../../src/discovery/types.js';
import { UnreachableError } from '../../src/errors.js';
import type { DiscoveryConfig } from '../../src/profile/types.js';
import { startNats, type NatsServer } from '../fixtures/nats.js';
import { describeBackendConformance } from './conformance.js';
import { checkError, expectCloseEndsWatches, expectUnreachableWithout, loopbackCertificates, testDiscoveryConfig } from './helpers.js';

let server: NatsServer;
const opened: DiscoveryBackend[] = [];

function config(overrides: Partial<DiscoveryConfig> = {}): DiscoveryConfig {
  const ttlMs = overrides.ttlMs ?? 2000;
  return testDiscoveryConfig({
    backends: ['nats'],
    natsUrl: server.url,
    // A bucket's TTL is fixed when it is created: one bucket per TTL on the shared test server.
    natsBucket: `services-${ttlMs}`,
    ttlMs,
    ...overrides,
  });
}

function backend(overrides: Partial<DiscoveryConfig> = {}): DiscoveryBackend {
  const b = createNatsBackend(config(overrides));
  opened.push(b);
  return b;
}

beforeAll(async () => {
  server = await startNats();
});

afterAll(async () => {
  await Promise.all(opened.map((b) => b.close()));
  await server?.destroy();
});

async function rawConnection(url: string, extra: Record<string, unknown> = {}) {
  const { connect } = await import('@nats-io/transport-node');
  return connect({ servers: url, ...extra });
}

describe('nats backend', () => {
  test('keeps records in the KV bucket under <service>.<id>, with the registration TTL as bucket TTL', async () => {
    const b = backend({ natsBucket: 'layout', ttlMs: 3000 });
    await b.register({ id: 'pds-1', service: 'pds', address: '127.0.0.1', port: 3000 });
    const nc = await rawConnection(server.url);
    try {
      const { Kvm } = await import('@nats-io/kv');
      const kv = await new Kvm(nc).open('layout');
      const entry = await kv.get('pds.pds-1');
      expect(entry?.json()).toMatchObject({ id: 'pds-1', service: 'pds', port: 3000 });
      const status = await kv.status();
      expect(status.ttl).toBe(3000);
    } finally {
      await nc.close();
    }
  });

  test('announces register, heartbeat and deregister on services.<service>.*', async () => {
    const b = backend();
    const nc = await rawConnection(server.url);
    try {
      const sub = nc.subscribe('services.announced.>');
      await nc.flush();
      await b.register({ id: 'a-1', service: 'announced', address: '127.0.0.1' });
      await b.heartbeat('announced', 'a-1');
      await b.deregister('announced', 'a-1');
      const seen: { subject: string; id: string }[] = [];
      for await (const m of sub) {
        seen.push({ subject: m.subject, id: (m.json() as ServiceInstance).id });
        if (seen.length === 3) break;
      }
      expect(seen).toEqual([
        { subject: 'services.announced.register', id: 'a-1' },
        { subject: 'services.announced.heartbeat', id: 'a-1' },
        { subject: 'services.announced.deregister', id: 'a-1' },
      ]);
    } finally {
      await nc.close();
    }
  });

  test('a bucket created with another TTL is used as it is; records still expire on their own TTL', async () => {
    const long = backend({ natsBucket: 'mixed', ttlMs: 60_000 });
    await long.register({ id: 'l-1', service: 'mixed', address: '127.0.0.1' });
    const short = backend({ natsBucket: 'mixed', ttlMs: 1000 });
    await short.register({ id: 's-1', service: 'mixed', address: '127.0.0.1' });
    expect((await short.lookup('mixed')).map((i) => i.id)).toEqual(['l-1', 's-1']);
    const deadline = Date.now() + 20_000;
    while ((await short.lookup('mixed')).length !== 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await long.lookup('mixed')).map((i) => i.id)).toEqual(['l-1']);
  });

  test('close() ends the watches of the backend', async () => {
    await expectCloseEndsWatches(backend());
  });

  test('a heartbeat puts back a record the server lost', async () => {
    const b = backend({ natsBucket: 'lost' });
    await b.register({ id: 'p-1', service: 'lost', address: '127.0.0.1' });
    const nc = await rawConnection(server.url);
    try {
      const { Kvm } = await import('@nats-io/kv');
      await (await new Kvm(nc).open('lost')).purge('lost.p-1');
    } finally {
      await nc.close();
    }
    expect(await b.lookup('lost')).toEqual([]);
    await b.heartbeat('lost', 'p-1');
    expect((await b.lookup('lost')).map((i) => i.id)).toEqual(['p-1']);
  });

  test('a claim taken over by another client: a late heartbeat and a late deregistration of the first leave the new record alone', async () => {
    const first = backend({ natsBucket: 'late' });
    const second = backend({ natsBucket: 'late' });
    await first.register({ id: 'one', service: 'sched', address: '10.0.0.1' }, { exclusive: true });
    // The leader after it fenced the first's record and claimed the id.
    await second.deregister('sched', 'one');
    await second.register({ id: 'one', service: 'sched', address: '10.0.0.2' }, { exclusive: true });
    // Late calls of the first (healed after a partition): refused, and nothing of the second's is touched.
    await expect(first.heartbeat('sched', 'one')).rejects.toThrow(/not registered/);
    await first.deregister('sched', 'one');
    expect((await second.lookup('sched')).map((i) => i.address)).toEqual(['10.0.0.2']);
    // The second renews its claim as usual.
    await second.heartbeat('sched', 'one');
    expect((await first.lookup('sched')).map((i) => i.address)).toEqual(['10.0.0.2']);
  });

  test('ids with . and : (valid instance ids) are stored under one key token each', async () => {
    const b = backend({ natsBucket: 'dotted' });
    await b.register({ id: 'pds:host.1', service: 'dotted', address: '127.0.0.1', port: 1 });
    await b.register({ id: 'pds:host', service: 'dotted', address: '127.0.0.1', port: 2 });
    expect((await b.lookup('dotted')).map((i) => [i.id, i.port])).toEqual([
      ['pds:host', 2],
      ['pds:host.1', 1],
    ]);
    await b.deregister('dotted', 'pds:host.1');
    expect((await b.lookup('dotted')).map((i) => i.id)).toEqual(['pds:host']);
  });

  test('an id that is not a valid instance id is invalid input, not a silent rewrite', async () => {
    const b = backend();
    await expect(b.register({ id: 'a b', service: 'svc', address: '127.0.0.1' })).rejects.toMatchObject({
      code: 'invalid_input',
      exitCode: 2,
    });
  });

  test('token authentication; a wrong token is refused without printing it', async () => {
    const secured = await startNats({ token: 's3cret-token-value' });
    try {
      const good = backend({ natsUrl: secured.url, natsToken: 's3cret-token-value' });
      await good.check();
      await good.register({ id: 't-1', service: 'tok', address: '127.0.0.1' });
      expect((await good.lookup('tok')).map((i) => i.id)).toEqual(['t-1']);
      const bad = backend({ natsUrl: secured.url, natsToken: 'wrong-token-value' });
      const err = await checkError(bad);
      expectUnreachableWithout(err, ['wrong-token-value', 's3cret-token-value']);
      expect(err?.message).toContain('nats');
    } finally {
      await Promise.all(opened.splice(0).map((b) => b.close()));
      await secured.destroy();
    }
  });
});

test('nats: a silent connection (a link down, nothing resets it) is given up after two PINGs a heartbeat interval apart', () => {
  const creds = (() => undefined) as never;
  expect(connectOptions({ ...config(), heartbeatIntervalMs: 500 } as never, [server.url], creds)).toMatchObject({ pingInterval: 500, maxPingOut: 2 });
  expect(connectOptions({ ...config(), heartbeatIntervalMs: 10_000 } as never, [server.url], creds)).toMatchObject({ pingInterval: 10_000 });
});

test('nats: user and password; a wrong password is refused without printing it', async () => {
  const secured = await startNats({ user: 'stack', password: 'user-pass-123' });
  const local: DiscoveryBackend[] = [];
  try {
    const good = createNatsBackend(config({ natsUrl: secured.url, natsUser: 'stack', natsPassword: 'user-pass-123' }));
    local.push(good);
    await good.register({ id: 'u-1', service: 'userpass', address: '127.0.0.1' });
    expect((await good.lookup('userpass')).map((i) => i.id)).toEqual(['u-1']);
    const bad = createNatsBackend(config({ natsUrl: secured.url, natsUser: 'stack', natsPassword: 'wrong-pass-456' }));
    local.push(bad);
    const err = await checkError(bad);
    expectUnreachableWithout(err, ['wrong-pass-456', 'user-pass-123']);
    expect(err?.exitCode).toBe(3);
  } finally {
    await Promise.all(local.map((b) => b.close()));
    await secured.destroy();
  }
});

test('nats: TLS (tls:// URL) verified against the configured CA; without the CA the server is refused', async () => {
  const certs = await loopbackCertificates();
  const secured = await startNats({ tls: { certFile: certs.cert, keyFile: certs.key } });
  const local: DiscoveryBackend[] = [];
  try {
    expect(secured.url.startsWith('tls://')).toBe(true);
    const good = createNatsBackend(config({ natsUrl: secured.url, tls: { ca: certs.ca, insecureSkipVerify: false } }));
    local.push(good);
    await good.register({ id: 'tls-1', service: 'tlsd', address: '127.0.0.1' });
    expect((await good.lookup('tlsd')).map((i) => i.id)).toEqual(['tls-1']);
    const untrusting = createNatsBackend(config({ natsUrl: secured.url }));
    local.push(untrusting);
    await expect(untrusting.check()).rejects.toBeInstanceOf(UnreachableError);
  } finally {
    await Promise.all(local.map((b) => b.close()));
    await secured.destroy();
    await rm(certs.dir, { recursive: true, force: true });
  }
});

describeBackendConformance('nats', {
  make: async ({ ttlMs }) => backend({ ttlMs }),
  shortTtlMs: 1000,
});
