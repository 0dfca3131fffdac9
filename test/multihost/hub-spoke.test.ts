/**
 * hub-spoke across two hosts' Docker engines (issue 14): one `stack up` (the hub, on host a)
 * starts a container on a's engine and one on b's, each engine a dockerd in its host's network
 * namespace listening on that host's address (test/fixtures/host-dockerd.ts). The dependent on b
 * starts only once the dependency on a is healthy, probed at a's address (its command exits
 * when it cannot reach it, so a start before the gate opened fails the stack); `status` from
 * either host shows both; `down`, even after the hub was killed with SIGKILL, finds each container
 * on its engine and leaves nothing on either.
 */
import { writeFile } from 'node:fs/promises';
import { readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS, stackLabelFilter } from '../../src/runtime/docker-spec.js';
import { importBusyboxImage } from '../fixtures/docker-image.js';
import { startHostDockerd, type HostDockerd } from '../fixtures/host-dockerd.js';
import { startHosts, type Hosts } from '../fixtures/hosts.js';
import { isAlive } from '../helpers/e2e.js';

let hosts: Hosts;
const engines: Record<string, HostDockerd> = {};
const STACK = 'hubspoke';

beforeAll(async () => {
  hosts = await startHosts({ hosts: ['a', 'b'], services: ['etcd'] });
  engines.a = await startHostDockerd(hosts, 'a', { poolOctet: 240 });
  engines.b = await startHostDockerd(hosts, 'b', { poolOctet: 241 });
  await Promise.all(Object.values(engines).map((e) => importBusyboxImage(e.socket)));
}, 180_000);

afterAll(async () => {
  for (const e of Object.values(engines)) await e.stop().catch(() => undefined);
  if (!hosts) return;
  const pids = hosts.processes.map((p) => p.pid);
  await hosts.stop();
  expect(await hosts.leftovers()).toEqual({ namespaces: [], links: [], processes: [] });
  expect(pids.filter(isAlive)).toEqual([]);
}, 120_000);

function profileYaml(extra = ''): string {
  const a = hosts.address('a');
  const b = hosts.address('b');
  return `name: ${STACK}
runtime: docker
hosts:
  a: { address: ${a}, docker: "${engines.a!.url}" }
  b: { address: ${b}, docker: "${engines.b!.url}" }
${extra}coordination: { strategy: hub-spoke }
discovery: { backend: etcd, etcdEndpoints: ["${hosts.etcd!.endpoint}"], etcdPrefix: /hubspoke, ttl: 3s, heartbeatInterval: 500ms }
services:
  db:
    image: atproto-stacks-test/busybox:1
    host: a
    # Not ready at once: a dependent started before the gate opened would find nothing.
    command: [/bin/sh, -c, "sleep 1; exec /bin/httpd -f -p 8080 -h /www"]
    port: 8080
    ports: [8080]
    stopGracePeriod: 1s
    healthCheck: { strategy: http, endpoint: /, port: 8080, interval: 200ms, timeout: 1s, retries: 0 }
  app:
    image: atproto-stacks-test/busybox:1
    host: b
    dependencies: [db]
    # Exits 3 unless db answers at host a's address when it starts.
    command: [/bin/sh, -c, "wget -q -O /dev/null http://${a}:8080/ || exit 3; exec /bin/httpd -f -p 8081 -h /www"]
    port: 8081
    ports: [8081]
    stopGracePeriod: 1s
    healthCheck: { strategy: http, endpoint: /, port: 8081, interval: 200ms, timeout: 1s, retries: 0 }
`;
}

async function writeProfile(host: string, yaml: string): Promise<string> {
  const file = path.join(hosts.dir(host), 'stack.yaml');
  await writeFile(file, yaml);
  return file;
}

async function leftovers() {
  return { a: await engines.a!.leftovers(STACK), b: await engines.b!.leftovers(STACK) };
}

const NOTHING = { a: { containers: [], networks: [] }, b: { containers: [], networks: [] } };

describe('hub-spoke: one stack up drives two hosts’ Docker engines', () => {
  it('refuses, before anything is created, a container on a host without an engine that is not the hub’s (exit 2)', async () => {
    await writeProfile(
      'a',
      profileYaml(`  # c has no docker: and the hub runs on a\n`)
        .replace('hosts:\n', `hosts:\n  c: { address: ${hosts.serviceAddress.replace(/\d+$/, '99')} }\n`)
        .replace('host: b\n    dependencies', 'host: c\n    dependencies'),
    );
    const r = await hosts.stack('a', ['up', '--detach']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/'app' runs on host 'c', which has no docker: engine address, and the hub runs on host 'a'/);
    expect(await leftovers()).toEqual(NOTHING);
  });

  it('starts each container on its host’s engine, health-gated across hosts; status shows both from either host; down after a kill -9 of the hub leaves nothing', async () => {
    await writeProfile('a', profileYaml());
    const up = await hosts.stack('a', ['up', '--detach', '--json'], { timeoutMs: 120_000 });
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);

    // Each container on its own host's engine, published on that host's address.
    const filters = { label: [stackLabelFilter(STACK)] };
    const [onA, onB] = await Promise.all([engines.a!.docker.listContainers({ filters }), engines.b!.docker.listContainers({ filters })]);
    expect(onA.map((c) => c.Labels[LABELS.service])).toEqual(['db']);
    expect(onB.map((c) => c.Labels[LABELS.service])).toEqual(['app']);
    expect(onB[0]!.Ports.map((p) => `${p.IP}:${p.PublicPort}`)).toContain(`${hosts.address('b')}:8081`);

    // Gated across hosts: db was healthy before app started (app's own check at start proves it too).
    const events = up.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string; service?: string; state?: string });
    const at = (service: string, state: string) => events.findIndex((e) => e.type === 'state' && e.service === service && e.state === state);
    expect(at('db', 'healthy')).toBeGreaterThanOrEqual(0);
    expect(at('app', 'starting')).toBeGreaterThan(at('db', 'healthy'));
    expect(await hosts.fetchFrom('a', `http://${hosts.address('b')}:8081/`)).toMatchObject({ status: 200 });

    // status on the hub: both, on their hosts, each with its registration; on b, whose folder
    // holds nothing of the stack: both again, each once (b reaches both engines, and discovery).
    const expected = [
      ['app', 'b', 'healthy', `${hosts.address('b')}:8081`],
      ['db', 'a', 'healthy', `${hosts.address('a')}:8080`],
    ];
    const onHub = JSON.parse((await hosts.stack('a', ['status', '--json'])).stdout) as StatusJson;
    expect(onHub.hosts.instances.map((i) => [i.service, i.host, i.state, `${i.address}:${i.port}`])).toEqual(expected);
    expect(onHub.hosts.instances.every((i) => i.source === 'local' && i.heartbeatAgeMs !== undefined)).toBe(true);
    await writeProfile('b', profileYaml());
    const onOther = JSON.parse((await hosts.stack('b', ['status', '--json'])).stdout) as StatusJson;
    expect(onOther.hosts.instances.map((i) => [i.service, i.host, i.state, `${i.address}:${i.port}`])).toEqual(expected);
    expect(onOther.hosts.instances.every((i) => i.heartbeatAgeMs !== undefined)).toBe(true);
    const text = await hosts.stack('b', ['status']);
    expect(text.stdout).toMatch(/SERVICE\s+HOST\s+STATE\s+HEALTH\s+ADDRESS\s+HEARTBEAT/);
    expect(text.stdout).toMatch(new RegExp(`db\\s+a\\s+healthy\\s+\\S+\\s+${hosts.address('a').replace(/\./g, '\\.')}:8080\\s+\\d+\\.\\ds ago`));

    // logs come from the container's own engine (b's), as every other call for it.
    const logs = await hosts.stack('a', ['logs', 'app', '-n', '5']);
    expect(logs.code, logs.stderr).toBe(0);

    // The hub dies: its containers run on; `down` on the hub's host finds each on its engine.
    const owner = onHub.owner!;
    expect(owner.alive).toBe(true);
    // Ours beyond doubt at the moment of the kill: it lives in host a's namespace, which this test made.
    expect(readlinkSync(`/proc/${owner.pid}/ns/net`)).toBe(`net:[${statSync(hosts.netnsPath('a')).ino}]`);
    process.kill(owner.pid, 'SIGKILL'); // the supervisor this test's `up --detach` started
    await expect.poll(() => isAlive(owner.pid), { timeout: 10_000 }).toBe(false);
    expect((await leftovers()).a.containers).toHaveLength(1);
    const down = await hosts.stack('a', ['down'], { timeoutMs: 120_000 });
    expect(down.code, `${down.stdout}\n${down.stderr}`).toBe(0);
    expect(down.stdout).toMatch(/stopped app/);
    expect(down.stdout).toMatch(/stopped db/);
    expect(await leftovers()).toEqual(NOTHING);
  }, 240_000);
});

interface StatusJson {
  owner?: { pid: number; alive: boolean };
  hosts: { instances: { service: string; host: string; source: string; state: string; address?: string; port?: number; heartbeatAgeMs?: number }[] };
}
