/**
 * One stack across hosts (issue 14), engine side: each host's run (`host` a, b, …) in one process,
 * every run on its own memory runtime and state folder, all meeting in ONE shared discovery (a
 * memory backend behind one manager per host, as every machine has its own client), on one manual
 * clock. Gates on another host's services (and external ones) open from discovery records; they
 * are bounded by dependencyTimeout; after startup, dependents react to records that vanish or come
 * back as to a local dependency; a mesh's `host: all` service is met locally or remotely.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiscoveryManager, type DiscoveryManager } from '../../src/discovery/manager.js';
import { createMemoryBackend } from '../../src/discovery/memory.js';
import { startStack, type StackController, type StartStackOptions } from '../../src/engine/engine.js';
import { createTemplateHooks } from '../../src/engine/templates.js';
import type { EngineEvent, ServiceState } from '../../src/engine/types.js';
import { buildGraph } from '../../src/graph/graph.js';
import { planStack } from '../../src/plan/plan.js';
import { profileOnHost } from '../../src/plan/hosts.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import type { Profile } from '../../src/profile/types.js';
import { createMemoryRuntime, type MemoryRuntime, type MemoryScript } from '../../src/runtime/memory.js';
import { createManualClock } from '../../src/util/clock.js';
import { memCheck, pace, tempDir, until } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const HOSTS = { a: { address: '10.0.0.1' }, b: { address: '10.0.0.2' }, c: { address: '10.0.0.3' } };

interface Logged {
  host: string;
  e: EngineEvent;
}

/** Everything the hosts of one test share: the clock, discovery, the log. */
async function world() {
  const { dir, cleanup } = await tempDir('engine-hosts-');
  cleanups.push(cleanup);
  const clock = createManualClock();
  const backend = createMemoryBackend();
  const log: Logged[] = [];
  return { dir, clock, backend, log };
}
type World = Awaited<ReturnType<typeof world>>;

function profileOf(w: World, name: string, services: Record<string, Record<string, unknown>>, extra: Record<string, unknown> = {}): Profile {
  const withCommands = Object.fromEntries(
    Object.entries(services).map(([n, s]) => [n, s.external ? s : { command: [process.execPath], stopGracePeriod: '1s', ...s }]),
  );
  return mkDeploymentProfile(
    {
      name,
      runtime: 'process',
      coordination: { strategy: 'peer-to-peer', dependencyTimeout: '10s' },
      discovery: { backend: 'etcd' }, // validated as shared; the runs get the test's shared memory backend
      hosts: HOSTS,
      services: withCommands,
      ...extra,
    } as never,
    { cwd: w.dir },
  );
}

interface HostRun {
  name: string;
  runtime: MemoryRuntime;
  discovery: DiscoveryManager;
  controller: StackController;
  stateDir: string;
  status(service: string): ReturnType<StackController['status']>[number];
}

/** Start one host's run of `profile` (`host` undefined: a profile without hosts), logging into the world's log. */
async function startHost(
  w: World,
  profile: Profile,
  host: string | undefined,
  opts: { script?: (service: string, attempt: number) => MemoryScript; stateDir?: string; templates?: boolean; more?: Partial<StartStackOptions> } = {},
): Promise<HostRun> {
  const label = host ?? profile.name;
  const runtime = createMemoryRuntime({ clock: w.clock, ...(opts.script ? { script: opts.script } : {}) });
  const discovery = createDiscoveryManager({ backends: [w.backend], ownsBackends: false, clock: w.clock, cacheTtlMs: 0 });
  const stateDir = opts.stateDir ?? path.join(w.dir, `${profile.name}-${label}`);
  const { graph } = buildGraph(profile);
  const plan = planStack(profile, graph, host !== undefined ? { host } : {});
  const local = profileOnHost(profile, host);
  const hooks = opts.templates
    ? await createTemplateHooks(
        local,
        plan.services.map((s) => s.name),
        { stateDir, cwd: w.dir, discovery },
      )
    : undefined;
  const controller = startStack(
    { profile, graph, plan },
    {
      runtimes: { process: runtime },
      clock: w.clock,
      strategyFor: () => runtime.health,
      discovery,
      stateDir,
      onEvent: (e) => w.log.push({ host: label, e }),
      ...(hooks ? { renderConfigs: hooks.renderConfigs, rerender: hooks.rerender } : {}),
      ...opts.more,
    },
  );
  cleanups.push(async () => {
    await pace(w.clock, controller.stop());
    await discovery.close();
  });
  return {
    name: label,
    runtime,
    discovery,
    controller,
    stateDir,
    status: (service) => controller.status().find((s) => s.name === service) ?? ({ state: 'pending' } as never),
  };
}

/** Index of the first event of `host` matching. */
const indexOf = (w: World, host: string, match: (e: EngineEvent) => boolean) => w.log.findIndex((l) => l.host === host && match(l.e));
const stateIs = (service: string, state: ServiceState) => (e: EngineEvent) => e.type === 'state' && e.service === service && e.state === state;

describe('peer-to-peer: each host starts its own share, gated on the others through discovery', () => {
  it('a chain over three hosts starts in dependency order across hosts, whichever host starts first', async () => {
    const w = await world();
    const profile = profileOf(w, 'chain', {
      db: { host: 'a', port: 5432, healthCheck: memCheck({ port: 5432 }) },
      api: { host: 'b', port: 8080, dependencies: ['db'], healthCheck: memCheck({ port: 8080 }) },
      web: { host: 'c', port: 80, dependencies: ['api'], healthCheck: memCheck({ port: 80 }) },
    });
    // The last of the chain first: it waits.
    const c = await startHost(w, profile, 'c');
    const b = await startHost(w, profile, 'b', { script: () => ({ readyAfterMs: 500 }) });
    await until(w.clock, () => c.status('web').state === 'waiting' && b.status('api').state === 'waiting');
    expect(c.runtime.instances).toHaveLength(0);
    const a = await startHost(w, profile, 'a', { script: () => ({ readyAfterMs: 300 }) });
    const reports = await pace(w.clock, Promise.all([a.controller.ready, b.controller.ready, c.controller.ready]));
    expect(reports.map((r) => r.outcome)).toEqual(['up', 'up', 'up']);
    // Each host ran only its own service.
    expect(a.runtime.instances.map((i) => i.handle.service)).toEqual(['db']);
    expect(b.runtime.instances.map((i) => i.handle.service)).toEqual(['api']);
    expect(c.runtime.instances.map((i) => i.handle.service)).toEqual(['web']);
    // In order across hosts: db registered on a before api started on b, api registered before web started on c.
    const dbUp = indexOf(w, 'a', (e) => e.type === 'registered' && e.service === 'db');
    const apiStarts = indexOf(w, 'b', stateIs('api', 'starting'));
    const apiUp = indexOf(w, 'b', (e) => e.type === 'registered' && e.service === 'api');
    const webStarts = indexOf(w, 'c', stateIs('web', 'starting'));
    expect(dbUp).toBeGreaterThanOrEqual(0);
    expect(dbUp).toBeLessThan(apiStarts);
    expect(apiUp).toBeLessThan(webStarts);
    // Registrations name their host: ids that cannot collide, the host's address, meta.stack and meta.host.
    const [db] = await a.discovery.lookup('db');
    expect(db).toMatchObject({ id: 'chain-db-a-0', address: '10.0.0.1', port: 5432, url: 'http://10.0.0.1:5432', meta: { stack: 'chain', host: 'a' } });
    expect((await a.discovery.lookup('web'))[0]).toMatchObject({ id: 'chain-web-c-0', address: '10.0.0.3', meta: { stack: 'chain', host: 'c' } });
  });

  it('a task on another host: its dependents start once it has completed there, and it stays met when its host goes away', async () => {
    const w = await world();
    const profile = profileOf(w, 'tasks', {
      db: { host: 'a', port: 5432, healthCheck: memCheck({ port: 5432 }) },
      init: { host: 'a', kind: 'task', dependencies: ['db'] },
      api: { host: 'b', port: 8080, dependencies: ['init', 'db'], healthCheck: memCheck({ port: 8080 }) },
    });
    const task = (service: string) => (service === 'init' ? { exitAfterMs: 500 } : {});
    const b = await startHost(w, profile, 'b');
    await until(w.clock, () => b.status('api').state === 'waiting');
    const a = await startHost(w, profile, 'a', { script: task });
    const reports = await pace(w.clock, Promise.all([a.controller.ready, b.controller.ready]));
    expect(reports.map((r) => r.outcome)).toEqual(['up', 'up']);
    // Completed on a (registered there, under an id naming its host) before api started on b.
    expect(indexOf(w, 'a', (e) => e.type === 'registered' && e.service === 'init')).toBeLessThan(indexOf(w, 'b', stateIs('api', 'starting')));
    expect((await b.discovery.lookup('init')).map((r) => [r.id, r.address, r.meta.host])).toEqual([['tasks-init-a-0', '10.0.0.1', 'a']]);
    // Host a's run goes: db's record vanishes and api is blocked for it, but not for the task, which stays done.
    await pace(w.clock, a.controller.stop());
    await until(w.clock, () => b.status('api').state === 'blocked');
    expect(b.status('api').reason).toContain("required dependency 'db' (on host 'a')");
    expect(w.log.filter((l) => l.host === 'b' && l.e.type === 'state' && l.e.reason?.includes("'init'"))).toEqual([]);
  });

  it('a task without hosts (no other host could wait for it) is not registered', async () => {
    const w = await world();
    const profile = profileOf(w, 'plain', { init: { kind: 'task' }, api: { dependencies: ['init'] } }, { hosts: undefined });
    const run = await startHost(w, profile, undefined, { script: (s) => (s === 'init' ? { exitAfterMs: 100 } : {}) });
    expect((await pace(w.clock, run.controller.ready)).outcome).toBe('up');
    expect(await run.discovery.lookup('init')).toEqual([]);
  });

  it('a dependency on another host that never appears blocks its dependents after dependencyTimeout, naming the host', async () => {
    const w = await world();
    const profile = profileOf(w, 'alone', {
      db: { host: 'a', port: 5432 },
      api: { host: 'b', dependencies: ['db'] },
      cache: { host: 'a' },
      worker: { host: 'b', dependencies: [{ name: 'cache', type: 'optional' }] },
    });
    const b = await startHost(w, profile, 'b');
    const report = await pace(w.clock, b.controller.ready);
    expect(report.outcome).toBe('failed');
    expect(report.blocked).toEqual([
      { service: 'api', reason: "requires 'db' (on host 'a'), which had no passing record in discovery for dependencyTimeout (10000 ms)" },
    ]);
    // An optional one starts anyway, with a warning saying where it was looked for.
    expect(report.warnings.join('\n')).toContain("optional dependency 'cache' (on host 'a') had no passing record");
    expect(b.runtime.instances.map((i) => i.handle.service)).toEqual(['worker']);
  });

  it("only this stack's records, from the host the service is placed on, open the gate", async () => {
    const w = await world();
    const profile = profileOf(w, 'strict', { db: { host: 'a', port: 5432 }, api: { host: 'b', dependencies: ['db'] } });
    // Someone else's db (another stack), and a leftover of this stack from host c: neither counts.
    await w.backend.register({ id: 'other-db-a-0', service: 'db', address: '10.0.0.9', meta: { stack: 'other', host: 'a' } });
    await w.backend.register({ id: 'strict-db-c-0', service: 'db', address: '10.0.0.3', meta: { stack: 'strict', host: 'c' } });
    const b = await startHost(w, profile, 'b');
    const report = await pace(w.clock, b.controller.ready);
    expect(report.blocked.map((x) => x.service)).toEqual(['api']);
  });

  it('after startup: records that vanish and come back within dependencyTimeout restart the dependents; gone longer, they are blocked until back', async () => {
    const w = await world();
    const profile = profileOf(w, 'cut', {
      db: { host: 'a', port: 5432 },
      api: { host: 'b', dependencies: ['db'] },
      web: { host: 'b', dependencies: ['api'] },
    });
    const a = await startHost(w, profile, 'a');
    const b = await startHost(w, profile, 'b');
    const reports = await pace(w.clock, Promise.all([a.controller.ready, b.controller.ready]));
    expect(reports.map((r) => r.outcome)).toEqual(['up', 'up']);
    const apiStarts = () => b.runtime.instances.filter((i) => i.handle.service === 'api').length;

    // Host a is cut off: its supervisor is gone (no heartbeat), its registration expires.
    await pace(w.clock, a.controller.detach());
    await w.backend.deregister('db', 'cut-db-a-0');
    await w.clock.advance(4_000);
    expect(b.status('api').state).toBe('healthy');
    // Back within dependencyTimeout (a new supervisor on a registers it again): api restarts, as after a local restart.
    const a2 = await startHost(w, profile, 'a', { stateDir: a.stateDir });
    await pace(w.clock, a2.controller.ready);
    await until(w.clock, () => apiStarts() === 2 && b.status('api').state === 'healthy');
    expect(w.log.some((l) => l.host === 'b' && l.e.type === 'reload' && l.e.service === 'api' && /'db' \(on host 'a'\) is back/.test(l.e.reason))).toBe(true);

    // Cut off for longer than dependencyTimeout: api, and web after it, are blocked, with the reason.
    await pace(w.clock, a2.controller.detach());
    await w.backend.deregister('db', 'cut-db-a-0');
    await until(w.clock, () => b.status('web').state === 'blocked');
    expect(b.status('api')).toMatchObject({
      state: 'blocked',
      reason: "required dependency 'db' (on host 'a') has had no passing record in discovery for longer than dependencyTimeout (10000 ms)",
    });
    expect(b.runtime.current('api')).toBeUndefined();
    // The link heals: both start again.
    const a3 = await startHost(w, profile, 'a', { stateDir: a.stateDir });
    await pace(w.clock, a3.controller.ready);
    await until(w.clock, () => b.status('web').state === 'healthy' && b.status('api').state === 'healthy');
    expect(apiStarts()).toBe(3);
  });

  it("templates carry another host's address (and its host's name)", async () => {
    const w = await world();
    const profile = profileOf(w, 'tpl', {
      db: { host: 'a', port: 5432 },
      api: {
        host: 'b',
        dependencies: ['db'],
        templates: [{ destination: 'api.env', data: { DB: '{{service.db.url}}', DB_HOST: '{{service.db.meta.host}}' } }],
      },
    });
    const a = await startHost(w, profile, 'a');
    const b = await startHost(w, profile, 'b', { templates: true });
    await pace(w.clock, Promise.all([a.controller.ready, b.controller.ready]));
    expect(await readFile(path.join(b.stateDir, 'config', 'api', 'api.env'), 'utf8')).toBe('DB=http://10.0.0.1:5432\nDB_HOST=a\n');
  });
});

describe('registrations across hosts', () => {
  it('two runs claiming one host collide loudly; a new run of the same host (same state folder) takes its records over', async () => {
    const w = await world();
    const profile = profileOf(w, 'claim', { db: { host: 'a', port: 5432 } });
    const first = await startHost(w, profile, 'a');
    const firstReport = await pace(w.clock, first.controller.ready);
    expect(firstReport.outcome, JSON.stringify(firstReport)).toBe('up');
    // Another machine that also thinks it is host a: its own state folder, its own claim.
    const impostor = await startHost(w, profile, 'a', { stateDir: path.join(w.dir, 'elsewhere') });
    const clash = await pace(w.clock, impostor.controller.ready);
    expect(clash.outcome, JSON.stringify(clash)).toBe('failed');
    expect(clash.failed[0]).toMatchObject({ service: 'db', reason: expect.stringContaining("its registration 'claim-db-a-0' is held by another host") });
    expect((await first.discovery.lookup('db')).map((r) => r.meta.claim)).toHaveLength(1);
    // The same host again (its supervisor relieved, its record still alive): taken over, not a clash.
    await pace(w.clock, first.controller.detach());
    const again = await startHost(w, profile, 'a', { stateDir: first.stateDir });
    const againReport = await pace(w.clock, again.controller.ready);
    expect(againReport.outcome, JSON.stringify(againReport.failed)).toBe('up');
    expect((await again.discovery.lookup('db')).map((r) => r.id)).toEqual(['claim-db-a-0']);
  });

  it('a service bound to loopback on its host is not registered where other hosts would look (said once)', async () => {
    const w = await world();
    const profile = profileOf(w, 'lo', { side: { host: 'a', address: '127.0.0.1', port: 9000 }, db: { host: 'a', port: 5432 } });
    const a = await startHost(w, profile, 'a');
    const report = await pace(w.clock, a.controller.ready);
    expect(report.outcome).toBe('up');
    expect(report.warnings).toEqual(["side: bound to loopback (127.0.0.1) on host 'a': not registered where other hosts would look"]);
    expect(await a.discovery.lookup('side')).toEqual([]);
    expect((await a.discovery.lookup('db')).map((r) => r.id)).toEqual(['lo-db-a-0']);
  });

  it('a profile without hosts keeps its ids and meta', async () => {
    const w = await world();
    const profile = profileOf(w, 'plain', { db: { port: 5432 } }, { hosts: undefined, coordination: { dependencyTimeout: '10s' } });
    const one = await startHost(w, profile, undefined);
    await pace(w.clock, one.controller.ready);
    const [db] = await one.discovery.lookup('db');
    expect(db).toMatchObject({ id: 'plain-db-0', address: '127.0.0.1', meta: { stack: 'plain' } });
    expect(db!.meta.host).toBeUndefined();
  });
});

describe('mesh: host: all runs on every host', () => {
  const mesh = (w: World) =>
    profileOf(
      w,
      'mesh',
      {
        relay: { host: 'all', port: 7000, restart: 'no', healthCheck: memCheck({ port: 7000 }) },
        app: {
          host: 'all',
          dependencies: ['relay'],
          templates: [{ destination: 'peers.env', data: { PEERS: '{{#each service.relay.instances}}{{url}} {{/each}}' } }],
        },
      },
      { coordination: { strategy: 'mesh', dependencyTimeout: '10s' } },
    );

  it('every member registers at its own host and is configured with all its peers', async () => {
    const w = await world();
    const profile = mesh(w);
    const a = await startHost(w, profile, 'a', { templates: true });
    const b = await startHost(w, profile, 'b', { templates: true });
    await pace(w.clock, Promise.all([a.controller.ready, b.controller.ready]));
    expect((await a.discovery.lookup('relay')).map((r) => `${r.id}@${r.address}`)).toEqual(['mesh-relay-a-0@10.0.0.1', 'mesh-relay-b-0@10.0.0.2']);
    const peers = (run: HostRun) => readFile(path.join(run.stateDir, 'config', 'app', 'peers.env'), 'utf8');
    // Either app may start once one relay is registered (a mesh dependency is met by any healthy
    // instance); each re-renders as the other registers, until both list both.
    const both = "PEERS='http://10.0.0.1:7000 http://10.0.0.2:7000 '\n";
    const rendered = (run: HostRun) => {
      try {
        return readFileSync(path.join(run.stateDir, 'config', 'app', 'peers.env'), 'utf8');
      } catch {
        return undefined;
      }
    };
    await until(w.clock, () => rendered(a) === both && rendered(b) === both);
    for (const run of [a, b]) expect(await peers(run)).toBe(both);
  });

  it("a dependent restarted after the local instance died is configured with the live peers only, not the dead one's address", async () => {
    const w = await world();
    const profile = mesh(w);
    const a = await startHost(w, profile, 'a', { templates: true });
    const b = await startHost(w, profile, 'b', { templates: true });
    await pace(w.clock, Promise.all([a.controller.ready, b.controller.ready]));
    const peers = () => readFile(path.join(a.stateDir, 'config', 'app', 'peers.env'), 'utf8');
    // b registered after a's start: a's app re-renders, and is restarted with the new file.
    const changed = () => w.log.findIndex((l) => l.host === 'a' && l.e.type === 'render' && l.e.service === 'app' && l.e.outcome === 'changed');
    const healthyAfter = (i: number) => i >= 0 && w.log.slice(i).some((l) => l.host === 'a' && stateIs('app', 'healthy')(l.e));
    await until(w.clock, () => healthyAfter(changed()));
    expect(await peers()).toBe("PEERS='http://10.0.0.1:7000 http://10.0.0.2:7000 '\n");
    const mark = w.log.length;
    a.runtime.crash('relay', { code: 1, signal: null });
    // Its record goes; app's file changes (b's relay only) and app is restarted: that start renders the same file.
    const restarted = () => w.log.slice(mark).some((l) => l.host === 'a' && l.e.type === 'state' && l.e.service === 'app' && l.e.state === 'healthy');
    await until(w.clock, restarted);
    expect(await peers()).toBe("PEERS='http://10.0.0.2:7000 '\n");
  });

  it('a host: all task prepares its own host: a dependent waits for its host’s run of it, not another’s', async () => {
    const w = await world();
    const profile = profileOf(
      w,
      'prep',
      { prep: { host: 'all', kind: 'task' }, app: { host: 'all', dependencies: ['prep'] } },
      { coordination: { strategy: 'mesh', dependencyTimeout: '10s' } },
    );
    const a = await startHost(w, profile, 'a', { script: (s) => (s === 'prep' ? { exitAfterMs: 100 } : {}) });
    expect((await pace(w.clock, a.controller.ready)).outcome).toBe('up');
    const b = await startHost(w, profile, 'b', { script: (s) => (s === 'prep' ? { exitAfterMs: 3000 } : {}) });
    expect((await pace(w.clock, b.controller.ready)).outcome).toBe('up');
    expect(indexOf(w, 'b', stateIs('prep', 'completed'))).toBeLessThan(indexOf(w, 'b', stateIs('app', 'starting')));
    expect(await b.discovery.lookup('prep')).toEqual([]);
  });

  it("killing one host's instance leaves its dependents served by the others", async () => {
    const w = await world();
    const profile = mesh(w);
    const a = await startHost(w, profile, 'a');
    const b = await startHost(w, profile, 'b');
    await pace(w.clock, Promise.all([a.controller.ready, b.controller.ready]));
    a.runtime.crash('relay', { code: 1, signal: null });
    await until(w.clock, () => a.status('relay').state === 'failed');
    await w.clock.advance(30_000); // far past dependencyTimeout
    expect(a.status('app').state).toBe('healthy');
    expect(a.runtime.current('app')).toBeDefined();
    // Once the others are gone too, it is down: app is blocked after dependencyTimeout.
    await pace(w.clock, b.controller.stop());
    await until(w.clock, () => a.status('app').state === 'blocked');
    expect(a.status('app').reason).toContain("required dependency 'relay' is down here and has had no passing record from another host");
  });
});

describe('external: a service of another stack', () => {
  it('a second stack waits for a service of the first and starts when it registers', async () => {
    const w = await world();
    const infra = profileOf(w, 'infra', { plc: { port: 2582 } }, { hosts: undefined, coordination: { dependencyTimeout: '30s' } });
    const app = profileOf(
      w,
      'app',
      {
        plc: { external: true, stack: 'infra' },
        pds: { dependencies: ['plc'], templates: [{ destination: 'pds.env', data: { PLC: '{{service.plc.url}}' } }] },
      },
      { hosts: undefined, coordination: { dependencyTimeout: '30s' } },
    );
    const second = await startHost(w, app, undefined, { templates: true });
    await until(w.clock, () => second.status('pds').state === 'waiting');
    await w.clock.advance(5_000);
    expect(second.runtime.instances).toHaveLength(0);
    // A plc of another stack does not count.
    await w.backend.register({ id: 'x-plc-0', service: 'plc', address: '10.9.9.9', port: 1, meta: { stack: 'x' } });
    await w.clock.advance(1_000);
    expect(second.status('pds').state).toBe('waiting');
    const first = await startHost(w, infra, undefined);
    const [one, two] = await pace(w.clock, Promise.all([first.controller.ready, second.controller.ready]));
    expect([one.outcome, two.outcome]).toEqual(['up', 'up']);
    expect(indexOf(w, 'infra', (e) => e.type === 'registered' && e.service === 'plc')).toBeLessThan(indexOf(w, 'app', stateIs('pds', 'starting')));
    // Never started here, and its address comes from discovery.
    expect(second.runtime.instances.map((i) => i.handle.service)).toEqual(['pds']);
    expect(await readFile(path.join(second.stateDir, 'config', 'pds', 'pds.env'), 'utf8')).toBe('PLC=http://127.0.0.1:2582\n');
  });
});
