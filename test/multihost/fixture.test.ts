/**
 * The hosts fixture itself (test/fixtures/hosts.ts): three hosts as network namespaces on one
 * bridge, real etcd, NATS (JetStream) and the Consul double on the root namespace's address,
 * processes and `stack` agents run inside hosts. What later multi-host tests rely on.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHosts, type Hosts } from '../fixtures/hosts.js';
import { fixture as HTTP_SERVICE } from '../engine/helpers.js';
import { waitFor } from '../helpers/net.js';
import { isAlive } from '../helpers/e2e.js';

let hosts: Hosts;

beforeAll(async () => {
  hosts = await startHosts({ hosts: ['a', 'b', 'c'], services: ['etcd', 'nats', 'consul'] });
});

afterAll(async () => {
  if (!hosts) return;
  const pids = hosts.processes.map((p) => p.pid);
  await hosts.stop();
  expect(await hosts.leftovers()).toEqual({ namespaces: [], links: [], processes: [] });
  expect(pids.filter(isAlive)).toEqual([]);
});

/** An HTTP server on 0.0.0.0:`port` answering with its hostname (the host's name). */
const SERVER = `require('node:http').createServer((q, r) => r.end(require('node:os').hostname())).listen(Number(process.argv[1]), '0.0.0.0', () => console.log('listening'));`;

describe('hosts', () => {
  it('gives each host its own address, hostname and folder, all in one /24 with the service address', async () => {
    const addresses = hosts.names.map((n) => hosts.address(n));
    expect(new Set(addresses).size).toBe(3);
    const net = hosts.subnet.replace(/\.0\/24$/, '.');
    for (const a of [...addresses, hosts.serviceAddress]) expect(a.startsWith(net)).toBe(true);
    for (const name of hosts.names) {
      const r = await hosts.run(name, ['sh', '-c', 'ip -o -4 addr show; hostname; pwd']);
      expect(r.code).toBe(0);
      const v4 = [...r.stdout.matchAll(/inet (\S+)\//g)].map((m) => m[1]);
      expect(v4.sort()).toEqual(['127.0.0.1', hosts.address(name)].sort());
      const [hostname, cwd] = r.stdout.trim().split('\n').slice(-2);
      expect(hostname).toBe(name);
      expect(cwd).toBe(hosts.dir(name));
    }
  });

  it('serves a process of host a to host b at a’s address, not at b’s loopback, and to the test process', async () => {
    const server = hosts.spawn('a', [process.execPath, '-e', SERVER, '8080']);
    await server.waitForLine('listening');
    expect(await hosts.fetchFrom('b', `http://${hosts.address('a')}:8080/`)).toEqual({ status: 200, body: 'a' });
    expect(await hosts.fetchFrom('b', 'http://127.0.0.1:8080/')).toEqual({ error: 'ECONNREFUSED' });
    expect(await hosts.fetchFrom('a', 'http://127.0.0.1:8080/')).toEqual({ status: 200, body: 'a' });
    expect(await (await fetch(`http://${hosts.address('a')}:8080/`)).text()).toBe('a');
    await server.stop();
    expect(await hosts.fetchFrom('b', `http://${hosts.address('a')}:8080/`)).toEqual({ error: 'ECONNREFUSED' });
  });

  it('reaches etcd, NATS with JetStream and the Consul double on the service address from inside a host', async () => {
    expect(hosts.etcd!.endpoint).toContain(hosts.serviceAddress);
    const etcd = await hosts.fetchFrom('c', `${hosts.etcd!.endpoint}/health`);
    expect(JSON.parse(etcd.body ?? '{}')).toMatchObject({ health: 'true' });
    const consul = `http://${hosts.consul!.address}`;
    const register = await hosts.fetchFrom('c', `${consul}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: 'probe', Port: 1 }) });
    expect(register.status).toBe(200);
    expect(Object.keys((await (await fetch(`${consul}/v1/agent/services`)).json()) as object)).toContain('probe');
    // NATS greets with INFO, JetStream on.
    const info = await hosts.run('c', [process.execPath, '-e', NATS_INFO, hosts.serviceAddress, String(hosts.nats!.port)]);
    expect(info.stdout).toMatch(/^INFO .*"jetstream":true/);

    // And `stack` itself, run on the host, uses each backend there.
    for (const [file, discovery] of [
      ['etcd.json', { backend: 'etcd', etcdEndpoints: [hosts.etcd!.endpoint] }],
      ['nats.json', { backend: 'nats', natsUrl: hosts.nats!.url }],
      ['consul.json', { backend: 'consul', consulAddress: hosts.consul!.address }],
    ] as const) {
      await writeFile(path.join(hosts.dir('c'), file), JSON.stringify({ name: 'probe', discovery, services: { x: { command: ['true'] } } }));
      const r = await hosts.stack('c', ['discovery', 'test', '-p', file, '--json']);
      expect({ file, code: r.code, out: r.stdout, err: r.stderr }).toMatchObject({ code: 0 });
    }
  });

  it('runs a `stack` agent per host, each in its own folder, on the same port, registered in the shared etcd', async () => {
    for (const name of ['a', 'b']) {
      const profile = {
        name: `demo-${name}`,
        runtime: 'process',
        discovery: { backend: 'etcd', etcdEndpoints: [hosts.etcd!.endpoint] },
        coordination: { dependencyTimeout: '20s' },
        services: {
          web: {
            command: [process.execPath, HTTP_SERVICE],
            port: 8080,
            environment: { PORT: '8080', HOST: '0.0.0.0' },
            healthCheck: { strategy: 'http', endpoint: '/health', interval: '100ms', retries: 0 },
            stopGracePeriod: '2s',
          },
        },
      };
      await writeFile(path.join(hosts.dir(name), 'stack.json'), JSON.stringify(profile));
    }
    const ups = [hosts.spawnStack('a', ['up', '--json']), hosts.spawnStack('b', ['up', '--json'])];
    try {
      for (const up of ups) await up.waitForLine(/"state":"healthy"/);
      for (const name of ['a', 'b']) expect((await hosts.fetchFrom('c', `http://${hosts.address(name)}:8080/health`)).status).toBe(200);
      // Both registered in the one etcd; each agent sees its own stack's instance.
      for (const name of ['a', 'b']) {
        const ls = await hosts.stack('c', ['discovery', 'ls', 'web', '-p', path.join(hosts.dir(name), 'stack.json'), '--json']);
        expect(ls.code).toBe(0);
        expect(ls.stdout).toContain('"web"');
      }
    } finally {
      for (const name of ['a', 'b']) await hosts.stack(name, ['down', '--timeout', '2']);
      for (const up of ups) await up.stop();
    }
  });

  it('cuts a host off (neither it nor anything on it reachable) and heals it', async () => {
    const server = hosts.spawn('a', [process.execPath, '-e', SERVER, '8081']);
    await server.waitForLine('listening');
    const url = `http://${hosts.address('a')}:8081/`;
    const etcdPort = Number(new URL(hosts.etcd!.endpoint).port);
    expect(await hosts.fetchFrom('b', url)).toEqual({ status: 200, body: 'a' });

    await hosts.cut('a');
    expect((await hosts.fetchFrom('b', url, { timeoutMs: 1000 })).error).toBeDefined();
    expect(
      await fetch(url, { signal: AbortSignal.timeout(1000) }).then(
        () => 'answered',
        () => 'unreachable',
      ),
    ).toBe('unreachable');
    expect(await hosts.connectFrom('a', hosts.serviceAddress, etcdPort, { timeoutMs: 1000 })).toBe(false);
    expect(await hosts.connectFrom('b', hosts.serviceAddress, etcdPort)).toBe(true); // only a is cut

    await hosts.heal('a');
    await waitFor(async () => (await hosts.fetchFrom('b', url)).status === 200, 20_000, 'a reachable from b again');
    expect(await hosts.connectFrom('a', hosts.serviceAddress, etcdPort)).toBe(true);
    expect(await (await fetch(url)).text()).toBe('a');
  });
});

describe('teardown and parallel fixtures', () => {
  it('gives fixtures started at once different ids and subnets, and leaves nothing behind, daemons that left their group included', async () => {
    const [one, two] = await Promise.all([startHosts({ hosts: ['x'] }), startHosts({ hosts: ['x'] })]);
    let stopped = false;
    try {
      expect(one.id).not.toBe(two.id);
      expect(one.subnet).not.toBe(two.subnet);
      // Not on one bridge: one's host cannot reach the other's service address.
      expect(await one.connectFrom('x', two.serviceAddress, 9, { timeoutMs: 500 })).toBe(false);

      // A daemon: a new session, not in the group the fixture made, found by its namespace.
      const daemon = await one.run('x', ['sh', '-c', 'setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!']);
      const daemonPid = Number(daemon.stdout.trim());
      const plain = one.spawn('x', ['sleep', '600']);
      expect(isAlive(daemonPid)).toBe(true);
      // nsenter enters the namespace, then execs; on the way, a `hostname` runs there for a moment.
      const expected = JSON.stringify([daemonPid, plain.pid].sort());
      await waitFor(() => JSON.stringify(one.topology.processesInside().sort()) === expected, 10_000, `only ${expected} inside x`);
      const before = await one.leftovers();
      expect(before.namespaces).toHaveLength(2); // the bridge's and x's
      expect(before.links).toHaveLength(1); // the root-side veth

      await Promise.all([one.stop(), two.stop()]);
      stopped = true;
      for (const h of [one, two]) expect(await h.leftovers()).toEqual({ namespaces: [], links: [], processes: [] });
      expect([daemonPid, plain.pid].filter(isAlive)).toEqual([]);
    } finally {
      if (!stopped) await Promise.all([one.stop(), two.stop()]);
    }
  });
});

const NATS_INFO = `const s = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]) });
s.once('data', (d) => { process.stdout.write(String(d)); s.destroy(); });
s.once('error', (e) => { console.error(e.message); process.exit(1); });`;
