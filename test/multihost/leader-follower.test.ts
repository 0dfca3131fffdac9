/**
 * Leader-follower across hosts (issue 15), for real: three hosts as network namespaces
 * (test/fixtures/hosts.ts), a `stack up --host` supervisor on each, real etcd and NATS (JetStream)
 * on the fixture's service address, and the Consul double (an agent per host, one catalog). The singleton (`sched`, an HTTP service) runs on the leader's
 * host only, registered at its address; `api` on host b waits for it through discovery.
 *
 * - exactly one leader, and the singleton on its host, registered there; `status` from a follower names it;
 * - kill -9 of the leader's supervisor (the pid this test spawned): a new leader, the singleton
 *   running again on its host, registered at its address; a write under the old term is refused;
 *   a supervisor started again on the old leader's host follows, and stops the instance its killed
 *   predecessor left running;
 * - the leader's host cut off: a new leader on the other side; healed: the old leader has stepped
 *   down and stopped its singleton, and from the heal on (sampled every 100 ms) there is never
 *   more than one registered record of the singleton, nor more than one instance answering.
 *
 * No wall-clock assertion: every wait is a bounded poll.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createElection, StaleTermError, type Election } from '../../src/discovery/election.js';
import { createDiscovery, type DiscoveryManager } from '../../src/discovery/index.js';
import { LEADER_KEY } from '../../src/engine/leadership-state.js';
import { loadProfile } from '../../src/profile/load.js';
import { fixture as HTTP_SERVICE } from '../engine/helpers.js';
import { startHosts, type HostProcess, type Hosts } from '../fixtures/hosts.js';
import { waitFor } from '../helpers/net.js';

let hosts: Hosts;
const NAMES = ['a', 'b', 'c'] as const;
type Name = (typeof NAMES)[number];

/** Consul: every host talks to an agent of its own (agents of the double sharing one catalog), as on a real cluster. */
const agents = new Map<Name, string>();

beforeAll(async () => {
  // Consul servers refuse session TTLs under session_ttl_min (10 s by default): lowered, as a cluster running a 2 s ttl would.
  hosts = await startHosts({ hosts: NAMES, services: ['etcd', 'nats', 'consul'], consul: { sessionTtlMinMs: 500 } });
  for (const n of NAMES) agents.set(n, n === 'a' ? hosts.consul!.address : (await hosts.consul!.addAgent({ host: hosts.serviceAddress })).address);
}, 60_000);

afterAll(async () => {
  if (!hosts) return;
  await hosts.stop();
  expect(await hosts.leftovers()).toEqual({ namespaces: [], links: [], processes: [] });
});

const TTL_MS = 2000;

type Backend = 'etcd' | 'nats' | 'consul';

function discoveryOf(backend: Backend, host: Name): Record<string, unknown> {
  const common = { ttl: `${TTL_MS}ms`, heartbeatInterval: '500ms' };
  if (backend === 'consul') return { backend: 'consul', consulAddress: agents.get(host), ...common };
  return backend === 'etcd'
    ? { backend: 'etcd', etcdEndpoints: [hosts.etcd!.endpoint], etcdPrefix: '/lf-e2e', ...common }
    : { backend: 'nats', natsUrl: hosts.nats!.url, natsBucket: 'lf-e2e', ...common };
}

function profileOf(stack: string, backend: Backend, host: Name) {
  const http = (port: number) => ({
    command: [process.execPath, HTTP_SERVICE],
    port,
    environment: { PORT: String(port), HOST: '0.0.0.0' },
    healthCheck: { strategy: 'http', endpoint: '/health', port, interval: '100ms', timeout: '1s', retries: 0 },
    stopGracePeriod: '2s',
  });
  return {
    name: stack,
    runtime: 'process',
    discovery: discoveryOf(backend, host),
    coordination: { strategy: 'leader-follower', dependencyTimeout: '30s' },
    hosts: Object.fromEntries(NAMES.map((n) => [n, { address: hosts.address(n) }])),
    services: {
      sched: { ...http(7000), singleton: true },
      api: { ...http(7100), host: 'b', dependencies: [{ name: 'sched', onDependencyRestart: 'rerender' }] },
    },
  };
}

/** The leader as the events of the supervisors say, and the election itself (asked from the test process). */
interface World {
  stack: string;
  discovery: DiscoveryManager;
  election: Election;
  ups: Map<Name, HostProcess>;
}

/** The registered records of this stack's singleton. */
async function records(w: World) {
  w.discovery.invalidate('sched');
  return (await w.discovery.lookup('sched')).filter((r) => r.meta.stack === w.stack);
}

/** Hosts where the singleton answers, from the test process (a host cut off does not answer). */
async function answering(): Promise<Name[]> {
  const probes = await Promise.all(
    NAMES.map((n) =>
      fetch(`http://${hosts.address(n)}:7000/health`, { signal: AbortSignal.timeout(300) }).then(
        (r) => (r.ok ? n : undefined),
        () => undefined,
      ),
    ),
  );
  return probes.filter((n): n is Name => n !== undefined);
}

/** Wait for a leader other than `not`, whose singleton is registered at its address and answers there. */
async function settledLeader(w: World, not?: Name): Promise<{ host: Name; term: number }> {
  return waitFor(
    async () => {
      const view = await w.election.leader().catch(() => null);
      if (!view || view.leader.host === not) return undefined;
      const regs = await records(w).catch(() => []);
      const host = view.leader.host as Name;
      if (regs.length !== 1 || regs[0]!.meta.host !== host || regs[0]!.address !== hosts.address(host)) return undefined;
      return (await answering()).includes(host) ? { host, term: view.term } : undefined;
    },
    45_000,
    `a leader${not ? ` other than ${not}` : ''} with its singleton registered and answering`,
  );
}

function startSupervisor(w: World, host: Name): HostProcess {
  const up = hosts.spawnStack(host, ['up', '--json', '-p', `${w.stack}.json`]);
  w.ups.set(host, up);
  return up;
}

describe.each(['etcd', 'nats', 'consul'] as const)('leader-follower on %s', (backend) => {
  const stack = `lf-${backend}`;
  let w: World;

  beforeAll(async () => {
    for (const n of NAMES) await writeFile(path.join(hosts.dir(n), `${stack}.json`), JSON.stringify(profileOf(stack, backend, n)));
    const config = loadProfile(path.join(hosts.dir('a'), `${stack}.json`)).discovery;
    w = {
      stack,
      discovery: await createDiscovery(config),
      election: await createElection(config, { stack, candidate: { id: 'probe', host: 'probe', address: hosts.serviceAddress } }),
      ups: new Map(),
    };
  });

  afterAll(async () => {
    if (!w) return;
    await Promise.all([...w.ups.values()].map((up) => up.stop()));
    for (const n of NAMES) await hosts.stack(n, ['down', '-p', `${stack}.json`, '--timeout', '2']);
    await w.election.close();
    await w.discovery.close();
  });

  it('one leader runs the singleton; kill -9 of its supervisor, then its host cut off, hand it over; never two at once after the heal', async () => {
    for (const n of NAMES) startSupervisor(w, n);
    await Promise.all(NAMES.map((n) => w.ups.get(n)!.waitForLine(/"type":"stack","stack":"[^"]+","phase":"up"/, 60_000)));
    const first = await settledLeader(w);
    expect(await answering()).toEqual([first.host]);
    expect(w.ups.get(first.host)!.stdout).toMatch(/"type":"leader".*"change":"elected"/);

    // `status` from a follower names the leader.
    const follower = NAMES.find((n) => n !== first.host)!;
    const status = await hosts.stack(follower, ['status', '-p', `${stack}.json`, '--json']);
    expect(status.code).toBe(0);
    const view = JSON.parse(status.stdout) as { leadership: { leader: { host: string }; term: number; source: string; followers: { host: string }[] } };
    expect(view.leadership).toMatchObject({ leader: { host: first.host }, term: first.term, source: 'election' });
    expect(view.leadership.followers.map((f) => f.host).sort()).toEqual(NAMES.filter((n) => n !== first.host));
    const text = await hosts.stack(follower, ['status', '-p', `${stack}.json`]);
    expect(text.stdout).toContain(`LEADER\n  ${first.host} (${first.host}-`);

    // kill -9 of the leader's supervisor (the process this test spawned, still unreaped: provably ours).
    const killed = w.ups.get(first.host)!;
    expect(killed.running).toBe(true);
    process.kill(killed.pid, 'SIGKILL');
    await killed.exited;
    const second = await settledLeader(w, first.host);
    expect(second.term).toBeGreaterThan(first.term);
    // A write under the old term is refused; the leader record is the new leader's.
    await expect(w.election.fencedWrite(LEADER_KEY, '{"stale":true}', first.term)).rejects.toBeInstanceOf(StaleTermError);
    expect(JSON.parse((await w.election.fencedRead(LEADER_KEY))!.value)).toMatchObject({ leader: { host: second.host }, term: second.term });

    // A supervisor started again on the old leader's host follows, and stops what its predecessor left running there.
    const again = startSupervisor(w, first.host);
    await again.waitForLine(/"type":"leader".*"change":"observed"/, 30_000);
    await waitFor(async () => !(await answering()).includes(first.host), 30_000, `the leftover singleton on ${first.host} stopped`);
    expect(await answering()).toEqual([second.host]);

    // The leader's host cut off: a new leader on the other side.
    await hosts.cut(second.host);
    const third = await settledLeader(w, second.host);
    expect(third.term).toBeGreaterThan(second.term);
    // Healed: from now on, never more than one registered record of the singleton, nor more than one instance answering.
    await hosts.heal(second.host);
    const samples: { registered: number; answering: number }[] = [];
    for (let i = 0; i < 30; i++) {
      const [regs, live] = await Promise.all([records(w), answering()]);
      samples.push({ registered: regs.length, answering: live.length });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(samples.filter((s) => s.registered > 1 || s.answering > 1)).toEqual([]);
    // The old leader stepped down (it stopped hearing the backend before its lease lapsed) and its singleton is gone.
    await w.ups.get(second.host)!.waitForLine(/"type":"leader".*"change":"stepped-down"/, 10_000);
    await waitFor(async () => JSON.stringify(await answering()) === JSON.stringify([third.host]), 20_000, `only ${third.host} answers`);
    const [last] = await records(w);
    expect(last).toMatchObject({ address: hosts.address(third.host), meta: { host: third.host, term: String(third.term) } });
  }, 150_000);
});
