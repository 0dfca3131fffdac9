/**
 * Mesh across three hosts (issue 14), end to end on a real etcd: relay and app run on every host
 * (`host: all`), each host's own `stack up --host` agent starting its instances; app depends on
 * relay, met by the local instance or any healthy remote one, and is configured with every relay
 * instance on every host.
 *
 * Host a's relay is killed (by the pid it wrote, proven to be a child of host a's agent and in
 * host a's network namespace): a's app is not blocked, it stays served by the relays of b and c,
 * and its configuration follows discovery (b's and c's relay only).
 */
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHosts, type HostProcess, type Hosts } from '../fixtures/hosts.js';
import { isAlive } from '../helpers/e2e.js';
import { events, hostsSection, nextEvent, service, stateOf, stopAgent, writeEverywhere } from './helpers.js';

let hosts: Hosts;

beforeAll(async () => {
  hosts = await startHosts({ hosts: ['a', 'b', 'c'], services: ['etcd'] });
});

afterAll(async () => {
  if (!hosts) return;
  const pids = hosts.processes.map((p) => p.pid);
  await hosts.stop();
  expect(await hosts.leftovers()).toEqual({ namespaces: [], links: [], processes: [] });
  expect(pids.filter(isAlive)).toEqual([]);
});

const DEPENDENCY_TIMEOUT_MS = 3000;

describe('mesh on etcd', () => {
  it("killing one host's relay leaves its app served by the other hosts' relays, configured with them", async () => {
    const dir = await writeEverywhere(hosts, 'mesh', {
      name: 'mesh',
      runtime: 'process',
      hosts: hostsSection(hosts),
      discovery: { backend: 'etcd', etcdEndpoints: [hosts.etcd!.endpoint], ttl: '2s', heartbeatInterval: '500ms' },
      coordination: { strategy: 'mesh', dependencyTimeout: `${DEPENDENCY_TIMEOUT_MS}ms` },
      services: {
        relay: service('all', 'relay', 7301, '0.0.0.0', { restart: 'no' }),
        app: service('all', 'app', 7302, '0.0.0.0', {
          dependencies: ['relay'],
          templates: [{ destination: 'peers.env', data: { RELAYS: '{{#each service.relay.instances}}{{url}} {{/each}}' } }],
        }),
      },
    });
    const agents: HostProcess[] = [];
    try {
      for (const host of hosts.names) agents.push(hosts.spawnStack(host, ['up', '--json', '-p', 'stack.json'], { cwd: dir(host) }));
      const [a] = agents as [HostProcess];
      for (const agent of agents) await nextEvent(agent, (e) => e.type === 'stack' && e.phase === 'up');
      const relayAt = (...names: string[]) => names.map((h) => `http://${hosts.address(h)}:7301`);
      // Every app is configured with every relay (the earlier ones re-render as the others register).
      for (const host of hosts.names) await waitForRelays(host, relayAt('a', 'b', 'c'));

      // Host a's relay, by the pid it wrote: a child of a's agent, living in a's network namespace.
      const pid = Number(await readFile(path.join(dir('a'), 'relay.pid'), 'utf8'));
      expect(parentOf(pid)).toBe(a.pid);
      expect(readlinkSync(`/proc/${pid}/ns/net`)).toBe(`net:[${statSync(hosts.netnsPath('a')).ino}]`);
      expect(events(a).find((e) => stateOf('relay', 'healthy')(e))?.pid).toBe(pid);
      const mark = events(a).length;
      process.kill(pid, 'SIGKILL');
      await nextEvent(a, stateOf('relay', 'failed'), mark);

      // a's app follows discovery: it lists the relays of b and c only, and is not blocked.
      await waitForRelays('a', relayAt('b', 'c'));
      await new Promise((r) => setTimeout(r, DEPENDENCY_TIMEOUT_MS + 2000)); // past dependencyTimeout
      // It was restarted for its changed file (its templates' change mode), never blocked or stopped for relay.
      const since = events(a).slice(mark);
      expect(since.filter((e) => e.type === 'state' && e.service === 'app' && e.state === 'waiting').map((e) => e.reason)).toEqual([
        "peers.env changed (records of 'relay' changed); restarting",
      ]);
      expect(since.filter((e) => e.type === 'state' && e.service === 'app' && ['blocked', 'stopping', 'stopped', 'failed'].includes(e.state!))).toEqual([]);
      expect(
        events(a)
          .filter((e) => e.type === 'state' && e.service === 'app')
          .at(-1)?.state,
      ).toBe('healthy');
      expect((await hosts.fetchFrom('b', `http://${hosts.address('a')}:7302/`)).body).toBe('app@a');
      expect((await hosts.fetchFrom('a', `http://${hosts.address('b')}:7301/`)).body).toBe('relay@b');
      expect(await lookupHosts('c', dir('c'), 'relay')).toEqual(['b', 'c']);
    } finally {
      for (const agent of agents.reverse()) await stopAgent(agent);
    }
  });
});

/** The relay URLs host `host`'s app was configured with (asked over HTTP from another host), waiting until they are `want`. */
async function waitForRelays(host: string, want: string[], timeoutMs = 30_000): Promise<void> {
  const from = hosts.names.find((n) => n !== host)!;
  const deadline = Date.now() + timeoutMs;
  let seen: string[] = [];
  while (Date.now() < deadline) {
    const r = await hosts.fetchFrom(from, `http://${hosts.address(host)}:7302/config`);
    const env = r.body ? ((JSON.parse(r.body) as Record<string, string>)['peers.env'] ?? '') : '';
    seen = [...env.matchAll(/http:\/\/[\d.]+:\d+/g)].map((m) => m[0]).sort();
    if (JSON.stringify(seen) === JSON.stringify(want)) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`app on ${host} lists relays ${JSON.stringify(seen)}, not ${JSON.stringify(want)}`);
}

/** The hosts of the passing records of `name`, as `stack discovery ls` on a host shows them. */
async function lookupHosts(host: string, cwd: string, name: string): Promise<string[]> {
  const r = await hosts.stack(host, ['discovery', 'ls', name, '-p', 'stack.json', '--json'], { cwd });
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
  return (JSON.parse(r.stdout) as { meta: Record<string, string> }[]).map((i) => i.meta.host!).sort();
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}
