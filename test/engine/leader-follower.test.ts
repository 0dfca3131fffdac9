/**
 * Leader-follower (issue 15), engine side: three hosts' supervisors in one process, each on its
 * own memory runtime and state folder, meeting in one shared discovery (a memory backend behind a
 * manager per host) and one election (test/helpers/election-double.ts), on one manual clock.
 * Exactly one leader runs the singleton, registered at its host's address under its term; a
 * leader that loses its term stops the singleton at once; the next leader removes the records of
 * an older term before it starts it; a dependent on another host follows it; writes of an old
 * term are refused.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StaleTermError } from '../../src/discovery/election.js';
import { createDiscoveryManager, type DiscoveryManager } from '../../src/discovery/manager.js';
import { createMemoryBackend } from '../../src/discovery/memory.js';
import { startStack, type StackController } from '../../src/engine/engine.js';
import { decodeLeaderRecord, LEADER_KEY, readLeadership, readLeadershipFile } from '../../src/engine/leadership-state.js';
import type { EngineEvent, LeaderEvent } from '../../src/engine/types.js';
import { buildGraph } from '../../src/graph/graph.js';
import { planStack } from '../../src/plan/plan.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import type { Profile } from '../../src/profile/types.js';
import { createMemoryRuntime, type MemoryRuntime } from '../../src/runtime/memory.js';
import { createManualClock } from '../../src/util/clock.js';
import { ElectionHub } from '../helpers/election-double.js';
import { memCheck, pace, tempDir, until } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const HOSTS = { a: { address: '10.0.0.1' }, b: { address: '10.0.0.2' }, c: { address: '10.0.0.3' } };

async function world() {
  const { dir, cleanup } = await tempDir('engine-leader-');
  cleanups.push(cleanup);
  return { dir, clock: createManualClock(), backend: createMemoryBackend(), hub: new ElectionHub(), log: [] as { host: string; e: EngineEvent }[] };
}
type World = Awaited<ReturnType<typeof world>>;

/** `sched`: the singleton (after `db` on a); `api` on b needs it; `setup`: a singleton task, which `worker` on c needs. */
function profileOf(w: World, schedNeeds: string[] = ['db']): Profile {
  const svc = (s: Record<string, unknown>) => ({ command: [process.execPath], stopGracePeriod: '1s', ...s });
  return mkDeploymentProfile(
    {
      name: 'lf',
      runtime: 'process',
      coordination: { strategy: 'leader-follower', dependencyTimeout: '10s' },
      discovery: { backend: 'etcd', ttl: '3s', heartbeatInterval: '1s' }, // validated as electing; the runs get the test's double
      hosts: HOSTS,
      services: {
        db: svc({ host: 'a', port: 5432, healthCheck: memCheck({ port: 5432 }) }),
        sched: svc({ singleton: true, port: 7000, dependencies: schedNeeds, healthCheck: memCheck({ port: 7000 }) }),
        api: svc({ host: 'b', port: 8080, dependencies: ['sched'], healthCheck: memCheck({ port: 8080 }) }),
        setup: svc({ kind: 'task', singleton: true }), // run by the leader; its completion is registered
        worker: svc({ host: 'c', dependencies: ['setup'] }),
      },
    } as never,
    { cwd: w.dir },
  );
}

interface HostRun {
  host: string;
  runtime: MemoryRuntime;
  discovery: DiscoveryManager;
  controller: StackController;
  stateDir: string;
}

function startHost(w: World, profile: Profile, host: string): HostRun {
  const runtime = createMemoryRuntime({ clock: w.clock, script: (service) => (service === 'setup' ? { exitAfterMs: 50 } : {}) });
  const discovery = createDiscoveryManager({ backends: [w.backend], ownsBackends: false, clock: w.clock, cacheTtlMs: 0 });
  const stateDir = path.join(w.dir, host);
  const { graph } = buildGraph(profile);
  const controller = startStack(
    { profile, graph, plan: planStack(profile, graph, { host }) },
    {
      runtimes: { process: runtime },
      clock: w.clock,
      strategyFor: () => runtime.health,
      discovery,
      stateDir,
      election: async ({ candidate }) => w.hub.join(candidate),
      onEvent: (e) => w.log.push({ host, e }),
    },
  );
  cleanups.push(async () => {
    await pace(w.clock, controller.stop());
    await discovery.close();
  });
  return { host, runtime, discovery, controller, stateDir };
}

const running = (runs: HostRun[], service: string) => runs.filter((r) => r.runtime.current(service) !== undefined).map((r) => r.host);
const leaderEvents = (w: World, host?: string) =>
  w.log.filter((l) => l.e.type === 'leader' && (host === undefined || l.host === host)).map((l) => l.e as LeaderEvent);

describe('leader-follower on one election and one discovery', () => {
  it('exactly one leader runs the singleton, at its address, under its term; a dependent on another host gates on it', async () => {
    const w = await world();
    const profile = profileOf(w);
    const runs = ['a', 'b', 'c'].map((h) => startHost(w, profile, h));
    const reports = await pace(w.clock, Promise.all(runs.map((r) => r.controller.ready)));
    expect(reports.map((r) => r.outcome)).toEqual(['up', 'up', 'up']);
    await until(w.clock, () => running(runs, 'sched').length === 1);

    const leader = w.hub.current!;
    expect(running(runs, 'sched')).toEqual([leader.leader.host]);
    expect(leader.leader).toMatchObject({ id: `${leader.leader.host}-${process.pid}`, address: HOSTS[leader.leader.host as 'a'].address });
    // One record for the whole stack: the leader's address, its host, its term.
    const records = await runs[0]!.discovery.lookup('sched');
    expect(records).toEqual([
      expect.objectContaining({
        id: 'lf-sched-0',
        address: HOSTS[leader.leader.host as 'a'].address,
        meta: expect.objectContaining({ stack: 'lf', host: leader.leader.host, term: String(leader.term) }),
      }),
    ]);
    // Each host ran its own share; api (on b) started after the singleton registered, wherever it runs.
    expect(
      runs.map((r) =>
        r.runtime
          .running()
          .map((i) => i.handle.service)
          .filter((s) => s !== 'sched'),
      ),
    ).toEqual([['db'], ['api'], ['worker']]);
    // The singleton task ran once, on the leader, and its completion is registered there: worker (on c) waited for it.
    expect(runs.flatMap((r) => r.runtime.instances.filter((i) => i.handle.service === 'setup').map(() => r.host))).toEqual([leader.leader.host]);
    expect((await runs[0]!.discovery.lookup('setup')).map((r) => [r.id, r.meta.host])).toEqual([['lf-setup-0', leader.leader.host]]);
    const setupDone = w.log.findIndex((l) => l.e.type === 'registered' && l.e.service === 'setup');
    const workerStarts = w.log.findIndex((l) => l.host === 'c' && l.e.type === 'state' && l.e.service === 'worker' && l.e.state === 'starting');
    expect(setupDone).toBeGreaterThanOrEqual(0);
    expect(setupDone).toBeLessThan(workerStarts);
    const registered = w.log.findIndex((l) => l.e.type === 'registered' && l.e.service === 'sched');
    const apiStarts = w.log.findIndex((l) => l.host === 'b' && l.e.type === 'state' && l.e.service === 'api' && l.e.state === 'starting');
    expect(registered).toBeGreaterThanOrEqual(0);
    expect(registered).toBeLessThan(apiStarts);

    // The leader's events say it won; the others name it. The leader record is written under its term.
    expect(leaderEvents(w, leader.leader.host).some((e) => e.change === 'elected' && e.term === leader.term)).toBe(true);
    for (const follower of runs.filter((r) => r.host !== leader.leader.host)) {
      expect(leaderEvents(w, follower.host).some((e) => e.change === 'observed' && e.leader?.id === leader.leader.id)).toBe(true);
      const file = await readLeadershipFile(follower.stateDir, 'lf');
      expect(file).toMatchObject({ role: 'follower', leader: { host: leader.leader.host }, term: leader.term });
    }
    expect(decodeLeaderRecord(w.hub.store.get(LEADER_KEY)?.value)).toMatchObject({ leader: { host: leader.leader.host }, term: leader.term, state: 'up' });
    // The leader's controller shows the singleton beside its own share.
    const leaderRun = runs.find((r) => r.host === leader.leader.host)!;
    expect(leaderRun.controller.status().find((s) => s.name === 'sched')).toMatchObject({ state: 'healthy' });
  });

  it('a leader that loses its term stops the singleton at once; the next starts it on its own host; the dependent follows; an old term cannot write', async () => {
    const w = await world();
    const profile = profileOf(w);
    const runs = ['a', 'b', 'c'].map((h) => startHost(w, profile, h));
    await pace(w.clock, Promise.all(runs.map((r) => r.controller.ready)));
    await until(w.clock, () => running(runs, 'sched').length === 1);
    const first = w.hub.current!;
    const old = runs.find((r) => r.host === first.leader.host)!;
    const apiStarts = () => runs[1]!.runtime.instances.filter((i) => i.handle.service === 'api').length;
    const apiBefore = apiStarts();

    // The leader stops hearing the backend: told first, it stops its singleton; then the next candidate leads.
    w.hub.cut(first.leader.id);
    await until(w.clock, () => w.hub.current !== null && running(runs, 'sched').length === 1 && running(runs, 'sched')[0] !== first.leader.host);
    const second = w.hub.current!;
    expect(second.term).toBeGreaterThan(first.term);
    expect(old.runtime.current('sched')).toBeUndefined();
    expect(running(runs, 'sched')).toEqual([second.leader.host]);
    expect(leaderEvents(w, first.leader.host).some((e) => e.change === 'stepped-down' && /unreachable/.test(e.reason ?? ''))).toBe(true);
    expect(leaderEvents(w, second.leader.host).find((e) => e.change === 'elected' && e.term === second.term)?.previous).toMatchObject({
      host: first.leader.host,
      term: first.term,
    });
    // Its record moved with it; api (on b) restarted against the new address (its required dependency moved).
    await until(
      w.clock,
      () =>
        runs
          .find((r) => r.host === second.leader.host)!
          .controller.status()
          .find((s) => s.name === 'sched')?.state === 'healthy',
    );
    const records = await runs[0]!.discovery.lookup('sched');
    expect(records.map((r) => [r.address, r.meta.host, r.meta.term])).toEqual([
      [HOSTS[second.leader.host as 'a'].address, second.leader.host, String(second.term)],
    ]);
    await until(w.clock, () => apiStarts() > apiBefore && runs[1]!.controller.status().find((s) => s.name === 'api')?.state === 'healthy');

    // A write under the old term is refused; the leader record stays the new leader's.
    const stale = w.hub.join({ id: first.leader.id, host: first.leader.host, address: first.leader.address });
    await expect(stale.fencedWrite(LEADER_KEY, '{"stale":true}', first.term)).rejects.toBeInstanceOf(StaleTermError);
    expect(decodeLeaderRecord(w.hub.store.get(LEADER_KEY)?.value)).toMatchObject({ leader: { host: second.leader.host }, term: second.term });

    // What `stack status` reads, from a follower's folder and the election: the leader, its term, when it took over, the followers.
    const follower = runs.find((r) => r.host !== second.leader.host)!;
    const view = await readLeadership({
      profile,
      stateDir: follower.stateDir,
      reader: { leader: () => stale.leader(), leaderRecord: async () => (await stale.fencedRead(LEADER_KEY))?.value },
      discovery: follower.discovery,
    });
    expect(view).toMatchObject({
      source: 'election',
      leader: { host: second.leader.host },
      term: second.term,
      previous: { host: first.leader.host, term: first.term },
      singletons: ['sched', 'setup'],
      singletonsState: 'up',
      self: { host: follower.host, role: 'follower', alive: true },
    });
    expect(view.since).toMatch(/^\d{4}-/);
    expect(view.followers.map((f) => f.host).sort()).toEqual(['a', 'b', 'c'].filter((h) => h !== second.leader.host));
  });

  it('the new leader removes the singleton records of an older term from another host before it starts it', async () => {
    const w = await world();
    const profile = profileOf(w);
    // A leader of term 0 on host c is gone (its supervisor killed): its record lingers until its TTL.
    await w.backend.register({ id: 'lf-sched-0', service: 'sched', address: '10.0.0.3', port: 7000, meta: { stack: 'lf', host: 'c', term: '0' } });
    const a = startHost(w, profile, 'a');
    await pace(w.clock, a.controller.ready);
    await until(w.clock, () => a.controller.status().find((s) => s.name === 'sched')?.state === 'healthy');
    const fenced = leaderEvents(w, 'a').find((e) => e.change === 'fenced');
    expect(fenced?.reason).toMatch(/sched \(lf-sched-0 on host 'c', term 0\)/);
    // Fenced before it started: the event comes before the singleton's start.
    const startedAt = w.log.findIndex((l) => l.e.type === 'state' && l.e.service === 'sched' && l.e.state === 'starting');
    expect(w.log.findIndex((l) => l.e.type === 'leader' && l.e.change === 'fenced')).toBeLessThan(startedAt);
    expect((await a.discovery.lookup('sched')).map((r) => r.meta.host)).toEqual(['a']);
  });

  it('a fenced write that the backend does not answer once does not stop healthy singletons (only a stale or lost term does)', async () => {
    const w = await world();
    const profile = profileOf(w, []);
    w.hub.failWriteOnce = (value) => value.includes('"state":"up"');
    const a = startHost(w, profile, 'a');
    await pace(w.clock, a.controller.ready);
    await until(w.clock, () => w.log.some((l) => l.e.type === 'warning' && l.e.message.includes('could not record the singletons')));
    const first = a.runtime.current('sched');
    expect(first).toBeDefined();
    await pace(w.clock, new Promise((resolve) => setTimeout(resolve, 200)));
    expect(a.runtime.current('sched')).toBe(first); // the same instance: never stopped and started again
    expect(w.hub.current?.leader.host).toBe('a');
    expect(leaderEvents(w, 'a').filter((e) => e.change === 'elected')).toHaveLength(1);
  });

  it('stopping the leader hands the term over at once: its singleton stops first, the next leader starts it', async () => {
    const w = await world();
    const profile = profileOf(w, []);
    const a = startHost(w, profile, 'a');
    await pace(w.clock, a.controller.ready);
    await until(w.clock, () => a.runtime.current('sched') !== undefined);
    const c = startHost(w, profile, 'c');
    await pace(w.clock, c.controller.ready);
    expect(w.hub.current?.leader.host).toBe('a');
    await pace(w.clock, a.controller.stop());
    expect(a.runtime.current('sched')).toBeUndefined();
    expect(leaderEvents(w, 'a').some((e) => e.change === 'resigned')).toBe(true);
    await until(w.clock, () => c.runtime.current('sched') !== undefined);
    expect(w.hub.current?.leader.host).toBe('c');
    expect((await c.discovery.lookup('sched')).map((r) => r.meta.host)).toEqual(['c']);
  });
});
