/**
 * The swarm runtime on a real three-node Docker Swarm (test/fixtures/swarm.ts: one dockerd per
 * network namespace, a /24 of 10.233.0.0/16), driven through the built `stack` command as a user runs it.
 * One cluster for the file; every test has its own stack name and folder, and after each test
 * nothing labelled with its stack may be left on the cluster (services, configs, secrets,
 * networks).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runStack, StackProcess } from '../cli/helpers.js';
import { BUSYBOX_IMAGE } from '../fixtures/docker-image.js';
import { ensureBusyboxImage } from '../fixtures/docker-image.js';
import { startSwarm, waitUntil, type SwarmCluster } from '../fixtures/swarm.js';
import { createFileBackend } from '../../src/discovery/file.js';
import { createSwarmRuntime } from '../../src/runtime/swarm.js';
import type { SwarmInstanceStatus } from '../../src/runtime/swarm.js';
import { SWARM_LABELS } from '../../src/runtime/swarm-spec.js';

let cluster: SwarmCluster;
let stack = '';
let dir = '';

beforeAll(async () => {
  await ensureBusyboxImage();
  cluster = await startSwarm({ images: [BUSYBOX_IMAGE], labels: { 1: { tier: 'db' } } });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
}, 120_000);

afterEach(async () => {
  if (!stack) return;
  const left = await leftovers(stack);
  await forceClean(stack);
  await rm(dir, { recursive: true, force: true });
  expect(left).toEqual({ services: [], configs: [], secrets: [], networks: [] });
});

function manager(): Docker {
  return cluster.manager.docker;
}

/** Whatever a failed test left, removed so it cannot leak into the next one. */
async function forceClean(s: string): Promise<void> {
  const d = manager();
  const filters = { label: [`${SWARM_LABELS.stack}=${s}`] };
  for (const x of await d.listServices({ filters }))
    await d
      .getService(x.ID)
      .remove()
      .catch(() => undefined);
  await waitUntil(async () => (await d.listTasks({ filters })).length === 0, 30_000, 'tasks gone').catch(() => undefined);
  for (const x of (await d.listConfigs({ filters })) as { ID: string }[])
    await d
      .getConfig(x.ID)
      .remove()
      .catch(() => undefined);
  for (const x of (await d.listSecrets({ filters })) as unknown as { ID: string }[])
    await d
      .getSecret(x.ID)
      .remove()
      .catch(() => undefined);
  for (const x of await d.listNetworks({ filters }))
    await d
      .getNetwork(x.Id)
      .remove()
      .catch(() => undefined);
}

async function leftovers(s: string) {
  const filters = { label: [`${SWARM_LABELS.stack}=${s}`] };
  const d = manager();
  return {
    services: (await d.listServices({ filters })).map((x) => x.Spec?.Name),
    configs: ((await d.listConfigs({ filters })) as { Spec?: { Name?: string } }[]).map((x) => x.Spec?.Name),
    secrets: ((await d.listSecrets({ filters })) as unknown as { Spec?: { Name?: string } }[]).map((x) => x.Spec?.Name),
    networks: (await d.listNetworks({ filters })).map((x) => x.Name),
  };
}

interface Extra {
  swarmServices?: Record<string, unknown>;
  variables?: Record<string, unknown>;
  discovery?: Record<string, unknown>;
}

/** A fresh stack name and folder with its profile. */
async function profile(services: Record<string, unknown>, extra: Extra = {}): Promise<void> {
  stack = `s${randomBytes(3).toString('hex')}`;
  dir = await mkdtemp(path.join(os.tmpdir(), 'stack-swarm-test-'));
  await writeProfile(services, extra);
}

async function writeProfile(services: Record<string, unknown>, extra: Extra = {}): Promise<void> {
  const body = {
    name: stack,
    runtime: 'swarm',
    swarm: { host: cluster.manager.host, readyTimeout: '30s', ...(extra.swarmServices ? { services: extra.swarmServices } : {}) },
    discovery: { backend: 'file', fileDirectory: path.join(dir, 'discovery'), ...extra.discovery },
    coordination: { dependencyTimeout: '30s' },
    ...(extra.variables ? { variables: extra.variables } : {}),
    services,
  };
  await writeFile(path.join(dir, 'stack.json'), JSON.stringify(body, null, 2));
}

const stackCmd = (...args: string[]) => runStack([...args, '--profile', 'stack.json'], dir);

/** busybox httpd on 8080 that first runs `before` (shell), published in host mode on `published`. */
function web(published: number, before = 'true', extra: Record<string, unknown> = {}) {
  return {
    image: BUSYBOX_IMAGE,
    pull: 'never',
    port: 8080,
    ports: [{ container: 8080, host: published }],
    command: ['/bin/sh', '-c', `${before} && exec /bin/httpd -f -p 8080 -h /www`],
    healthCheck: { strategy: 'http', endpoint: '/', interval: '200ms', retries: 3, startPeriod: '20s' },
    stopGracePeriod: '1s',
    restart: { policy: 'always', backoff: '100ms' },
    ...extra,
  };
}

/** The shell fails (exit 7) unless `service` answers on the overlay network. */
const mustReach = (service: string) => `wget -q -O - http://${service}:8080/ >/dev/null || exit 7`;

interface TaskInfo {
  NodeID: string;
  CreatedAt: string;
  DesiredState: string;
  Status: { State: string; Timestamp: string; Err?: string };
}

async function tasksOf(service: string): Promise<TaskInfo[]> {
  return (await manager().listTasks({ filters: { service: [`${stack}_${service}`] } })) as TaskInfo[];
}

const nodeNameOf = (id: string) => cluster.nodes.find((n) => n.id === id)?.name;

describe('stacks on a three-node swarm', { timeout: 150_000 }, () => {
  it('creates a chain of services across nodes in health order, each only once its dependency runs healthy', async () => {
    const [n1, n2, n3] = cluster.nodes.map((n) => n.name);
    await profile(
      {
        a: web(18081, 'sleep 1'),
        b: web(18082, `${mustReach('a')} && sleep 1`, { dependencies: ['a'] }),
        c: web(18083, mustReach('b'), { dependencies: ['b'] }),
      },
      {
        swarmServices: {
          a: { placement: { constraints: [`node.hostname==${n1}`] } },
          b: { placement: { constraints: [`node.hostname==${n2}`] } },
          c: { placement: { constraints: [`node.hostname==${n3}`] } },
        },
      },
    );
    const up = await stackCmd('up', '--detach');
    expect(up.code, up.stdout + up.stderr).toBe(0);

    const [a, b, c] = (await Promise.all(['a', 'b', 'c'].map(tasksOf))) as [TaskInfo[], TaskInfo[], TaskInfo[]];
    // One task each, never replaced (a dependent started early would have exited 7).
    expect([a, b, c].map((t) => t.length)).toEqual([1, 1, 1]);
    expect([a, b, c].map((t) => nodeNameOf(t[0]!.NodeID))).toEqual([n1, n2, n3]);
    // Each dependent's task was created after its dependency's task turned running (= healthy).
    expect(Date.parse(b[0]!.CreatedAt)).toBeGreaterThan(Date.parse(a[0]!.Status.Timestamp));
    expect(Date.parse(c[0]!.CreatedAt)).toBeGreaterThan(Date.parse(b[0]!.Status.Timestamp));

    const down = await stackCmd('down');
    expect(down.code, down.stderr).toBe(0);
  });

  it('spreads replicas over the nodes and honours a placement constraint', async () => {
    await profile(
      {
        web: { image: BUSYBOX_IMAGE, pull: 'never', command: ['/bin/httpd', '-f', '-p', '8080', '-h', '/www'], replicas: 3, stopGracePeriod: '1s' },
        db: { image: BUSYBOX_IMAGE, pull: 'never', command: ['/bin/httpd', '-f', '-p', '8080', '-h', '/www'], replicas: 2, stopGracePeriod: '1s' },
      },
      {
        swarmServices: {
          web: { placement: { preferences: ['spread=node.id'] } },
          db: { placement: { constraints: ['node.labels.tier==db'] } },
        },
      },
    );
    const up = await stackCmd('up', '--detach');
    expect(up.code, up.stderr).toBe(0);
    const web = (await tasksOf('web')).filter((t) => t.DesiredState === 'running');
    const db = (await tasksOf('db')).filter((t) => t.DesiredState === 'running');
    expect(new Set(web.map((t) => t.NodeID)).size).toBe(3);
    expect(db.map((t) => nodeNameOf(t.NodeID))).toEqual([cluster.nodes[1]!.name, cluster.nodes[1]!.name]);

    // `stack status` shows each task on its node, with the cluster's state and health.
    const status = await stackCmd('status', '--json');
    expect(status.code, status.stderr).toBe(0);
    const view = JSON.parse(status.stdout) as {
      services: Array<{ name: string; tasks?: Array<{ slot: number; node: string; state: string; health: string }> }>;
    };
    const shown = (name: string) => view.services.find((s) => s.name === name)?.tasks ?? [];
    expect(
      shown('web')
        .map((t) => t.node)
        .sort(),
    ).toEqual(web.map((t) => nodeNameOf(t.NodeID)).sort());
    expect(shown('web').map((t) => [t.slot, t.state, t.health])).toEqual([1, 2, 3].map((slot) => [slot, 'running', 'healthy']));
    expect(shown('db').map((t) => t.node)).toEqual([cluster.nodes[1]!.name, cluster.nodes[1]!.name]);
    const table = await stackCmd('status');
    for (const t of shown('web')) expect(table.stdout).toMatch(new RegExp(`task ${t.slot}\\s+running\\s+healthy\\s+on ${t.node}`));
    expect((await stackCmd('down')).code).toBe(0);
  });

  it('hands a rendered config and a secret to the container; the secret never stays on this machine', async () => {
    const secretValue = randomBytes(12).toString('hex');
    await profile(
      {
        app: {
          image: BUSYBOX_IMAGE,
          pull: 'never',
          // Prints the config, and only the size of the secret.
          command: [
            '/bin/sh',
            '-c',
            'cat /etc/stack/app.conf; echo "secret-bytes=$(cat /etc/stack/token.env | wc -c)"; ls -l /etc/stack/token.env; exec sleep 600',
          ],
          stopGracePeriod: '1s',
          templates: [
            { destination: 'app.conf', format: 'text', template: 'greeting={{greeting}}\n' },
            { destination: 'token.env', format: 'env', data: { TOKEN: '{{secret "token"}}' } },
          ],
        },
      },
      { variables: { greeting: { type: 'string', default: 'hello-swarm' }, token: { type: 'secret', required: true } } },
    );
    const up = await stackCmd('up', '--detach', '--var', `token=${secretValue}`);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout + up.stderr).not.toContain(secretValue);

    const secrets = (await manager().listSecrets({ filters: { label: [`${SWARM_LABELS.stack}=${stack}`] } })) as unknown as { Spec: { Name: string } }[];
    const configs = (await manager().listConfigs({ filters: { label: [`${SWARM_LABELS.stack}=${stack}`] } })) as { Spec: { Name: string } }[];
    expect(secrets.map((s) => s.Spec.Name)).toEqual([expect.stringMatching(/token\.env/)]);
    expect(configs.map((c) => c.Spec.Name)).toEqual([expect.stringMatching(/app\.conf/)]);

    let logs = '';
    await waitUntil(
      async () => {
        logs = (await stackCmd('logs', 'app')).stdout;
        return logs.includes('secret-bytes=');
      },
      20_000,
      'the container output',
    );
    expect(logs).toContain('greeting=hello-swarm');
    expect(logs).toContain(`secret-bytes=${'TOKEN='.length + secretValue.length + 1}`);
    expect(logs).toMatch(/-rw------- .*\/etc\/stack\/token\.env/);
    // No file on this machine holds the secret (the state folder included): the swarm runtime
    // takes rendered files in memory, so the service's config folder was never even created.
    expect(await filesContaining(dir, secretValue)).toEqual([]);
    expect(existsSync(path.join(dir, '.stack', stack, 'config', 'app'))).toBe(false);
    expect(existsSync(path.join(dir, '.stack', stack))).toBe(true);

    expect((await stackCmd('down')).code).toBe(0);
  });

  it('a second up updates only the service whose spec changed, and removes the one gone from the profile', async () => {
    await profile({
      a: web(18091, 'true'),
      b: web(18092, 'true', { dependencies: ['a'], environment: { COLOUR: 'red' } }),
      gone: web(18093, 'true'),
    });
    expect((await stackCmd('up', '--detach')).code).toBe(0);
    const before = await versions();

    await writeProfile({
      a: web(18091, 'true'),
      b: web(18092, 'true', { dependencies: ['a'], environment: { COLOUR: 'blue' } }),
    });
    const again = await stackCmd('up', '--detach');
    expect(again.code, again.stderr).toBe(0);
    const after = await versions();
    expect(after.a).toEqual(before.a);
    expect(after.b).not.toEqual(before.b);
    expect(after.gone).toBeUndefined();
    const b = await manager().getService(`${stack}_b`).inspect();
    expect(b.Spec.TaskTemplate.ContainerSpec.Env).toContain('COLOUR=blue');
    expect((await stackCmd('down')).code).toBe(0);
  });

  it('registers each task at its node and published port, and the registrations follow the tasks of a node whose daemon was killed', async () => {
    await profile(
      {
        web: {
          image: BUSYBOX_IMAGE,
          pull: 'never',
          command: ['/bin/httpd', '-f', '-p', '8080', '-h', '/www'],
          port: 8080,
          ports: [{ container: 8080, host: 18131 }],
          replicas: 2,
          stopGracePeriod: '1s',
          restart: { policy: 'always', backoff: '100ms' },
        },
      },
      { swarmServices: { web: { placement: { preferences: ['spread=node.id'] } } }, discovery: { heartbeatInterval: '1s', ttl: '5s' } },
    );
    expect((await stackCmd('up', '--detach')).code).toBe(0);
    const registry = createFileBackend({ directory: path.join(dir, 'discovery') });
    const registered = async () =>
      (await registry.lookup('web')).map((r) => ({ id: r.id, address: r.address, port: r.port, node: r.meta.node })).sort((a, b) => a.id.localeCompare(b.id));
    // What the registrations should be: each running task at its node's address and the published port.
    const expected = (tasks: SwarmInstanceStatus['tasks']) =>
      tasks
        .map((t) => ({ id: `${stack}-web-${t.slot}`, address: cluster.nodes.find((n) => n.name === t.node)!.address, port: 18131, node: t.node }))
        .sort((a, b) => a.id.localeCompare(b.id));
    const runtime = createSwarmRuntime({ host: cluster.manager.host });
    try {
      const [handle] = await runtime.discover(stack);
      const live = async () => {
        const status = (await runtime.inspect(handle!)) as SwarmInstanceStatus;
        return { status, tasks: status.tasks.filter((t) => t.desired === 'running' && t.state === 'running' && t.nodeState === 'ready') };
      };
      const before = (await live()).tasks;
      expect(new Set(before.map((t) => t.node)).size).toBe(2);
      expect(await registered()).toEqual(expected(before));
      // Reachable from this machine (outside the cluster) where they are registered.
      for (const r of await registered()) expect((await fetch(`http://${r.address}:${r.port}/`)).status).toBe(200);

      // A worker running a task loses its daemon: its task moves to the node that had none.
      const victim = cluster.nodes.slice(1).find((n) => before.some((t) => t.node === n.name))!;
      await cluster.killNode(victim);
      let now = await live();
      await waitUntil(
        async () => {
          now = await live();
          return now.tasks.length === 2 && !now.tasks.some((t) => t.node === victim.name);
        },
        60_000,
        'the replicas rescheduled off the dead node',
      );
      expect(new Set(now.tasks.map((t) => t.node)).size).toBe(2);
      expect(now.status.health).toBe('healthy');
      expect(now.status.replicas).toEqual({ desired: 2, ready: 2 });
      // The lost task is reported on the node that went down.
      expect(now.status.tasks.some((t) => t.node === victim.name && t.nodeState === 'down')).toBe(true);
      // Within a heartbeat or two (1 s here) the registrations follow: same ids (slots), new node.
      await waitUntil(async () => JSON.stringify(await registered()) === JSON.stringify(expected(now.tasks)), 10_000, 'the registrations to follow');
      for (const r of await registered()) expect((await fetch(`http://${r.address}:${r.port}/`)).status).toBe(200);
    } finally {
      await runtime.close();
    }
    // The node stays down for the rest of this file (its shims are removed with the cluster).
    expect((await stackCmd('down')).code).toBe(0);
    expect(await registry.lookup('web')).toEqual([]);
    await registry.close();
  });

  it('status and down still work after stack up was killed with SIGKILL, from a folder with no state', async () => {
    await profile({ a: web(18101, 'true'), b: web(18102, 'sleep 600', { dependencies: ['a'] }) });
    const up = new StackProcess(['up', '--profile', 'stack.json'], dir);
    await waitUntil(
      async () => (await manager().listServices({ filters: { label: [`${SWARM_LABELS.stack}=${stack}`] } })).length === 2,
      60_000,
      'both services created',
    );
    up.child.kill('SIGKILL');
    await up.exited;

    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'stack-swarm-elsewhere-'));
    try {
      await writeFile(path.join(elsewhere, 'stack.json'), await import('node:fs/promises').then((fs) => fs.readFile(path.join(dir, 'stack.json'))));
      const status = await runStack(['status', '--json', '--profile', 'stack.json'], elsewhere);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toContain(`${stack}_a`);
      const down = await runStack(['down', '--profile', 'stack.json'], elsewhere);
      expect(down.code, down.stderr).toBe(0);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('rolls back what the run created when a service never becomes healthy, and never creates its dependent', async () => {
    await profile({
      ok: web(18121, 'true'),
      sick: web(18122, 'exec sleep 600', { healthCheck: { strategy: 'http', endpoint: '/', interval: '200ms', retries: 2 } }),
      after: web(18123, 'true', { dependencies: ['sick'] }),
    });
    const up = await stackCmd('up', '--json');
    expect(up.code, up.stderr).toBe(1);
    expect(up.stdout).toMatch(/"service":"after"[^\n]*"state":"blocked"/);
    // afterEach: no service, config, secret or network of the stack is left.
  });

  it('refuses, before creating anything, checks that cannot run inside a task', async () => {
    await profile({
      a: { ...web(18111), healthCheck: { strategy: 'file', path: '/tmp/ready' } },
      b: { ...web(18112), healthCheck: { strategy: 'http', endpoint: '/', expectedStatus: 204 } },
    });
    const up = await stackCmd('up');
    expect(up.code).toBe(2);
    expect(up.stderr).toContain('services.a.healthCheck.strategy');
    expect(up.stderr).toContain('services.b.healthCheck');
    expect((await leftovers(stack)).services).toEqual([]);
  });
});

async function versions(): Promise<Record<string, number | undefined>> {
  const services = await manager().listServices({ filters: { label: [`${SWARM_LABELS.stack}=${stack}`] } });
  return Object.fromEntries(services.map((s) => [s.Spec?.Labels?.[SWARM_LABELS.service] ?? '', s.Version?.Index]));
}

/** Files under `root` whose contents include `needle`. */
async function filesContaining(root: string, needle: string): Promise<string[]> {
  const found: string[] = [];
  const { readFile } = await import('node:fs/promises');
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    if ((await readFile(file, 'utf8').catch(() => '')).includes(needle)) found.push(file);
  }
  expect(existsSync(root)).toBe(true);
  return found;
}
