/**
 * Peer-to-peer across three hosts (issue 14), end to end: each host is a network namespace running
 * its own `stack up --host` agent (the built CLI), the chain db (host a) → api (host b) → web
 * (host c) meets in a real etcd, then a real NATS with JetStream, on the fixture's service address.
 *
 * - The chain starts in dependency order across hosts, proven from the services' own logs (each
 *   writes when it started and when it listened), although the dependents' agents start first.
 * - What `stack` rendered for api on host b carries host a's address; for web, host b's.
 * - `stack status` on every host lists the whole stack: service, host, state, address.
 * - Host a cut off (its link down): its registration is gone once one TTL has passed; api on
 *   host b is blocked after dependencyTimeout, naming host a (run.ts, after startup); status
 *   elsewhere shows db `not registered`.
 * - The link healed: a's registration is back, api starts again, web on host c starts again.
 *
 * Nothing here asserts how long anything took; the one bound is the TTL itself, checked once
 * after it has passed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHosts, type HostProcess, type Hosts } from '../fixtures/hosts.js';
import { isAlive } from '../helpers/e2e.js';
import { events, hostsSection, nextEvent, service, serviceLog, stateOf, stopAgent, writeEverywhere } from './helpers.js';

let hosts: Hosts;

beforeAll(async () => {
  hosts = await startHosts({ hosts: ['a', 'b', 'c'], services: ['etcd', 'nats'] });
});

afterAll(async () => {
  if (!hosts) return;
  const pids = hosts.processes.map((p) => p.pid);
  await hosts.stop();
  expect(await hosts.leftovers()).toEqual({ namespaces: [], links: [], processes: [] });
  expect(pids.filter(isAlive)).toEqual([]);
});

const TTL_MS = 2000;

const BACKENDS = [
  { backend: 'etcd', port: 7100, discovery: () => ({ backend: 'etcd', etcdEndpoints: [hosts.etcd!.endpoint] }) },
  { backend: 'nats', port: 7200, discovery: () => ({ backend: 'nats', natsUrl: hosts.nats!.url }) },
];

describe.each(BACKENDS)('peer-to-peer on $backend', ({ backend, port, discovery }) => {
  it('starts a chain over three hosts in order, renders other hosts’ addresses, blocks on a host cut off and recovers when it is back', async () => {
    const addr = (h: string) => hosts.address(h);
    const dir = await writeEverywhere(hosts, backend, {
      name: `chain-${backend}`,
      runtime: 'process',
      hosts: hostsSection(hosts),
      discovery: { ...discovery(), ttl: `${TTL_MS}ms`, heartbeatInterval: '500ms' },
      coordination: { strategy: 'peer-to-peer', dependencyTimeout: '6s' },
      services: {
        db: service('a', 'db', port + 1, addr('a')),
        api: service('b', 'api', port + 2, addr('b'), {
          dependencies: ['db'],
          templates: [{ destination: 'upstream.env', data: { DB: '{{service.db.url}}' } }],
        }),
        web: service('c', 'web', port + 3, addr('c'), {
          dependencies: ['api'],
          templates: [{ destination: 'upstream.env', data: { API: '{{service.api.url}}' } }],
        }),
      },
    });
    const up = (host: string) => hosts.spawnStack(host, ['up', '--json', '-p', 'stack.json'], { cwd: dir(host) });
    const agents: HostProcess[] = [];
    try {
      // The dependents' agents first: they wait, gated on the other hosts through discovery.
      const [c, b] = [up('c'), up('b')];
      agents.push(c, b);
      await nextEvent(c, stateOf('web', 'waiting'));
      await nextEvent(b, stateOf('api', 'waiting'));
      const a = up('a');
      agents.push(a);
      for (const agent of [a, b, c]) await nextEvent(agent, (e) => e.type === 'stack' && e.phase === 'up');

      // Order, from the services' own logs: each started after its dependency listened.
      const first = async (host: string, name: string, what: string) => (await serviceLog(dir(host), name)).find((l) => l.what === what)!.at;
      expect(await first('a', 'db', 'listening')).toBeLessThan(await first('b', 'api', 'start'));
      expect(await first('b', 'api', 'listening')).toBeLessThan(await first('c', 'web', 'start'));

      // What each service was given carries the other host's address (fetched across hosts).
      const config = async (from: string, host: string, p: number) =>
        JSON.parse((await hosts.fetchFrom(from, `http://${addr(host)}:${p}/config`)).body ?? '{}');
      expect(await config('c', 'b', port + 2)).toEqual({ 'upstream.env': `DB=http://${addr('a')}:${port + 1}\n` });
      expect(await config('a', 'c', port + 3)).toEqual({ 'upstream.env': `API=http://${addr('b')}:${port + 2}\n` });
      const records = await lookup('c', dir('c'), 'db');
      expect(records.map((r) => ({ id: r.id, address: r.address, host: r.meta.host }))).toEqual([
        { id: `chain-${backend}-db-a-0`, address: addr('a'), host: 'a' },
      ]);

      // Status from any host lists the whole stack: its own share from its runtime, the others' from discovery.
      for (const host of hosts.names) {
        const rows = (await status(host, dir(host))).map((i) => [i.service, i.host, i.source, i.state, `${i.address}:${i.port}`]);
        const row = (svc: string, on: string, p: number) => [
          svc,
          on,
          on === host ? 'local' : 'discovery',
          on === host ? 'healthy' : 'registered',
          `${addr(on)}:${p}`,
        ];
        expect(rows).toEqual([row('api', 'b', port + 2), row('db', 'a', port + 1), row('web', 'c', port + 3)]);
      }

      // Host a cut off: once one TTL has passed, its registration is gone.
      const mark = { b: events(b).length, c: events(c).length };
      await hosts.cut('a');
      await new Promise((r) => setTimeout(r, TTL_MS + 1000));
      expect(await lookup('c', dir('c'), 'db')).toEqual([]);
      expect((await status('c', dir('c'))).find((i) => i.service === 'db')).toMatchObject({ host: 'a', source: 'missing', state: 'not registered' });
      // api on host b is blocked after dependencyTimeout, naming the host, and stopped.
      const blocked = await nextEvent(b, stateOf('api', 'blocked'), mark.b);
      expect(blocked.event.reason).toContain("required dependency 'db' (on host 'a') has had no passing record in discovery");
      await waitForLog(dir('b'), 'api', (lines) => lines.at(-1)?.what === 'stop');
      const apiStarts = (await serviceLog(dir('b'), 'api')).filter((l) => l.what === 'start').length;
      const webStarts = (await serviceLog(dir('c'), 'web')).filter((l) => l.what === 'start').length;

      // Healed: a's registration returns, api starts again, web (on host c) follows it.
      await hosts.heal('a');
      await nextEvent(b, stateOf('api', 'healthy'), blocked.index, 60_000);
      expect((await serviceLog(dir('b'), 'api')).filter((l) => l.what === 'start')).toHaveLength(apiStarts + 1);
      expect((await lookup('c', dir('c'), 'db')).map((r) => r.meta.host)).toEqual(['a']);
      await waitForLog(dir('c'), 'web', (lines) => lines.filter((l) => l.what === 'listening').length > webStarts);
      // api was away from discovery from its block until a's return: back within dependencyTimeout
      // (the usual case), web is restarted for it; later, web was blocked meanwhile and starts again.
      const webSince = events(c).slice(mark.c);
      const restarted = webSince.some((e) => e.type === 'reload' && e.service === 'web' && e.reason === "dependency 'api' (on host 'b') is back in discovery");
      const unblocked = webSince.some((e) => stateOf('web', 'waiting')(e) && e.reason === "required dependency 'api' is back");
      expect({ restarted, unblocked, events: restarted || unblocked ? [] : webSince }).toMatchObject({ events: [] });
      await nextEvent(c, stateOf('web', 'healthy'), mark.c);
      expect(await config('a', 'b', port + 2)).toEqual({ 'upstream.env': `DB=http://${addr('a')}:${port + 1}\n` });
    } finally {
      for (const agent of agents.reverse()) await stopAgent(agent);
    }
  });
});

/** The passing records of `service`, as `stack discovery ls` on a host shows them. */
async function lookup(host: string, cwd: string, name: string): Promise<{ id: string; address: string; meta: Record<string, string> }[]> {
  const r = await hosts.stack(host, ['discovery', 'ls', name, '-p', 'stack.json', '--json'], { cwd });
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
  return JSON.parse(r.stdout) as { id: string; address: string; meta: Record<string, string> }[];
}

/** `stack status --json` on a host: one row per instance on every host. */
async function status(host: string, cwd: string): Promise<{ service: string; host: string; source: string; state: string; address?: string; port?: number }[]> {
  const r = await hosts.stack(host, ['status', '--json', '-p', 'stack.json'], { cwd });
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
  return (JSON.parse(r.stdout) as { hosts: { instances: Awaited<ReturnType<typeof status>> } }).hosts.instances;
}

async function waitForLog(folder: string, name: string, ok: (lines: Awaited<ReturnType<typeof serviceLog>>) => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok(await serviceLog(folder, name))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${name}'s log in ${folder}: ${JSON.stringify(await serviceLog(folder, name))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
