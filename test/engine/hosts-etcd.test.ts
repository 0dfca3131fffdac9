/**
 * One stack across hosts on a real etcd (issue 14): each host's run is the library's `upStack`
 * with `host`, its own state folder, its own memory runtime and its own discovery client (created
 * from the profile, as `stack up` does), on the real clock. Gates across hosts open from etcd
 * watches, ids are claimed with etcd's create-if-absent transaction, and a host whose
 * registrations expire (its supervisor gone) blocks its dependents on the other host until it is
 * back. Nothing here asserts wall-clock times.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDiscovery } from '../../src/discovery/index.js';
import { upStack, type UpStackOptions } from '../../src/engine/stack.js';
import type { StackController } from '../../src/engine/engine.js';
import type { EngineEvent } from '../../src/engine/types.js';
import { buildGraph } from '../../src/graph/graph.js';
import { planStack } from '../../src/plan/plan.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import type { Profile } from '../../src/profile/types.js';
import { createMemoryRuntime, type MemoryRuntime } from '../../src/runtime/memory.js';
import { realClock } from '../../src/util/clock.js';
import { startEtcd, type EtcdServer } from '../fixtures/etcd.js';
import { tempDir } from './helpers.js';

let etcd: EtcdServer;
let dir: string;
let removeDir: () => Promise<void>;
const running: StackController[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  ({ dir, cleanup: removeDir } = await tempDir('engine-hosts-etcd-'));
});
afterAll(async () => {
  for (const c of running) await c.stop().catch(() => undefined);
  await etcd?.destroy();
  await removeDir?.();
});

function profileOf(name: string): Profile {
  return mkDeploymentProfile(
    {
      name,
      runtime: 'process',
      hosts: { a: { address: '10.0.0.1' }, b: { address: '10.0.0.2' } },
      coordination: { strategy: 'peer-to-peer', dependencyTimeout: '3s' },
      discovery: { backend: 'etcd', etcdEndpoints: [etcd.endpoint], ttl: '2s', heartbeatInterval: '500ms' },
      services: {
        db: { command: [process.execPath], host: 'a', port: 5432, stopGracePeriod: '1s' },
        api: {
          command: [process.execPath],
          host: 'b',
          dependencies: ['db'],
          stopGracePeriod: '1s',
          templates: [{ destination: 'api.env', data: { DB: '{{service.db.url}}' } }],
        },
      },
    } as never,
    { cwd: dir },
  );
}

interface Run {
  controller: StackController;
  runtime: MemoryRuntime;
  events: EngineEvent[];
  stateDir: string;
  next(match: (e: EngineEvent) => boolean): Promise<EngineEvent>;
}

function up(profile: Profile, host: string, stateDir = path.join(dir, `${profile.name}-${host}`), more: Partial<UpStackOptions> = {}): Run {
  const { graph } = buildGraph(profile);
  const runtime = createMemoryRuntime({ clock: realClock });
  const events: EngineEvent[] = [];
  const waiters = new Set<{ match: (e: EngineEvent) => boolean; resolve: (e: EngineEvent) => void }>();
  const controller = upStack(
    { profile, graph, plan: planStack(profile, graph) }, // planned for the whole stack: `host` narrows it
    {
      host,
      runtimes: { process: runtime },
      strategyFor: () => runtime.health,
      stateDir,
      cwd: dir,
      settleMs: 50,
      onEvent: (e) => {
        events.push(e);
        for (const w of waiters) {
          if (!w.match(e)) continue;
          waiters.delete(w);
          w.resolve(e);
        }
      },
      ...more,
    },
  );
  running.push(controller);
  const next = (match: (e: EngineEvent) => boolean) =>
    new Promise<EngineEvent>((resolve) => {
      const seen = events.find(match);
      if (seen) resolve(seen);
      else waiters.add({ match, resolve });
    });
  return { controller, runtime, events, stateDir, next };
}

const state = (service: string, s: string) => (e: EngineEvent) => e.type === 'state' && e.service === service && e.state === s;

describe('peer-to-peer on etcd', () => {
  it('a dependency on another host gates its dependent through etcd; the template carries that host', async () => {
    const profile = profileOf('p2p');
    const b = up(profile, 'b');
    await b.next(state('api', 'waiting'));
    expect(b.runtime.instances).toHaveLength(0);
    const a = up(profile, 'a');
    const [ra, rb] = await Promise.all([a.controller.ready, b.controller.ready]);
    expect([ra.outcome, rb.outcome]).toEqual(['up', 'up']);
    expect(a.runtime.instances.map((i) => i.handle.service)).toEqual(['db']);
    expect(b.runtime.instances.map((i) => i.handle.service)).toEqual(['api']);
    expect(await readFile(path.join(b.stateDir, 'config', 'api', 'api.env'), 'utf8')).toBe('DB=http://10.0.0.1:5432\n');

    const discovery = await createDiscovery(profile.discovery);
    try {
      expect((await discovery.lookup('db')).map((r) => ({ id: r.id, address: r.address, stack: r.meta.stack, host: r.meta.host }))).toEqual([
        { id: 'p2p-db-a-0', address: '10.0.0.1', stack: 'p2p', host: 'a' },
      ]);
    } finally {
      await discovery.close();
    }

    // Another machine claiming host a: etcd's transaction refuses the id, the service fails loudly.
    const impostor = up(profile, 'a', path.join(dir, 'impostor'));
    const clash = await impostor.controller.ready;
    expect(clash.outcome).toBe('failed');
    expect(clash.failed[0]?.reason).toContain("its registration 'p2p-db-a-0' is held by another host");

    // Host a's supervisor dies: its registration expires, b's api is blocked, naming host a.
    await a.controller.detach();
    const blocked = await b.next(state('api', 'blocked'));
    expect(blocked).toMatchObject({ reason: expect.stringContaining("required dependency 'db' (on host 'a') has had no passing record in discovery") });
    // Host a again (its own state folder): the same id, taken up again; api starts again.
    const a2 = up(profile, 'a', a.stateDir);
    expect((await a2.controller.ready).outcome).toBe('up');
    await b.next((e) => e.type === 'state' && e.service === 'api' && e.state === 'healthy' && b.runtime.instances.length === 2);
  });
});
