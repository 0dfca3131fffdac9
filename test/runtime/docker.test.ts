/**
 * The Docker runtime against the real engine (Debian's docker.io). Images are built locally
 * (test/fixtures/docker-image.ts); nothing is pulled. Containers use host networking or ports
 * published on 127.0.0.1. Every test uses its own stack name, and afterEach checks that no
 * container, network or anonymous volume of that stack is left behind.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode, InvalidInputError, StackFailedError, UnreachableError } from '../../src/errors.js';
import type { ServiceSpec } from '../../src/profile/types.js';
import { createDockerRuntime } from '../../src/runtime/docker.js';
import { LABELS } from '../../src/runtime/docker-spec.js';
import type { Runtime, ServiceHandle, StartRequest } from '../../src/runtime/types.js';
import { busyboxService, ensureBusyboxHealthcheckImage, ensureBusyboxImage, httpdCommand, BUSYBOX_HEALTHCHECK_IMAGE } from '../fixtures/docker-image.js';
import { freePort, waitFor } from '../helpers/net.js';

const docker = new Docker();
const labelFilter = (stack: string) => ({ label: [`${LABELS.stack}=${stack}`] });

let stack: string;
let tmp: string;
let runtime: Runtime;
/** Anonymous volumes of containers started in this test: they must be gone afterwards. */
let anonymousVolumes: string[];

beforeAll(async () => {
  await ensureBusyboxImage();
  await ensureBusyboxHealthcheckImage();
});

beforeEach(async () => {
  stack = `t-${randomBytes(4).toString('hex')}`;
  tmp = await mkdtemp(path.join(os.tmpdir(), 'stack-docker-test-'));
  runtime = createDockerRuntime();
  anonymousVolumes = [];
});

afterEach(async () => {
  await runtime.close();
  const left = await leftovers(stack);
  await forceClean(stack);
  await rm(tmp, { recursive: true, force: true });
  expect(left).toEqual({ containers: [], networks: [], volumes: [] });
});

afterAll(async () => {
  await forceClean(stack);
});

async function leftovers(s: string) {
  const containers = await docker.listContainers({ all: true, filters: labelFilter(s) });
  const networks = await docker.listNetworks({ filters: labelFilter(s) });
  const { Volumes } = await docker.listVolumes();
  const volumes = (Volumes ?? []).filter((v) => anonymousVolumes.includes(v.Name) || v.Labels?.[LABELS.stack] === s);
  return { containers: containers.map((c) => c.Names[0]), networks: networks.map((n) => n.Name), volumes: volumes.map((v) => v.Name) };
}

/** Remove by label whatever a failed test left, so one failure does not leak into the next run. */
async function forceClean(s: string) {
  for (const c of await docker.listContainers({ all: true, filters: labelFilter(s) })) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true, v: true })
      .catch(() => undefined);
  }
  for (const n of await docker.listNetworks({ filters: labelFilter(s) }))
    await docker
      .getNetwork(n.Id)
      .remove()
      .catch(() => undefined);
  const { Volumes } = await docker.listVolumes({ filters: labelFilter(s) });
  for (const v of [...anonymousVolumes, ...(Volumes ?? []).map((x) => x.Name)])
    await docker
      .getVolume(v)
      .remove()
      .catch(() => undefined);
}

function request(service: ServiceSpec, overrides: Partial<StartRequest> = {}): StartRequest {
  return {
    stack,
    service,
    replica: 0,
    environment: { ...service.environment },
    files: [],
    configDir: path.join(tmp, 'config', service.name),
    stateDir: tmp,
    profileDir: tmp,
    ...overrides,
  };
}

async function start(req: StartRequest): Promise<ServiceHandle> {
  const handle = await runtime.start(req);
  const info = await docker.getContainer(handle.id).inspect();
  for (const m of info.Mounts) if (m.Type === 'volume' && m.Name && !m.Name.startsWith(`${stack}_`)) anonymousVolumes.push(m.Name);
  return handle;
}

async function httpGet(host: string, port: number): Promise<string> {
  const res = await fetch(`http://${host}:${port}/`);
  return res.text();
}

async function collectLogs(handle: ServiceHandle, opts: { tail?: number } = {}): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of runtime.logs(handle, { follow: false, ...opts })) lines.push(line);
  return lines;
}

const stopOpts = { signal: 'SIGTERM', gracePeriodMs: 30_000 };

describe('docker runtime', () => {
  it('runs a service with host networking, reachable on 127.0.0.1', async () => {
    const port = await freePort();
    const service = busyboxService({ network: 'host', port, command: httpdCommand(port) });
    await runtime.prepare(stack, [service], {});
    const handle = await start(request(service));

    expect(handle).toMatchObject({ runtime: 'docker', stack, service: 'web', replica: 0, containerName: `${stack}-web-1` });
    expect(runtime.endpoint(handle, port)).toEqual({ host: '127.0.0.1', port });
    const body = await waitFor(() => httpGet('127.0.0.1', port), 15_000, 'httpd on host network');
    expect(body).toBe('hello from busybox\n');
    expect(await runtime.inspect(handle)).toEqual({ running: true, health: 'none' });

    await runtime.stop(handle, stopOpts);
    await runtime.teardown(stack);
  });

  it('publishes ports on 127.0.0.1 on the stack network: mapped ports and the main port', async () => {
    const hostPort = await freePort();
    const service = busyboxService({
      port: 8081,
      ports: [{ container: 8080, host: hostPort, hostIp: '127.0.0.1', protocol: 'tcp' }],
      command: ['/bin/sh', '-c', `httpd -p 8081 -h /www && exec ${httpdCommand(8080, 'all').join(' ')}`],
    });
    await runtime.prepare(stack, [service], {});
    const networks = await docker.listNetworks({ filters: labelFilter(stack) });
    expect(networks.map((n) => n.Name)).toEqual([`${stack}_default`]);

    const handle = await start(request(service));
    expect(runtime.endpoint(handle, 8080)).toEqual({ host: '127.0.0.1', port: hostPort });
    const main = runtime.endpoint(handle, 8081);
    expect(main.host).toBe('127.0.0.1');
    expect(main.port).not.toBe(8081); // an ephemeral host port, not the container's

    expect(await waitFor(() => httpGet('127.0.0.1', hostPort), 15_000, 'mapped port')).toBe('hello from busybox\n');
    expect(await waitFor(() => httpGet(main.host, main.port), 15_000, 'main port')).toBe('hello from busybox\n');

    await runtime.stop(handle, stopOpts);
    await runtime.teardown(stack);
  });

  it('returns logs as lines from stdout and stderr, with tail and follow', async () => {
    const service = busyboxService({
      network: 'host',
      command: ['/bin/sh', '-c', 'echo one; echo two >&2; echo three; echo four; exec sleep 1000'],
    });
    const handle = await start(request(service));
    await waitFor(async () => (await collectLogs(handle)).length === 4, 15_000, 'four log lines');
    // Docker copies stdout and stderr separately: order is kept within a stream, not across them.
    const all = await collectLogs(handle);
    expect(all.filter((l) => l !== 'two')).toEqual(['one', 'three', 'four']);
    expect(all).toContain('two');
    const tail = await collectLogs(handle, { tail: 2 });
    expect(tail).toHaveLength(2);
    expect(tail).toContain('four');

    const abort = new AbortController();
    const followed: string[] = [];
    for await (const line of runtime.logs(handle, { follow: true, signal: abort.signal })) {
      followed.push(line);
      if (followed.length === 4) abort.abort();
    }
    expect(followed.sort()).toEqual(['four', 'one', 'three', 'two']);

    await runtime.stop(handle, stopOpts);
  });

  it('stops gracefully: the init process delivers SIGTERM, no SIGKILL is needed', async () => {
    const port = await freePort();
    const service = busyboxService({ network: 'host', command: httpdCommand(port) });
    const handle = await start(request(service));
    await waitFor(() => httpGet('127.0.0.1', port), 15_000, 'httpd');

    const exited = runtime.wait(handle);
    await runtime.stop(handle, stopOpts);
    // 143 = 128 + SIGTERM: the service died of the stop signal; 137 would mean SIGKILL after the grace period.
    expect(await exited).toEqual({ code: 143, signal: null });
    expect(await runtime.inspect(handle)).toEqual({ running: false });
    await runtime.stop(handle, stopOpts); // stopping what is gone is not an error (a second `down`)
  });

  it('lets the process exit after close while a wait is pending (stack up --detach)', async () => {
    const service = busyboxService({ network: 'host', command: ['/bin/sleep', '1000'] });
    const handle = await start(request(service));
    // Connections that keep the event loop alive: a pending wait is one of them until close.
    const connections = () => process.getActiveResourcesInfo().filter((r) => r === 'PipeWrap' || r === 'TCPSocketWrap').length;
    const before = connections();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    let settled = 0;
    // As many waits as a big stack has services: none may leak listeners or keep us alive.
    for (let i = 0; i < 12; i++) void runtime.wait(handle).finally(() => settled++);
    await waitFor(() => connections() >= before + 12, 15_000, 'wait requests in flight');
    await runtime.close();
    await waitFor(() => connections() <= before, 15_000, 'wait requests aborted');
    process.off('warning', onWarning);
    expect(warnings).toEqual([]);
    expect(settled).toBe(0); // the container still runs: no exit to report
    expect((await runtime.inspect(handle)).running).toBe(true);
    await runtime.stop(handle, stopOpts);
  });

  it('finishes removing stopped containers before close returns', async () => {
    const own = createDockerRuntime();
    const handle = await own.start(request(busyboxService({ network: 'host', command: ['/bin/sleep', '1000'] })));
    await own.stop(handle, stopOpts);
    await own.close();
    expect(await docker.listContainers({ all: true, filters: labelFilter(stack) })).toEqual([]);
  });

  it('finds the stack from a fresh runtime instance, by label, and stops it from there', async () => {
    const service = busyboxService({ network: 'host', command: ['/bin/sleep', '1000'], replicas: 2 });
    const first = await start(request(service));
    const second = await start(request(service, { replica: 1 }));
    const finished = await start(request(busyboxService({ name: 'task', network: 'host', command: ['/bin/true'] })));
    await waitFor(async () => !(await runtime.inspect(finished)).running, 15_000, 'task to exit');

    const fresh = createDockerRuntime();
    try {
      const found = await fresh.discover(stack);
      expect(found.map((h) => [h.service, h.replica, h.id, h.containerName])).toEqual([
        ['task', 0, finished.id, `${stack}-task-1`],
        ['web', 0, first.id, `${stack}-web-1`],
        ['web', 1, second.id, `${stack}-web-2`],
      ]);
      expect(await fresh.inspect(found[0]!)).toEqual({ running: false, exit: { code: 0, signal: null }, health: 'none' });
      for (const h of found) await fresh.stop(h, stopOpts);
      expect(await fresh.discover(stack)).toEqual([]);
    } finally {
      await fresh.close();
    }
  });

  it('converges: reuses an unchanged running container, recreates a changed or stopped one', async () => {
    const service = busyboxService({ network: 'host', command: ['/bin/sleep', '1000'], environment: { MODE: 'a' } });
    const original = await start(request(service));
    const again = await start(request(service));
    expect(again.id).toBe(original.id);

    const changed = await start(request(service, { environment: { MODE: 'b' } }));
    expect(changed.id).not.toBe(original.id);
    expect(await runtime.inspect(original)).toEqual({ running: false }); // removed

    await docker.getContainer(changed.id).stop({ t: 0 });
    const restarted = await start(request(service, { environment: { MODE: 'b' } }));
    expect(restarted.id).not.toBe(changed.id);
    expect((await runtime.inspect(restarted)).running).toBe(true);

    expect((await runtime.discover(stack)).map((h) => h.id)).toEqual([restarted.id]);
    await runtime.stop(restarted, stopOpts);
  });

  it('replaces a changed container gracefully (stop signal, not SIGKILL)', async () => {
    const port = await freePort();
    const service = busyboxService({ network: 'host', command: httpdCommand(port), environment: { MODE: 'a' } });
    const original = await start(request(service));
    await waitFor(() => httpGet('127.0.0.1', port), 15_000, 'httpd');
    const exited = runtime.wait(original);
    const replaced = await start(request(service, { environment: { MODE: 'b' } }));
    expect(await exited).toEqual({ code: 143, signal: null }); // 128 + SIGTERM
    await runtime.stop(replaced, stopOpts);
  });

  it('leaves nothing behind when a container cannot start (its host port is taken)', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const taken = (blocker.address() as net.AddressInfo).port;
      const service = busyboxService({ command: ['/bin/sleep', '1000'], ports: [{ container: 80, host: taken, hostIp: '127.0.0.1', protocol: 'tcp' }] });
      const err = await runtime.start(request(service)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StackFailedError);
      expect((err as Error).message).toMatch(/^starting service 'web': .*address already in use/);
      expect(await docker.listContainers({ all: true, filters: labelFilter(stack) })).toEqual([]);
      await runtime.teardown(stack);
    } finally {
      blocker.close();
    }
  });

  it('mounts rendered config files read-only at /etc/stack, and recreates the container when they change', async () => {
    const configDir = path.join(tmp, 'config', 'web');
    const hostPath = path.join(configDir, 'app.env');
    await import('node:fs/promises').then((fs) => fs.mkdir(configDir, { recursive: true }));
    await writeFile(hostPath, 'GREETING=hello\n');
    const files = [{ hostPath, destination: 'app.env', mode: 0o644 }];
    const service = busyboxService({
      network: 'host',
      command: ['/bin/sh', '-c', 'cat /etc/stack/app.env; touch /etc/stack/x 2>/dev/null || echo read-only; exec sleep 1000'],
    });
    const handle = await start(request(service, { files, configDir }));
    const lines = await waitFor(
      async () => {
        const l = await collectLogs(handle);
        return l.length >= 2 && l;
      },
      15_000,
      'config file in logs',
    );
    expect(lines).toEqual(['GREETING=hello', 'read-only']);

    expect((await start(request(service, { files, configDir }))).id).toBe(handle.id);
    await writeFile(hostPath, 'GREETING=changed\n');
    const recreated = await start(request(service, { files, configDir }));
    expect(recreated.id).not.toBe(handle.id);
    await runtime.stop(recreated, stopOpts);
  });

  it('starts several services at once on the stack network, which is created once', async () => {
    const services = ['a', 'b', 'c'].map((name) => busyboxService({ name, command: ['/bin/sleep', '1000'] }));
    const handles = await Promise.all(services.map((s) => start(request(s))));
    expect((await docker.listNetworks({ filters: labelFilter(stack) })).map((n) => n.Name)).toEqual([`${stack}_default`]);
    for (const h of handles) expect((await runtime.inspect(h)).running).toBe(true);
    // On the stack network each service answers to its name.
    const info = await docker.getContainer(handles[0]!.id).inspect();
    expect(info.NetworkSettings.Networks[`${stack}_default`]?.Aliases).toContain('a');

    await Promise.all(handles.map((h) => runtime.stop(h, stopOpts)));
    await runtime.teardown(stack);
  });

  it('removes anonymous volumes with the container and networks at teardown', async () => {
    const service = busyboxService({
      command: ['/bin/sleep', '1000'],
      volumes: [{ source: '', target: '/data', readOnly: false, type: 'volume' }],
    });
    // No prepare: start makes sure of the stack network itself.
    const handle = await start(request(service));
    expect(anonymousVolumes).toHaveLength(1);
    expect((await docker.listNetworks({ filters: labelFilter(stack) })).map((n) => n.Name)).toEqual([`${stack}_default`]);

    await runtime.stop(handle, stopOpts);
    await runtime.teardown(stack);
    // afterEach checks containers, networks and the anonymous volume are all gone.
  });

  it('keeps named volumes (prefixed and labelled with the stack) across down, as Compose does', async () => {
    const service = busyboxService({
      network: 'host',
      command: ['/bin/sh', '-c', 'echo kept > /data/file; exec sleep 1000'],
      volumes: [{ source: 'data', target: '/data', readOnly: false, type: 'volume' }],
    });
    const handle = await start(request(service));
    await runtime.stop(handle, stopOpts);

    const volume = await docker.getVolume(`${stack}_data`).inspect();
    expect(volume.Labels).toMatchObject({ [LABELS.stack]: stack, [LABELS.volume]: 'data' });
    const again = await start(request(busyboxService({ ...service, command: ['/bin/sh', '-c', 'cat /data/file; exec sleep 1000'] })));
    expect(await waitFor(async () => (await collectLogs(again))[0], 15_000, 'file from the volume')).toBe('kept');
    await runtime.stop(again, stopOpts);
    await runtime.teardown(stack); // as `down` does: after it, the container no longer holds the volume
    await docker.getVolume(`${stack}_data`).remove();
  });

  it('lets Docker apply the restart policy; wait resolves once the container stopped for good', async () => {
    const service = busyboxService({
      name: 'flaky',
      network: 'host',
      command: ['/bin/sh', '-c', 'echo attempt; exit 3'],
      restart: { policy: 'on-failure', maxRetries: 2, backoffMs: 100, maxBackoffMs: 1000 },
    });
    expect(runtime.appliesRestartPolicy).toBe(true);
    const handle = await start(request(service));
    expect(await runtime.wait(handle)).toEqual({ code: 3, signal: null });
    expect(await collectLogs(handle)).toEqual(['attempt', 'attempt', 'attempt']);
    await runtime.stop(handle, stopOpts);
  });

  it("reports the image's own HEALTHCHECK status", async () => {
    const port = await freePort();
    const service = busyboxService({
      network: 'host',
      image: BUSYBOX_HEALTHCHECK_IMAGE,
      environment: { HTTP_PORT: String(port) },
      command: httpdCommand(port),
      healthCheck: { strategy: 'docker', intervalMs: 200, timeoutMs: 1000, retries: 3, startPeriodMs: 0 },
    });
    const handle = await start(request(service));
    // The image's own test, on the profile's (shorter) schedule.
    const { Config } = await docker.getContainer(handle.id).inspect();
    expect(Config.Healthcheck?.Test?.join(' ')).toContain('wget -q -O /dev/null http://127.0.0.1:${HTTP_PORT:-8080}/');
    expect(Config.Healthcheck?.Interval).toBe(200_000_000);
    const health = await waitFor(
      async () => {
        const { health: h } = await runtime.inspect(handle);
        return h === 'healthy' && h;
      },
      30_000,
      'healthy',
    );
    expect(health).toBe('healthy');
    await runtime.stop(handle, stopOpts);
  });

  it("fails clearly when an image is absent and pull is 'never', naming the image", async () => {
    const service = busyboxService({ image: 'atproto-stacks-test/absent:never', pull: 'never' });
    const err = await runtime.prepare(stack, [service], {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StackFailedError);
    expect((err as Error).message).toBe("image atproto-stacks-test/absent:never (service 'web') is not present on the Docker engine and pull is 'never'");
    // Nothing half-done: no network was created (afterEach checks).
  });

  it("lets --pull never override the services' policy", async () => {
    const never = createDockerRuntime({ pull: 'never' });
    try {
      const service = busyboxService({ image: 'atproto-stacks-test/absent:flag', pull: 'always' });
      await expect(never.prepare(stack, [service], {})).rejects.toThrow(/not present on the Docker engine and pull is 'never'/);
    } finally {
      await never.close();
    }
  });

  it("fails clearly when a missing image cannot be pulled ('missing'): an unreachable registry is exit 3", async () => {
    // A registry on a closed loopback port: the pull fails without leaving this machine.
    const image = `127.0.0.1:${await freePort()}/absent:1`;
    const progress: string[] = [];
    const pulling = createDockerRuntime({ onPullProgress: (_s, line) => progress.push(line) });
    try {
      const service = busyboxService({ network: 'host', image, pull: 'missing' });
      const err = await pulling.prepare(stack, [service], {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnreachableError);
      expect((err as UnreachableError).code).toBe('registry_unreachable');
      expect((err as UnreachableError).exitCode).toBe(3);
      const message = (err as Error).message;
      expect(message.startsWith(`cannot pull image ${image} (service 'web'): `)).toBe(true);
      expect(message).not.toContain('HTTP code'); // the engine's reason, not dockerode's wrapper
    } finally {
      await pulling.close();
    }
  });

  it('reports every input problem at once as invalid input (exit 2), before contacting the engine', async () => {
    const away = createDockerRuntime({ host: `unix://${tmp}/no-docker.sock` }); // never reached
    const err = await away
      .prepare(
        stack,
        [
          busyboxService({ name: 'a', image: undefined }),
          busyboxService({ name: 'b', stopSignal: 'SIGNOPE' }),
          busyboxService({ name: 'c', stopSignal: 'TERM' }),
        ],
        {},
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).exitCode).toBe(ExitCode.invalidInput);
    expect((err as InvalidInputError).problems.map((p) => [p.code, p.path])).toEqual([
      ['missing_image', 'services.a.image'],
      ['invalid_signal', 'services.b.stopSignal'],
    ]);
  });

  it('stops preparing when aborted, creating nothing', async () => {
    const abort = new AbortController();
    abort.abort();
    const err = await runtime.prepare(stack, [busyboxService()], { signal: abort.signal }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    // afterEach checks that no network was created.
  });

  it('uses an image already present without pulling', async () => {
    const progress: string[] = [];
    const withProgress = createDockerRuntime({ onPullProgress: (_s, line) => progress.push(line) });
    try {
      await withProgress.prepare(stack, [busyboxService({ network: 'host', pull: 'missing' })], {});
      expect(progress).toEqual([]);
    } finally {
      await withProgress.close();
    }
  });

  it('reports an unreachable engine (DOCKER_HOST at a missing socket) as UnreachableError, exit 3', async () => {
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${tmp}/no-docker.sock`;
    const away = createDockerRuntime();
    try {
      const err = await away.prepare(stack, [busyboxService()], {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnreachableError);
      expect((err as UnreachableError).exitCode).toBe(ExitCode.unreachable);
      expect((err as Error).message).toContain(`Docker engine at unix://${tmp}/no-docker.sock is not reachable`);
      await expect(away.discover(stack)).rejects.toBeInstanceOf(UnreachableError);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
      await away.close();
    }
  });
});
