/**
 * Fault tests for the networked discovery backends, against real servers: etcd and nats-server
 * are stopped and started again (keeping their data, or rebuilt from nothing) while services are
 * registered, heartbeated and watched, as `stack up` would leave them.
 *
 * What must hold: the registrations are back after the restart, a watcher in another client
 * resumes and delivers the final state, and nothing registered is lost. Waits poll with generous
 * deadlines; no test asserts a wall-clock time.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { createEtcdBackend } from '../../src/discovery/etcd.js';
import { discoveryConfig } from '../../src/discovery/index.js';
import { createNatsBackend } from '../../src/discovery/nats.js';
import type { DiscoveryBackend, ServiceInstance } from '../../src/discovery/types.js';
import { UnreachableError } from '../../src/errors.js';
import type { DiscoveryConfig } from '../../src/profile/types.js';
import { startEtcd } from '../fixtures/etcd.js';
import { startNats } from '../fixtures/nats.js';
import { freePort, waitFor } from '../helpers/net.js';

const TTL_MS = 2000;
const HEARTBEAT_MS = 400;
const RECOVERY_DEADLINE_MS = 30_000;

/** The registry's defaults (every backend's), with this suite's TTLs and no servers configured. */
function config(overrides: Partial<DiscoveryConfig>): DiscoveryConfig {
  return discoveryConfig({
    backends: [],
    etcdEndpoints: [],
    etcdPrefix: '/faults',
    natsUrl: '',
    ttlMs: TTL_MS,
    heartbeatIntervalMs: HEARTBEAT_MS,
    ...overrides,
  });
}

interface RestartableServer {
  stop(): Promise<void>;
  restart(opts?: { wipe?: boolean }): Promise<void>;
  destroy(): Promise<void>;
}

interface FaultTarget {
  name: string;
  start(): Promise<{ server: RestartableServer; make(): DiscoveryBackend }>;
}

const targets: FaultTarget[] = [
  {
    name: 'etcd',
    async start() {
      const server = await startEtcd();
      return { server, make: () => createEtcdBackend(config({ etcdEndpoints: [server.endpoint] })) };
    },
  },
  {
    name: 'nats',
    async start() {
      const server = await startNats();
      return { server, make: () => createNatsBackend(config({ natsUrl: server.url })) };
    },
  },
];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ids = (list: ServiceInstance[]) =>
  list
    .map((i) => i.id)
    .sort()
    .join(',');

/** What the engine does for each healthy service: heartbeat at an interval, shrugging off errors. */
function heartbeating(backend: DiscoveryBackend, service: string, alive: Set<string>): () => void {
  const timer = setInterval(() => {
    for (const id of alive) void backend.heartbeat(service, id).catch(() => undefined);
  }, HEARTBEAT_MS);
  return () => clearInterval(timer);
}

/** Follow a watch in the background; `latest()` is the last full list it delivered. */
function following(backend: DiscoveryBackend, service: string) {
  const ac = new AbortController();
  let latest: ServiceInstance[] | undefined;
  let failure: unknown;
  const done = (async () => {
    for await (const list of backend.watch(service, { signal: ac.signal })) latest = list;
  })().catch((err: unknown) => {
    failure = err;
  });
  return {
    latest: () => {
      if (failure) throw failure;
      return latest;
    },
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

describe.each(targets)('$name: server restarts', (target) => {
  for (const wipe of [false, true]) {
    const how = wipe ? 'rebuilt from nothing' : 'with its data kept';
    test(`registrations come back and a watcher sees the final state after a restart ${how}`, async () => {
      const { server, make } = await target.start();
      cleanups.push(() => server.destroy());
      const stack = make(); // the `stack up` process: registers and heartbeats
      const observer = make(); // another process: watches and looks up
      cleanups.push(
        () => stack.close(),
        () => observer.close(),
      );

      const service = `svc-${wipe ? 'wiped' : 'kept'}`;
      const alive = new Set(['a-1', 'a-2']);
      for (const id of alive) await stack.register({ id, service, address: '127.0.0.1', port: 4000 });
      const stopBeating = heartbeating(stack, service, alive);
      cleanups.push(async () => stopBeating());
      const watch = following(observer, service);
      cleanups.push(() => watch.stop());
      await waitFor(() => watch.latest() && ids(watch.latest()!) === 'a-1,a-2', RECOVERY_DEADLINE_MS, 'the watch before the outage');

      await server.stop();
      await sleep(TTL_MS * 1.5); // long enough for every lease / KV TTL to lapse
      await server.restart({ wipe });

      // Back, as seen by another client, without anyone registering again by hand.
      await waitFor(async () => ids(await observer.lookup(service)) === 'a-1,a-2', RECOVERY_DEADLINE_MS, 'registrations after the restart');

      // Changes after the restart reach the resumed watcher; its last list is the final state.
      await stack.register({ id: 'a-3', service, address: '127.0.0.1', port: 4003 });
      alive.add('a-3');
      alive.delete('a-1');
      await stack.deregister(service, 'a-1');
      await waitFor(() => ids(watch.latest() ?? []) === 'a-2,a-3', RECOVERY_DEADLINE_MS, 'the watcher to see the final state');
      expect(ids(await observer.lookup(service))).toBe('a-2,a-3');
      // And the final state holds for longer than a TTL: heartbeats kept what is alive.
      await sleep(TTL_MS * 1.5);
      expect(ids(await observer.lookup(service))).toBe('a-2,a-3');
      expect(watch.latest()!.find((i) => i.id === 'a-3')).toMatchObject({ port: 4003, service });
    });
  }
});

describe('backend down at check / register time', () => {
  const cases: { name: string; make(port: number): DiscoveryBackend; address(port: number): string }[] = [
    {
      name: 'etcd',
      make: (port) => createEtcdBackend(config({ etcdEndpoints: [`http://127.0.0.1:${port}`] })),
      address: (port) => `127.0.0.1:${port}`,
    },
    {
      name: 'nats',
      make: (port) => createNatsBackend(config({ natsUrl: `nats://127.0.0.1:${port}` })),
      address: (port) => `127.0.0.1:${port}`,
    },
  ];

  for (const c of cases) {
    test(`${c.name}: nothing listening → UnreachableError (exit 3) naming the backend and address`, async () => {
      const port = await freePort();
      const backend = c.make(port);
      cleanups.push(() => backend.close());
      for (const attempt of [() => backend.check(), () => backend.register({ id: 'x-1', service: 'down', address: '127.0.0.1' })]) {
        const err = await attempt().then(
          () => undefined,
          (e: unknown) => e as UnreachableError,
        );
        expect(err).toBeInstanceOf(UnreachableError);
        expect(err?.exitCode).toBe(3);
        expect(err?.target).toBe(c.name);
        expect(err?.message).toContain(c.name);
        expect(err?.message).toContain(c.address(port));
      }
    });
  }

  test('etcd: a server that went away after connecting → UnreachableError on register', async () => {
    const server = await startEtcd();
    cleanups.push(() => server.destroy());
    const backend = createEtcdBackend(config({ etcdEndpoints: [server.endpoint] }));
    cleanups.push(() => backend.close());
    await backend.check();
    await server.stop();
    await expect(backend.register({ id: 'x-1', service: 'gone', address: '127.0.0.1' })).rejects.toBeInstanceOf(UnreachableError);
  });

  test('nats: a server that went away after connecting → UnreachableError on register', async () => {
    const server = await startNats();
    cleanups.push(() => server.destroy());
    const backend = createNatsBackend(config({ natsUrl: server.url }));
    cleanups.push(() => backend.close());
    await backend.check();
    await server.stop();
    await expect(backend.register({ id: 'x-1', service: 'gone', address: '127.0.0.1' })).rejects.toBeInstanceOf(UnreachableError);
  });
});
