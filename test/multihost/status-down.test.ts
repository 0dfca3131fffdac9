/**
 * Seeing and stopping a stack across hosts from any host (issue 14, item 4), through the CLI:
 * two hosts (network namespaces) each run their share of one peer-to-peer profile under `stack up
 * --detach` (STACK_HOST names the host; each its own folder, so its own state), both registered
 * in one real etcd on the service address.
 *
 * - `stack status`, on either host and on a third that runs nothing, lists every service on every
 *   host: host, state, health, address, age of its last heartbeat;
 * - `stack down --host` refuses a name that is not this host, or not declared;
 * - `stack down --all-hosts` on the third host asks both supervisors (through discovery) to stop
 *   their share, waits until nothing is registered, and leaves nothing running on either.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture as HTTP_SERVICE } from '../engine/helpers.js';
import { startHosts, type Hosts } from '../fixtures/hosts.js';
import { isAlive } from '../helpers/e2e.js';

let hosts: Hosts;
const STACK = 'across';

beforeAll(async () => {
  hosts = await startHosts({ hosts: ['a', 'b', 'c'], services: ['etcd'] });
}, 120_000);

afterAll(async () => {
  if (!hosts) return;
  const pids = hosts.processes.map((p) => p.pid);
  await hosts.stop();
  expect(await hosts.leftovers()).toEqual({ namespaces: [], links: [], processes: [] });
  expect(pids.filter(isAlive)).toEqual([]);
}, 120_000);

function profile(): string {
  const http = (port: number, extra: Record<string, unknown> = {}) => ({
    command: [process.execPath, HTTP_SERVICE],
    port,
    environment: { PORT: String(port), HOST: '0.0.0.0' },
    healthCheck: { strategy: 'http', endpoint: '/health', interval: '100ms', retries: 0 },
    stopGracePeriod: '2s',
    ...extra,
  });
  return JSON.stringify({
    name: STACK,
    runtime: 'process',
    hosts: { a: { address: hosts.address('a') }, b: { address: hosts.address('b') }, c: { address: hosts.address('c') } },
    coordination: { strategy: 'peer-to-peer', dependencyTimeout: '30s' },
    discovery: { backend: 'etcd', etcdEndpoints: [hosts.etcd!.endpoint], etcdPrefix: '/across', ttl: '3s', heartbeatInterval: '500ms' },
    services: {
      db: http(7001, { host: 'a' }),
      api: http(7002, { host: 'b', dependencies: ['db'] }),
      web: http(7003, { host: 'b' }),
    },
  });
}

interface StatusJson {
  empty: boolean;
  owner?: { pid: number; alive: boolean };
  hosts: {
    instances: { service: string; host: string; source: string; state: string; health: string; address?: string; port?: number; heartbeatAgeMs?: number }[];
  };
}

async function status(host: string): Promise<StatusJson> {
  const r = await hosts.stack(host, ['status', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as StatusJson;
}

describe('a stack across hosts, seen and stopped from any host', () => {
  it('status on any host lists every instance on every host; down --all-hosts stops every host’s share', async () => {
    for (const h of ['a', 'b', 'c']) await writeFile(path.join(hosts.dir(h), 'stack.json'), profile());
    const [upA, upB] = await Promise.all([
      hosts.stack('a', ['up', '--detach'], { timeoutMs: 90_000 }),
      hosts.stack('b', ['up', '--detach'], { timeoutMs: 90_000 }),
    ]);
    expect(upA.code, `${upA.stdout}\n${upA.stderr}`).toBe(0);
    expect(upB.code, `${upB.stdout}\n${upB.stderr}`).toBe(0);

    const fromA = await status('a');
    const fromB = await status('b');
    const supervisors = [fromA.owner!, fromB.owner!];
    expect(supervisors.every((o) => o.alive)).toBe(true);
    const rows = (s: StatusJson) => s.hosts.instances.map((i) => [i.service, i.host, i.source, `${i.address}:${i.port}`]);
    const [a, b] = [hosts.address('a'), hosts.address('b')];
    expect(rows(fromA)).toEqual([
      ['api', 'b', 'discovery', `${b}:7002`],
      ['db', 'a', 'local', `${a}:7001`],
      ['web', 'b', 'discovery', `${b}:7003`],
    ]);
    expect(rows(fromB)).toEqual([
      ['api', 'b', 'local', `${b}:7002`],
      ['db', 'a', 'discovery', `${a}:7001`],
      ['web', 'b', 'local', `${b}:7003`],
    ]);
    // c runs nothing of it and sees it all; every instance has renewed its registration within a TTL.
    const fromC = await status('c');
    expect(fromC.hosts.instances.map((i) => [i.service, i.host, i.state, i.health])).toEqual([
      ['api', 'b', 'registered', 'passing'],
      ['db', 'a', 'registered', 'passing'],
      ['web', 'b', 'registered', 'passing'],
    ]);
    for (const i of fromC.hosts.instances) expect(i.heartbeatAgeMs).toEqual(expect.any(Number)); // from the record's expiry
    const table = await hosts.stack('c', ['status']);
    expect(table.stdout).toMatch(/SERVICE\s+HOST\s+STATE\s+HEALTH\s+ADDRESS\s+HEARTBEAT/);
    expect(table.stdout).toMatch(new RegExp(`api\\s+b\\s+registered\\s+passing\\s+${b.replace(/\./g, '\\.')}:7002\\s+\\d+\\.\\ds ago`));

    // One host's share, from the wrong host or for an undeclared one: refused, nothing stopped.
    const wrong = await hosts.stack('b', ['down', '--host', 'a']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/this machine is host 'b'/);
    const unknown = await hosts.stack('c', ['down', '--host', 'x'], { env: { STACK_HOST: undefined } });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown host 'x': this profile's hosts are a, b, c/);
    const otherShare = await hosts.stack('a', ['down', '--host', 'b'], { env: { STACK_HOST: undefined } });
    expect(otherShare.code).toBe(2);
    expect(otherShare.stderr).toMatch(/holds host 'a's share, not 'b's/);
    expect(supervisors.map((o) => isAlive(o.pid))).toEqual([true, true]);

    // Every host's share, asked from c.
    const down = await hosts.stack('c', ['down', '--all-hosts'], { timeoutMs: 90_000 });
    expect(down.code, `${down.stdout}\n${down.stderr}`).toBe(0);
    expect(down.stdout).toMatch(/asked every host's `stack up` to stop stack 'across' \(through discovery\): 3 registered \(a: db; b: api, web\)/);
    expect(down.stdout).toMatch(/no registration left/);
    expect(down.stdout).toMatch(/every host's share of stack 'across' is down/);
    await expect.poll(() => supervisors.map((o) => isAlive(o.pid)), { timeout: 20_000 }).toEqual([false, false]);
    for (const h of ['a', 'b']) {
      const left = await status(h);
      expect(left.empty).toBe(true);
    }
    expect((await hosts.stack('c', ['status'])).stdout).toMatch(/nothing is running on any host/);
    for (const [h, port] of [
      ['a', 7001],
      ['b', 7002],
      ['b', 7003],
    ] as const)
      expect(await hosts.connectFrom('c', hosts.address(h), port)).toBe(false);
  }, 240_000);
});
