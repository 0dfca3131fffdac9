/**
 * Issue 12 against real discovery backends (file, etcd, NATS, and the Consul double) and real
 * processes, through `upStack` as `stack up` runs it: registering and deregistering instances of
 * a referenced service from elsewhere re-renders the dependent's file and signals it once per
 * quiescence window; a stopped backend during a watch leaves the file as it was and warns; an
 * HTTP check answering 503 withdraws the service from discovery and restarts it after the
 * configured failures. Real time runs here, but no test asserts a duration.
 */
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiscovery } from '../../src/discovery/index.js';
import type { DiscoveryManager } from '../../src/discovery/manager.js';
import type { StackController } from '../../src/engine/engine.js';
import { upStack } from '../../src/engine/stack.js';
import type { EngineEvent } from '../../src/engine/types.js';
import { startConsulDouble } from '../fixtures/consul-double.js';
import { startEtcd } from '../fixtures/etcd.js';
import { startNats } from '../fixtures/nats.js';
import { freePort, freePortRange, waitFor } from '../helpers/net.js';
import { EventLog, httpService, makeStack, nodeProgram, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

interface Backend {
  name: string;
  start(dir: string): Promise<{ discovery: Record<string, unknown>; stop?: () => Promise<void>; destroy: () => Promise<void> }>;
}

const BACKENDS: Backend[] = [
  { name: 'file', start: async (dir) => ({ discovery: { backend: 'file', fileDirectory: path.join(dir, 'discovery') }, destroy: async () => undefined }) },
  {
    name: 'etcd',
    async start() {
      const server = await startEtcd();
      return { discovery: { backend: 'etcd', etcdEndpoints: [server.endpoint] }, stop: () => server.stop(), destroy: () => server.destroy() };
    },
  },
  {
    name: 'nats',
    async start() {
      const server = await startNats();
      return { discovery: { backend: 'nats', natsUrl: server.url }, stop: () => server.stop(), destroy: () => server.destroy() };
    },
  },
  {
    name: 'consul',
    async start() {
      const server = await startConsulDouble();
      return { discovery: { backend: 'consul', consulAddress: server.address }, destroy: () => server.close() };
    },
  },
];

/** A long-running program that counts the SIGHUPs it gets in a file. */
const hupCounter = (file: string) =>
  nodeProgram(
    `const fs=require('fs');process.on('SIGHUP',()=>fs.appendFileSync(${JSON.stringify(file)},'x'));process.on('SIGTERM',()=>process.exit(0));setInterval(()=>{},1e6)`,
  );

async function start(dir: string, discovery: Record<string, unknown>, services: Record<string, unknown>) {
  const input = makeStack('reload', dir, services, { discovery: { ...discovery, ttl: '10s', heartbeatInterval: '1s' } });
  const log = new EventLog();
  const controller: StackController = upStack(input, { onEvent: log.push, cwd: dir });
  cleanups.push(() => controller.stop());
  const report = await controller.ready;
  expect(report.outcome, JSON.stringify(report.failed)).toBe('up');
  const other: DiscoveryManager = await createDiscovery(input.profile.discovery, { cwd: dir });
  cleanups.push(() => other.close());
  const stateDir = input.profile.stateDir!;
  const until = (what: string, match: (e: EngineEvent) => boolean, timeoutMs = 20_000) => waitFor(() => log.events.find(match), timeoutMs, what);
  return { input, log, controller, other, until, file: (service: string, name: string) => readFile(path.join(stateDir, 'config', service, name), 'utf8') };
}

describe.each(BACKENDS)('templates follow discovery on $name', (backend) => {
  it('instances registered and deregistered elsewhere re-render the file and signal its service once per window; a stopped backend keeps the file', async () => {
    const { dir, cleanup } = await tempDir('reload-');
    cleanups.push(cleanup);
    const server = await backend.start(dir);
    cleanups.push(server.destroy);
    const port = await freePort();
    const hups = path.join(dir, 'hups');
    const s = await start(dir, server.discovery, {
      api: httpService(port),
      app: {
        ...hupCounter(hups),
        dependencies: ['api'],
        templates: [
          {
            destination: 'upstreams.env',
            data: { UPSTREAMS: '{{#each service.api.instances}}{{url}} {{/each}}' },
            changeMode: 'signal',
            wait: { min: '300ms', max: '3s' },
          },
        ],
      },
    });
    expect(await s.file('app', 'upstreams.env')).toBe(`UPSTREAMS='http://127.0.0.1:${port} '\n`);

    await s.other.register({ id: 'api-far-1', service: 'api', address: '10.1.0.1', port: 80, url: 'http://10.1.0.1:80' }, { ttlMs: 30_000 });
    await s.other.register({ id: 'api-far-2', service: 'api', address: '10.1.0.2', port: 80, url: 'http://10.1.0.2:80' }, { ttlMs: 30_000 });
    await s.until('a reload', (e) => e.type === 'reload' && e.service === 'app');
    await waitFor(async () => (await s.file('app', 'upstreams.env')).includes('10.1.0.2') || undefined, 10_000, 'both remote instances in the file');
    await waitFor(() => existsSync(hups) || undefined, 5_000, 'the SIGHUP');
    const changed = () => s.log.events.filter((e) => e.type === 'render' && e.outcome === 'changed').length;
    const reloads = () => s.log.events.filter((e) => e.type === 'reload').length;
    expect(await s.file('app', 'upstreams.env')).toContain('10.1.0.1');
    // Every change is signalled once (a signal is delivered just after its render event)…
    const signalled = async () => reloads() === changed() && (await readFile(hups, 'utf8')).length === reloads();
    await waitFor(async () => (await signalled()) || undefined, 10_000, 'one signal per change');
    // …and both registrations fell in one quiescence window (a slow backend may split them in two).
    expect(changed()).toBeLessThanOrEqual(2);

    const before = reloads();
    await s.other.deregister('api', 'api-far-1');
    await s.other.deregister('api', 'api-far-2');
    await waitFor(async () => !(await s.file('app', 'upstreams.env')).includes('10.1.0') || undefined, 10_000, 'the remote instances gone from the file');
    await waitFor(() => reloads() > before || undefined, 5_000, 'a reload');
    expect(s.log.events.filter((e) => e.type === 'state' && e.service === 'app' && e.state === 'starting')).toHaveLength(1); // signalled, never restarted

    if (server.stop) {
      const kept = await s.file('app', 'upstreams.env');
      await server.stop();
      await s.until('a warning about the backend', (e) => e.type === 'warning' && e.message.startsWith('discovery ('), 30_000);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(await s.file('app', 'upstreams.env')).toBe(kept);
    }
  }, 90_000);
});

describe('health has consequences, with real processes', () => {
  it('a service answering 503 is absent from discovery while unhealthy, restarted after the configured failures, and registered again', async () => {
    const { dir, cleanup } = await tempDir('unhealthy-');
    cleanups.push(cleanup);
    const port = await freePort();
    const healthFile = path.join(dir, 'healthy');
    await writeFile(healthFile, '');
    const api = httpService(port, { HEALTH_FILE: healthFile }, { restart: { policy: 'on-failure', backoff: '200ms', failuresBeforeRestart: 3 } });
    Object.assign(api.healthCheck as Record<string, unknown>, { retries: 1, startPeriod: '10s' });
    const s = await start(dir, { backend: 'file', fileDirectory: path.join(dir, 'discovery') }, { api });
    expect(await s.other.lookup('api')).toHaveLength(1);

    await rm(healthFile);
    await s.until('withdrawn', (e) => e.type === 'deregistered' && e.service === 'api');
    s.other.invalidate();
    expect(await s.other.lookup('api')).toEqual([]);
    const restart = await s.until('the restart', (e) => e.type === 'restart' && e.service === 'api');
    expect(restart).toMatchObject({ exit: expect.stringContaining('3 failed checks in a row') });
    await writeFile(healthFile, '');
    await s.until('healthy again', (e) => e.type === 'state' && e.service === 'api' && e.state === 'healthy' && s.controller.status()[0]!.restarts === 1);
    s.other.invalidate();
    await waitFor(async () => ((await s.other.lookup('api')).length === 1 ? true : (s.other.invalidate(), undefined)), 10_000, 'registered again');
  }, 60_000);
});

describe('replicas, with real processes', () => {
  it('scale up and down with `up` again: each replica on port + index, registered; the others untouched', async () => {
    const { dir, cleanup } = await tempDir('replicas-');
    cleanups.push(cleanup);
    const port = await freePortRange(3); // replicas listen on port, port + 1, port + 2
    const { fixture } = await import('./helpers.js');
    const api = (replicas: number) => ({
      ...httpService(port),
      command: ['/bin/sh', '-c', `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(fixture)} --port=$$STACK_PORT`],
      replicas,
    });
    const discovery = { backend: 'file', fileDirectory: path.join(dir, 'discovery') };
    const up = async (replicas: number) => {
      const input = makeStack('replicas', dir, { api: api(replicas) }, { discovery: { ...discovery, ttl: '10s', heartbeatInterval: '1s' } });
      const controller = upStack(input, { cwd: dir });
      cleanups.push(() => controller.stop());
      const report = await controller.ready;
      expect(report.outcome, JSON.stringify(report.failed)).toBe('up');
      return { controller, input, status: report.services[0]! };
    };
    const pids = (st: { handle?: { pid?: number }; replicas?: { handle?: { pid?: number } }[] }) => [
      st.handle?.pid,
      ...(st.replicas ?? []).map((r) => r.handle?.pid),
    ];

    const first = await up(2);
    const two = pids(first.status);
    expect(two).toHaveLength(2);
    const reader = await createDiscovery(first.input.profile.discovery, { cwd: dir });
    cleanups.push(() => reader.close());
    expect((await reader.lookup('api')).map((i) => i.port)).toEqual([port, port + 1]);
    await first.controller.detach();

    const second = await up(3);
    const three = pids(second.status);
    expect(three.slice(0, 2)).toEqual(two);
    expect(three[2]).toBeGreaterThan(0);
    reader.invalidate();
    expect((await reader.lookup('api')).map((i) => i.port)).toEqual([port, port + 1, port + 2]);
    await second.controller.detach();

    const third = await up(1);
    expect(pids(third.status)).toEqual([two[0]]);
    reader.invalidate();
    await waitFor(
      async () => {
        reader.invalidate();
        return (await reader.lookup('api')).length === 1 || undefined;
      },
      10_000,
      'the scaled-down replicas deregistered',
    );
    await third.controller.stop();
  }, 90_000);
});

describe('dependents hear about it, with real processes', () => {
  it('a restarted required dependency restarts its dependent; an optional one only re-renders it', async () => {
    const { dir, cleanup } = await tempDir('deps-');
    cleanups.push(cleanup);
    const port = await freePort();
    const s = await start(
      dir,
      { backend: 'file', fileDirectory: path.join(dir, 'discovery') },
      {
        api: httpService(port, {}, { restart: { policy: 'on-failure', backoff: '100ms' } }),
        app: { ...nodeProgram('setInterval(()=>{},1e6)'), dependencies: ['api'] },
        web: {
          ...nodeProgram('setInterval(()=>{},1e6)'),
          dependencies: [{ name: 'api', type: 'optional' }],
          templates: [{ destination: 'api.env', data: { API: '{{service.api.url}}' }, changeMode: 'signal' }],
        },
      },
    );
    const api = s.controller.status().find((st) => st.name === 'api')!;
    process.kill(api.handle!.pid!, 'SIGKILL');
    await s.until('app restarted', (e) => e.type === 'reload' && e.service === 'app' && e.action === 'restart');
    await s.until(
      'app healthy again',
      (e) => e.type === 'state' && e.service === 'app' && e.state === 'healthy' && s.log.states('app').filter((x) => x === 'healthy').length === 2,
    );
    await s.until('web re-rendered', (e) => e.type === 'render' && e.service === 'web' && e.reason.includes("dependency 'api' was restarted"));
    expect(s.log.states('web').filter((x) => x === 'starting')).toHaveLength(1);
    expect(s.controller.status().find((st) => st.name === 'app')!.restarts).toBe(1);
  }, 60_000);
});
