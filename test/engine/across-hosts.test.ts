/**
 * A stack across hosts, seen and stopped from any host, through the library: two `stack up`s of
 * one profile (each its own working directory and state folder, each running its host's share)
 * share a real etcd. `stackStatus` on either, or on a machine running nothing, lists every
 * instance on every host; `downAllHosts` asks both to stop their share through discovery and
 * waits until nothing of the stack is registered. Services run on in-memory runtimes (one per
 * host); the same through the CLI on network-namespace hosts is test/multihost/.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDiscovery } from '../../src/discovery/index.js';
import { fixedRuntimeSet } from '../../src/engine/runtimes.js';
import { downAllHosts, stackStatus, upStack } from '../../src/engine/stack.js';
import { CONTROL_SERVICE, publishDownRequest, watchDownRequests } from '../../src/engine/supervisor.js';
import type { StackController } from '../../src/engine/engine.js';
import { buildGraph } from '../../src/graph/graph.js';
import { planStack } from '../../src/plan/plan.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import type { Profile } from '../../src/profile/types.js';
import { createMemoryRuntime, type MemoryRuntime } from '../../src/runtime/memory.js';
import { realClock } from '../../src/util/clock.js';
import { startEtcd, type EtcdServer } from '../fixtures/etcd.js';
import { tempDir } from './helpers.js';

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
}, 60_000);
afterAll(async () => {
  await etcd?.destroy();
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

let counter = 0;
async function setup() {
  const { dir, cleanup } = await tempDir('across-');
  cleanups.push(cleanup);
  const name = `acr${++counter}`;
  const profile = mkDeploymentProfile(
    {
      name,
      runtime: 'process',
      // Addresses only: nothing here connects to them (the services run in memory).
      hosts: { a: { address: '10.231.9.11' }, b: { address: '10.231.9.12' } },
      coordination: { strategy: 'peer-to-peer' },
      discovery: { backend: 'etcd', etcdEndpoints: [etcd.endpoint], etcdPrefix: `/${name}`, ttl: '2s', heartbeatInterval: '300ms' },
      services: {
        db: { command: [process.execPath], host: 'a', port: 5432 },
        cache: { command: [process.execPath], host: 'a' },
        api: { command: [process.execPath], host: 'b', port: 8080 },
        web: { command: [process.execPath], host: 'b' },
      },
    } as never,
    { cwd: dir },
  );
  return { dir, profile };
}

/** One host's `stack up`: only the services placed on it, in its own folder. */
async function upOn(
  profile: Profile,
  dir: string,
  host: string,
  services: string[],
): Promise<{ controller: StackController; runtime: MemoryRuntime; cwd: string }> {
  const runtime = createMemoryRuntime({ clock: realClock });
  const cwd = path.join(dir, host);
  const { graph } = buildGraph(profile);
  const controller = upStack(
    { profile, graph, plan: planStack(profile, graph, { services }) },
    { cwd, runtimes: fixedRuntimeSet({ process: runtime }), settleMs: 10, host },
  );
  cleanups.push(() => controller.stop());
  expect((await controller.ready).outcome).toBe('up');
  return { controller, runtime, cwd };
}

describe('a stack across hosts, from any host', () => {
  it('status lists every instance on every host: this host’s from its state, the others’ from discovery, with the age of their heartbeat', async () => {
    const { dir, profile } = await setup();
    const a = await upOn(profile, dir, 'a', ['db']); // cache is placed on a but not started
    const b = await upOn(profile, dir, 'b', ['api', 'web']);

    const fromA = await stackStatus(profile, { cwd: a.cwd, host: 'a', runtimes: fixedRuntimeSet({ process: a.runtime }) });
    expect(fromA.hosts!.instances.map((i) => [i.service, i.host, i.source, i.state])).toEqual([
      ['api', 'b', 'discovery', 'registered'],
      ['cache', 'a', 'missing', 'not registered'],
      ['db', 'a', 'local', 'healthy'],
      ['web', 'b', 'discovery', 'registered'],
    ]);
    const api = fromA.hosts!.instances.find((i) => i.service === 'api')!;
    expect(api).toMatchObject({ address: '10.231.9.12', port: 8080, health: 'passing' });
    for (const i of fromA.hosts!.instances.filter((x) => x.source !== 'missing')) {
      // etcd's list() gives each record its lease's expiry, so every instance has an age (status clamps it to [0, ttl]).
      expect(i.heartbeatAgeMs).toEqual(expect.any(Number));
    }
    expect(fromA.hosts!.instances.find((i) => i.service === 'db')!.local).toMatchObject({ restarts: 0 });

    // A machine that runs nothing of it sees the whole stack too.
    const elsewhere = await stackStatus(profile, {
      cwd: path.join(dir, 'c'),
      runtimes: fixedRuntimeSet({ process: createMemoryRuntime({ clock: realClock }) }),
    });
    expect(elsewhere.empty).toBe(false);
    expect(elsewhere.hosts!.instances.filter((i) => i.source === 'discovery').map((i) => `${i.service}@${i.host}`)).toEqual(['api@b', 'db@a', 'web@b']);
    void b;
  });

  it('down --all-hosts asks every host’s `stack up` to stop its share, waits until nothing is registered, and removes the request', async () => {
    const { dir, profile } = await setup();
    const a = await upOn(profile, dir, 'a', ['db', 'cache']);
    const b = await upOn(profile, dir, 'b', ['api', 'web']);
    const progress: string[][] = [];

    const report = await downAllHosts(profile, {
      cwd: path.join(dir, 'c'),
      runtimes: fixedRuntimeSet({ process: createMemoryRuntime({ clock: realClock }) }),
      onProgress: (remaining) => progress.push(remaining.map((r) => `${r.service}@${r.host}`)),
    });
    expect(report.registered.map((r) => `${r.service}@${r.host}`)).toEqual(['cache@a', 'db@a', 'api@b', 'web@b']);
    expect(report.remaining).toEqual([]);
    expect(progress.at(-1)).toEqual([]);
    await Promise.all([a.controller.done, b.controller.done]); // both stopped and exited
    expect(a.runtime.running()).toEqual([]);
    expect(b.runtime.running()).toEqual([]);

    const discovery = await createDiscovery(profile.discovery);
    cleanups.push(() => discovery.close());
    expect(await discovery.lookup(CONTROL_SERVICE)).toEqual([]);
    expect((await discovery.list()).filter((r) => r.meta.stack === profile.name)).toEqual([]);
  });

  it('a host whose `stack up` is gone: its registrations expire within the wait, and down on that host stops what its state folder holds', async () => {
    const { dir, profile } = await setup();
    const a = await upOn(profile, dir, 'a', ['db']);
    const b = await upOn(profile, dir, 'b', ['api']);
    await b.controller.detach(); // as if killed: services run on, heartbeats stop

    const report = await downAllHosts(profile, { cwd: b.cwd, host: 'b', runtimes: fixedRuntimeSet({ process: b.runtime }) });
    expect(report.remaining).toEqual([]);
    await a.controller.done;
    expect(a.runtime.running()).toEqual([]);
    expect(report.local?.services.map((s) => s.service)).toEqual(['api']);
    expect(b.runtime.running()).toEqual([]);
  });

  it('a `stack up` started after a request ignores it; one running before it stops', async () => {
    const { profile } = await setup();
    const discovery = await createDiscovery(profile.discovery);
    cleanups.push(() => discovery.close());
    const requestedAt = Date.now();
    await publishDownRequest(discovery, { stack: profile.name, requestedAt: new Date(requestedAt).toISOString(), by: 'test' }, 10_000);
    const seen: string[] = [];
    const before = watchDownRequests(discovery, profile.name, requestedAt - 1000, () => seen.push('before'));
    const after = watchDownRequests(discovery, profile.name, requestedAt + 1, () => seen.push('after'));
    const other = watchDownRequests(discovery, `${profile.name}x`, 0, () => seen.push('other stack'));
    cleanups.push(async () => [before, after, other].forEach((stop) => stop()));
    await expect.poll(() => seen, { timeout: 5000 }).toEqual(['before']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(seen).toEqual(['before']);
  });
});
