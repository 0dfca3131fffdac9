// The plan of one host of a stack across hosts (issue 14): its share, what it waits for elsewhere.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { buildGraph } from '../../src/graph/graph.js';
import { profileOnHost, resolveHost } from '../../src/plan/hosts.js';
import { planStack } from '../../src/plan/plan.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import type { Profile } from '../../src/profile/types.js';
import { healthTargetFor } from '../../src/runtime/target.js';
import type { Runtime } from '../../src/runtime/types.js';
import { createTcpStrategy } from '../../src/health/tcp.js';

function profile(strategy: string, services: Record<string, Record<string, unknown>>): Profile {
  return mkDeploymentProfile({
    name: 'spread',
    coordination: { strategy },
    discovery: { backend: 'etcd' },
    hosts: { edge: { address: '10.0.0.11' }, data: { address: '10.0.0.12' } },
    services: Object.fromEntries(Object.entries(services).map(([n, s]) => [n, s.external ? s : { command: ['x'], ...s }])),
  } as never);
}

const SERVICES = {
  db: { host: 'data', port: 5432 },
  migrate: { host: 'data', kind: 'task', dependencies: ['db'] },
  api: { host: 'edge', port: 80, dependencies: ['migrate', { name: 'auth', type: 'optional' }, { name: 'cache', type: 'soft' }] },
  cache: { host: 'edge' },
  relay: { host: 'all', port: 7000 },
  feed: { host: 'edge', dependencies: ['relay'] },
  auth: { external: true, stack: 'identity' },
  off: { host: 'data', enable: false },
};

describe('planStack with a host', () => {
  it("says a placed service's check probes its host's address, as the engine does", () => {
    const p = profile('mesh', {
      db: { host: 'data', port: 5432, healthCheck: { strategy: 'tcp' } },
      relay: { host: 'all', port: 7000, healthCheck: { strategy: 'tcp' } },
    });
    const whole = planStack(p, buildGraph(p).graph);
    expect(whole.services.find((s) => s.name === 'db')!.health).toContain('10.0.0.12:5432');
    expect(whole.services.find((s) => s.name === 'relay')!.health).toContain("each host's address");
    const edge = profileOnHost(p, 'edge');
    expect(planStack(edge, buildGraph(edge).graph, { host: 'edge' }).services.find((s) => s.name === 'relay')!.health).toContain('10.0.0.11:7000');
  });

  it("runs this host's services and host: all ones; the rest is remote (what it depends on) or skipped", () => {
    const p = profile('mesh', SERVICES);
    const plan = planStack(p, buildGraph(p).graph, { host: 'edge' });
    expect(plan.host).toBe('edge');
    expect(plan.services.map((s) => s.name).sort()).toEqual(['api', 'cache', 'feed', 'relay']);
    expect(plan.services.find((s) => s.name === 'relay')!.host).toBe('all');
    expect(plan.remote).toEqual([
      { service: 'auth', external: true, stack: 'identity', dependents: ['api'] },
      { service: 'migrate', host: 'data', dependents: ['api'] },
    ]);
    expect(plan.blocked).toEqual([]);
    expect(plan.skipped).toEqual(
      expect.arrayContaining([
        { service: 'db', reason: "runs on host 'data'" },
        { service: 'auth', reason: "external: run by stack 'identity'" },
        { service: 'off', reason: 'disabled (enable: false)' },
      ]),
    );
    // Edges to remote dependencies stay (the engine gates on them); waves are this host's only.
    expect(plan.edges.some((e) => e.from === 'api' && e.to === 'migrate')).toBe(true);
    expect(plan.order.flat().sort()).toEqual(['api', 'cache', 'feed', 'relay']);
  });

  it('without a host: the whole stack (external services never), each service with its host', () => {
    const p = profile('peer-to-peer', { db: { host: 'data' }, api: { host: 'edge', dependencies: ['db', 'auth'] }, auth: { external: true } });
    const plan = planStack(p, buildGraph(p).graph);
    expect(plan.host).toBeUndefined();
    expect(plan.services.map((s) => `${s.name}@${s.host}`)).toEqual(['db@data', 'api@edge']);
    expect(plan.remote).toEqual([{ service: 'auth', external: true, dependents: ['api'] }]);
  });

  it('hub-spoke: --host says where the hub runs; it still starts every service', () => {
    const p = profile('hub-spoke', { db: { host: 'data' }, api: { host: 'edge', dependencies: ['db'] } });
    const plan = planStack(p, buildGraph(p).graph, { host: 'edge' });
    expect(plan.services.map((s) => s.name)).toEqual(['db', 'api']);
    expect(plan.remote).toBeUndefined();
  });

  it('an unknown host is a usage error with a suggestion; peer-to-peer and mesh must be told which host this is', () => {
    const p = profile('peer-to-peer', { db: { host: 'data' } });
    expect(() => planStack(p, buildGraph(p).graph, { host: 'dat' })).toThrow(/unknown host 'dat': this profile's hosts are edge, data.*data/);
    expect(() => resolveHost(p, undefined, { required: true })).toThrow(UsageError);
    expect(() => resolveHost(p, undefined, { required: true })).toThrow(
      'this profile spans hosts edge, data: say which one this is with --host NAME or STACK_HOST',
    );
    expect(resolveHost(p, undefined)).toBeUndefined();
    expect(resolveHost(profile('hub-spoke', { db: { host: 'data' } }), undefined, { required: true })).toBeUndefined();
  });

  it('a host: all service is at the address of the host that runs it', () => {
    const p = profile('mesh', { relay: { host: 'all', port: 7000 }, pinned: { host: 'all', address: '10.9.9.9' } });
    expect(profileOnHost(p, 'data').services.relay!.address).toBe('10.0.0.12');
    expect(profileOnHost(p, 'edge').services.relay!.address).toBe('10.0.0.11');
    expect(profileOnHost(p, 'edge').services.pinned!.address).toBe('10.9.9.9');
    expect(profileOnHost(p, undefined)).toBe(p);
  });
});

describe('health probes of a service placed on a host', () => {
  const runtime = { endpoint: (_h: unknown, port: number) => ({ host: '127.0.0.1', port }), inspect: async () => ({ running: true }) } as unknown as Runtime;
  const handle = { id: 'x', service: 'db', runtime: 'process', replica: 0, startedAt: '' } as never;
  const p = profile('peer-to-peer', {
    db: { host: 'data', port: 5432, healthCheck: { strategy: 'tcp' } },
    lo: { host: 'data', address: '127.0.0.1', port: 1 },
  });

  it("go to the host's address (allowed although not loopback); a service bound to loopback stays on loopback", () => {
    const db = p.services.db!;
    const target = healthTargetFor(runtime, handle, db, db.healthCheck!, { profileDir: '/' });
    expect(target).toMatchObject({ host: '10.0.0.12', port: 5432, remoteAllowed: true });
    const lo = p.services.lo!;
    expect(healthTargetFor(runtime, handle, lo, { ...db.healthCheck!, port: 1 }, { profileDir: '/' })).toMatchObject({ host: '127.0.0.1' });
    expect(healthTargetFor(runtime, handle, lo, { ...db.healthCheck!, port: 1 }, { profileDir: '/' }).remoteAllowed).toBeUndefined();
  });

  it('any other non-loopback target stays refused', async () => {
    const tcp = createTcpStrategy();
    const check = p.services.db!.healthCheck!;
    expect(await tcp.probe(check, { host: '10.0.0.99', port: 1 }, AbortSignal.timeout(1000))).toMatchObject({
      ok: false,
      detail: expect.stringContaining('refusing'),
    });
  });
});

describe('leader-follower: a host share and the leader share', () => {
  const LF = {
    db: { host: 'data', port: 5432 },
    migrate: { kind: 'task', singleton: true, dependencies: ['db'] },
    sched: { singleton: true, port: 7000, ports: [7000], dependencies: ['migrate'] },
    api: { host: 'edge', port: 80, dependencies: ['sched'] },
  };

  it('normalises a singleton to run at the host it runs on: its address filled in there, published on every address', () => {
    const p = profile('leader-follower', LF);
    expect(p.services.sched).toMatchObject({
      singleton: true,
      addressFromHost: true,
      ports: [{ container: 7000, host: 7000, hostIp: '0.0.0.0', protocol: 'tcp' }],
    });
    expect(p.services.sched!.host).toBeUndefined();
    expect(profileOnHost(p, 'edge').services.sched!.address).toBe('10.0.0.11');
    expect(profileOnHost(p, 'data').services.sched!.address).toBe('10.0.0.12');
  });

  it("a host's share waits for the singletons on the leader's host; the leader's share runs them and waits for every other service where it is placed", () => {
    const p = profile('leader-follower', LF);
    const { graph } = buildGraph(p);
    const edge = planStack(p, graph, { host: 'edge' });
    expect(edge.services.map((s) => s.name)).toEqual(['api']);
    expect(edge.remote).toEqual([{ service: 'sched', leader: true, dependents: ['api'] }]);
    expect(edge.skipped).toEqual(
      expect.arrayContaining([
        { service: 'sched', reason: "a singleton: runs on the leader's host" },
        { service: 'migrate', reason: "a singleton: runs on the leader's host" },
      ]),
    );
    const leader = planStack(p, graph, { host: 'data', share: 'leader' });
    expect(leader.share).toBe('leader');
    expect(leader.order).toEqual([['migrate'], ['sched']]);
    expect(leader.services.every((s) => s.singleton)).toBe(true);
    // Its own host's db is met from discovery too: the host's share runs it.
    expect(leader.remote).toEqual([{ service: 'db', host: 'data', dependents: ['migrate'] }]);
    // Without a host (`stack plan`), the whole stack, singletons marked.
    expect(
      planStack(p, graph)
        .services.filter((s) => s.singleton)
        .map((s) => s.name),
    ).toEqual(['migrate', 'sched']);
  });
});
