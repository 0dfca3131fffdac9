/**
 * The docker runtime of a profile with `hosts:` (runtime/docker-hosts.ts): each service goes to its
 * host's engine, handles remember their host, and stop, inspect, discover and teardown reach every
 * engine the stack uses. Engines are in-memory runtimes here (one per engine address); the real
 * thing, with a dockerd per host, is test/multihost/hub-spoke.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { RuntimeHosts } from '../../src/drivers/runtime/registry.js';
import { hubPlacementProblems } from '../../src/engine/placement.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import { createDockerHostsRuntime } from '../../src/runtime/docker-hosts.js';
import { createMemoryRuntime, type MemoryRuntime } from '../../src/runtime/memory.js';
import type { Runtime, StartRequest } from '../../src/runtime/types.js';
import { realClock } from '../../src/util/clock.js';
import { processService } from './helpers.js';

const HOSTS = {
  a: { address: '10.231.9.11', docker: 'tcp://10.231.9.11:2375' },
  b: { address: '10.231.9.12', docker: 'unix:///run/b/docker.sock' },
  c: { address: '10.231.9.13' },
};

function engines(opts: { failing?: string[] } = {}) {
  const made = new Map<string, MemoryRuntime>();
  const engineRuntime = (url: string | undefined): Runtime => {
    const key = url ?? 'default';
    const runtime = createMemoryRuntime({ clock: realClock, name: 'docker', appliesRestartPolicy: true });
    made.set(key, runtime);
    if (!opts.failing?.includes(key)) return runtime;
    return {
      ...runtime,
      discover: async () => {
        throw new Error(`engine ${key} is away`);
      },
    };
  };
  return { made, engineRuntime };
}

const docker = (name: string, host: string) => processService(name, { runtime: 'docker', image: 'busybox:test', host });

function request(service: ReturnType<typeof docker>): StartRequest {
  return { stack: 'st', service, replica: 0, environment: {}, files: [], configDir: '/tmp/x', stateDir: '/tmp/x', profileDir: '/tmp' };
}

describe('docker across hosts: hub-spoke', () => {
  const layout = (local?: string): RuntimeHosts => ({ hosts: HOSTS, hub: true, ...(local ? { local } : {}) });

  it("starts each container on its host's engine; the handle remembers the host, and stop and inspect go there", async () => {
    const { made, engineRuntime } = engines();
    const runtime = createDockerHostsRuntime({ hosts: layout('c'), engineRuntime });
    const services = [docker('db', 'a'), docker('api', 'b'), docker('web', 'c')];
    await runtime.prepare('st', services, {});
    const handles = await Promise.all(services.map((s) => runtime.start(request(s))));
    expect(handles.map((h) => [h.service, h.host])).toEqual([
      ['db', 'a'],
      ['api', 'b'],
      ['web', 'c'],
    ]);
    // One engine per address; c has none, and the hub runs on c: the default engine.
    expect([...made.keys()].sort()).toEqual(['default', 'tcp://10.231.9.11:2375', 'unix:///run/b/docker.sock']);
    expect(
      made
        .get('tcp://10.231.9.11:2375')!
        .running()
        .map((i) => i.handle.service),
    ).toEqual(['db']);
    expect(
      made
        .get('unix:///run/b/docker.sock')!
        .running()
        .map((i) => i.handle.service),
    ).toEqual(['api']);
    expect(
      made
        .get('default')!
        .running()
        .map((i) => i.handle.service),
    ).toEqual(['web']);

    // A process that did not start them (the state file's handles, or discover after a kill -9).
    const other = createDockerHostsRuntime({ hosts: layout('c'), engineRuntime: (url) => made.get(url ?? 'default')! });
    const found = await other.discover('st');
    expect(found.map((h) => [h.service, h.host])).toEqual([
      ['api', 'b'],
      ['db', 'a'],
      ['web', 'c'],
    ]);
    expect(await other.inspect(found.find((h) => h.service === 'db')!)).toEqual({ running: true });
    for (const h of found) await other.stop(h, { signal: 'SIGTERM', gracePeriodMs: 100 });
    for (const engine of made.values()) expect(engine.running()).toEqual([]);
    await other.teardown('st');
    await runtime.close();
  });

  it('refuses, before any engine is touched, a container on a host without docker: that is not the hub’s', async () => {
    const { made, engineRuntime } = engines();
    const runtime = createDockerHostsRuntime({ hosts: layout('a'), engineRuntime });
    await expect(runtime.prepare('st', [docker('db', 'a'), docker('web', 'c')], {})).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/'web' runs on host 'c', which has no docker: engine address, and the hub runs on host 'a'/),
    });
    expect(made.size).toBe(0);
    const unnamed = createDockerHostsRuntime({ hosts: layout(), engineRuntime });
    await expect(unnamed.prepare('st', [docker('web', 'c')], {})).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringContaining('the hub does not say which host it runs on'),
    });
  });

  it('one engine away hides only its own containers, with a warning naming it', async () => {
    const { made, engineRuntime } = engines({ failing: ['unix:///run/b/docker.sock'] });
    const warnings: string[] = [];
    const runtime = createDockerHostsRuntime({ hosts: layout('c'), engineRuntime, onWarning: (m) => warnings.push(m) });
    await runtime.start(request(docker('db', 'a')));
    expect((await runtime.discover('st')).map((h) => [h.service, h.host])).toEqual([['db', 'a']]);
    expect(warnings).toEqual([
      expect.stringMatching(/on the Docker engine at unix:\/\/\/run\/b\/docker\.sock \(host b\) were not looked for: engine .* is away/),
    ]);
    expect(made.size).toBe(3);
  });
});

describe('docker across hosts: peer-to-peer and mesh', () => {
  it("every container of this host's share runs on this host's engine, and only that engine is looked at", async () => {
    const { made, engineRuntime } = engines();
    const runtime = createDockerHostsRuntime({ hosts: { hosts: HOSTS, hub: false, local: 'b' }, engineRuntime });
    await runtime.prepare('st', [docker('api', 'b')], {});
    await runtime.start(request(docker('api', 'b')));
    expect(await runtime.discover('st')).toEqual([expect.objectContaining({ service: 'api', host: 'b' })]);
    expect([...made.keys()]).toEqual(['unix:///run/b/docker.sock']);
  });

  it("two hosts' shares on one engine: each labels its containers with its host (host: all too), and finds only its own", async () => {
    // One engine for both, which labels each container with its spec's host as Docker does (docker-spec.ts).
    const shared = createMemoryRuntime({ clock: realClock, name: 'docker', appliesRestartPolicy: true });
    const labels = new Map<string, string>();
    const labelling: Runtime = {
      ...shared,
      async start(req) {
        const handle = await shared.start(req);
        if (req.service.host) labels.set(handle.id, req.service.host);
        return { ...handle, ...(req.service.host ? { host: req.service.host } : {}) };
      },
      discover: async (stack) => (await shared.discover(stack)).map((h) => ({ ...h, ...(labels.has(h.id) ? { host: labels.get(h.id)! } : {}) })),
    };
    const sameEngine = { a: { address: '10.231.9.11' }, c: { address: '10.231.9.13' } };
    const onA = createDockerHostsRuntime({ hosts: { hosts: sameEngine, hub: false, local: 'a' }, engineRuntime: () => labelling });
    const onC = createDockerHostsRuntime({ hosts: { hosts: sameEngine, hub: false, local: 'c' }, engineRuntime: () => labelling });
    await onA.start(request(docker('db', 'a')));
    expect((await onA.start(request(docker('relay', 'all')))).host).toBe('a');
    await onC.start(request(docker('web', 'all'))); // (one engine holds one container per name: not the same service twice)
    expect((await onA.discover('st')).map((h) => [h.service, h.host])).toEqual([
      ['db', 'a'],
      ['relay', 'a'],
    ]);
    expect((await onC.discover('st')).map((h) => [h.service, h.host])).toEqual([['web', 'c']]);
  });
});

describe('hub-spoke placement at `stack up`', () => {
  const profile = mkDeploymentProfile({
    name: 'hub',
    hosts: HOSTS,
    coordination: { strategy: 'hub-spoke' },
    discovery: { backend: 'etcd', etcdEndpoints: ['http://10.231.9.11:2379'] },
    services: {
      db: { image: 'busybox:test', host: 'a' },
      web: { image: 'busybox:test', host: 'c' },
      tool: { runtime: 'process', command: ['/bin/true'], host: 'b' },
    },
  } as never);

  it('says every problem at once: a process on another host than the hub’s, a container on a host without an engine', () => {
    expect(hubPlacementProblems(profile, ['db', 'web', 'tool'], 'a').map((p) => [p.code, p.path])).toEqual([
      ['no_docker_engine', 'hosts.c.docker'],
      ['not_on_hub', 'services.tool.host'],
    ]);
    expect(hubPlacementProblems(profile, ['db', 'web'], 'c')).toEqual([]);
    expect(hubPlacementProblems(profile, ['db'], 'x').map((p) => p.code)).toEqual(['unknown_host']);
  });
});
