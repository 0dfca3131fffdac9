/**
 * After startup (issue 12), on the memory runtime, the memory discovery backend and a manual clock:
 * templates follow discovery (re-render after the quiescence window, write only on change, then
 * restart / signal / script / noop), unhealthy services are withdrawn and restarted, dependents
 * react to a dependency's restart per edge, and a required dependency down past dependencyTimeout
 * blocks its dependents until it is back. Clock times are the manual clock's.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiscovery } from '../../src/discovery/index.js';
import type { DiscoveryManager } from '../../src/discovery/manager.js';
import type { StackController } from '../../src/engine/engine.js';
import { createTemplateHooks } from '../../src/engine/templates.js';
import type { EngineEvent } from '../../src/engine/types.js';
import type { MemoryScript } from '../../src/runtime/memory.js';
import { drive, memCheck, memoryStack } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Scripts = Record<string, MemoryScript | MemoryScript[]>;

async function setup(services: Record<string, Record<string, unknown>>, scripts: Scripts = {}, before?: (d: DiscoveryManager) => Promise<void>) {
  const script = (service: string, attempt: number): MemoryScript => {
    const sc = scripts[service];
    if (!sc) return {};
    return Array.isArray(sc) ? (sc[Math.min(attempt, sc.length - 1)] ?? {}) : sc;
  };
  const s = await memoryStack(services, { script });
  const discovery = await createDiscovery(s.input.profile.discovery);
  await before?.(discovery);
  const stateDir = s.input.profile.stateDir!;
  const hooks = await createTemplateHooks(s.input.profile, Object.keys(services), { stateDir, cwd: s.dir, discovery });
  const controller: StackController = s.start({ discovery, ...(hooks ? { renderConfigs: hooks.renderConfigs, rerender: hooks.rerender } : {}) });
  cleanups.push(async () => {
    await drive(s.clock, controller.stop());
    await discovery.close();
    await s.cleanup();
  });
  const report = await drive(s.clock, controller.ready);
  expect(report.outcome).toBe('up');
  /** Drive the clock until an event matches (and return it). */
  const until = (match: (e: EngineEvent) => boolean): Promise<EngineEvent> => {
    const seen = s.log.events.find(match);
    if (seen) return Promise.resolve(seen);
    return drive(s.clock, new Promise<EngineEvent>((resolve) => controller.subscribe((e) => match(e) && resolve(e))));
  };
  const file = (service: string, destination: string) => readFile(path.join(stateDir, 'config', service, destination), 'utf8');
  const attempts = (service: string) => s.runtime.instances.filter((i) => i.handle.service === service).length;
  return { ...s, discovery, controller, until, file, attempts, status: (name: string) => controller.status().find((st) => st.name === name)! };
}

const upstreams = (extra: Record<string, unknown> = {}) => ({
  destination: 'app.env',
  data: { UPSTREAMS: '{{#each service.api.instances}}{{url}} {{/each}}' },
  wait: { min: '500ms', max: '2s' },
  ...extra,
});

const remote = (id: string, port: number) => ({ id, service: 'api', address: '10.0.0.2', port, url: `http://10.0.0.2:${port}` });

describe('templates follow discovery', () => {
  it('registering and deregistering instances re-renders the file and restarts its service once per quiescence window', async () => {
    const s = await setup({ api: { port: 7000 }, app: { dependencies: ['api'], templates: [upstreams()] } });
    expect(await s.file('app', 'app.env')).toBe("UPSTREAMS='http://127.0.0.1:7000 '\n");
    const renders = () => s.log.events.filter((e) => e.type === 'render' && e.outcome === 'changed').length;

    // Two registrations in one window: one render, one restart.
    await s.discovery.register(remote('api-r1', 7001));
    await s.discovery.register(remote('api-r2', 7002));
    await s.until((e) => e.type === 'state' && e.service === 'app' && e.state === 'healthy' && s.attempts('app') === 2);
    expect(await s.file('app', 'app.env')).toBe("UPSTREAMS='http://10.0.0.2:7001 http://10.0.0.2:7002 http://127.0.0.1:7000 '\n");
    expect(renders()).toBe(1);
    expect(s.log.events.filter((e) => e.type === 'reload' && e.service === 'app')).toEqual([
      expect.objectContaining({ action: 'restart', template: 'app.env', reason: expect.stringContaining("records of 'api' changed") }),
    ]);
    // The restarted instance got the same file (rendered against the same records).
    expect(s.runtime.current('app')?.request.files[0]?.destination).toBe('app.env');
    expect(s.status('app').lastRender).toMatchObject({ template: 'app.env', outcome: 'changed' });

    await s.discovery.deregister('api', 'api-r1');
    await s.discovery.deregister('api', 'api-r2');
    await s.until((e) => e.type === 'state' && e.service === 'app' && e.state === 'healthy' && s.attempts('app') === 3);
    expect(await s.file('app', 'app.env')).toBe("UPSTREAMS='http://127.0.0.1:7000 '\n");
    expect(renders()).toBe(2);
    expect(s.attempts('api')).toBe(1);
  });

  it('changeMode signal sends the signal instead of restarting; noop only writes', async () => {
    const s = await setup({
      api: { port: 7000 },
      app: { dependencies: ['api'], templates: [upstreams({ changeMode: 'signal', changeSignal: 'SIGUSR1', wait: { min: '0s' } })] },
      quiet: { dependencies: ['api'], templates: [upstreams({ changeMode: 'noop', destination: 'quiet.env' })] },
    });
    await s.discovery.register(remote('api-r1', 7001));
    await s.until((e) => e.type === 'reload' && e.service === 'app');
    await s.until((e) => e.type === 'reload' && e.service === 'quiet');
    expect(s.runtime.current('app')?.signals).toEqual(['SIGUSR1']);
    expect(s.attempts('app')).toBe(1);
    expect(s.attempts('quiet')).toBe(1);
    expect(await s.file('quiet', 'quiet.env')).toContain('10.0.0.2:7001');
  });

  it('changeMode script runs its argv (no shell) with the file in STACK_TEMPLATE; script without changeScript is invalid', async () => {
    const { tempDir } = await import('./helpers.js');
    const out = await tempDir('script-');
    cleanups.push(out.cleanup);
    const marker = path.join(out.dir, 'ran');
    const code = `require('fs').appendFileSync(${JSON.stringify(marker)}, process.env.STACK_SERVICE + ' ' + require('fs').readFileSync(process.env.STACK_TEMPLATE, 'utf8'))`;
    const s = await setup({
      api: { port: 7000 },
      app: { dependencies: ['api'], templates: [upstreams({ changeMode: 'script', changeScript: [process.execPath, '-e', code], wait: { min: '0s' } })] },
    });
    await s.discovery.register(remote('api-r1', 7001));
    await s.until((e) => e.type === 'reload' && e.service === 'app' && e.action === 'script');
    const { existsSync } = await import('node:fs');
    await drive(
      s.clock,
      (async () => {
        while (!existsSync(marker)) await new Promise((r) => setTimeout(r, 10));
      })(),
    );
    await drive(
      s.clock,
      (async () => {
        while (!(await readFile(marker, 'utf8')).includes('7001')) await new Promise((r) => setTimeout(r, 10));
      })(),
    );
    expect(await readFile(marker, 'utf8')).toContain('app UPSTREAMS=');
    expect(s.attempts('app')).toBe(1);
    await expect(memoryStack({ app: { templates: [{ destination: 'a.env', data: { A: 'x' }, changeMode: 'script' }] } })).rejects.toMatchObject({
      message: expect.stringContaining('changeMode: script needs changeScript'),
    });
  });

  it('a template may name a service only in discovery (external); losing it fails the render, keeps the last good file and warns', async () => {
    const template = { destination: 'remote.json', data: { url: '{{service.remote.url}}' }, external: ['remote'], wait: { min: '0s' } };
    const s = await setup({ app: { templates: [template] } }, {}, async (d) => {
      await d.register({ id: 'remote-1', service: 'remote', address: '10.0.0.9', port: 80 });
    });
    expect(JSON.parse(await s.file('app', 'remote.json'))).toEqual({ url: 'http://10.0.0.9:80' });
    await s.discovery.deregister('remote', 'remote-1');
    await s.until((e) => e.type === 'render' && e.outcome === 'failed');
    expect(JSON.parse(await s.file('app', 'remote.json'))).toEqual({ url: 'http://10.0.0.9:80' });
    expect(s.log.events).toContainEqual(
      expect.objectContaining({ type: 'warning', service: 'app', message: expect.stringContaining('the last good file is kept') }),
    );
    expect(s.status('app').lastRender).toMatchObject({ outcome: 'failed', reason: expect.stringContaining("Service 'remote' is absent") });
    expect(s.attempts('app')).toBe(1);
  });

  it('a name that is neither in the profile nor declared external is still an input error', async () => {
    const s = await memoryStack({ app: { command: [process.execPath], templates: [{ destination: 'a.json', data: { url: '{{service.remote.url}}' } }] } });
    cleanups.push(s.cleanup);
    await expect(createTemplateHooks(s.input.profile, ['app'], { stateDir: s.input.profile.stateDir!, cwd: s.dir })).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringContaining("Unknown service 'remote'"),
    });
  });
});

describe('health has consequences', () => {
  it('an unhealthy service is withdrawn from discovery, restarted after failuresBeforeRestart failures, and registered again', async () => {
    const s = await setup({
      a: { port: 7100, healthCheck: memCheck({ retries: 1 }), restart: { policy: 'on-failure', backoff: '1s', failuresBeforeRestart: 3 } },
    });
    expect(await s.discovery.lookup('a')).toHaveLength(1);
    s.runtime.setHealthy('a', false);
    await s.until((e) => e.type === 'deregistered' && e.service === 'a');
    expect(await s.discovery.lookup('a')).toEqual([]);
    expect(s.status('a').restarts).toBe(0);
    const restart = await s.until((e) => e.type === 'restart' && e.service === 'a');
    expect(restart).toMatchObject({ delayMs: 1000, exit: expect.stringContaining('3 failed checks in a row') });
    await s.until((e) => e.type === 'state' && e.service === 'a' && e.state === 'healthy' && s.attempts('a') === 2);
    expect(s.status('a')).toMatchObject({ restarts: 1, health: 'healthy' });
    expect(await s.discovery.lookup('a')).toHaveLength(1);
  });

  it('healthy again before failuresBeforeRestart: registered again, not restarted', async () => {
    const s = await setup({ a: { port: 7100, healthCheck: memCheck({ retries: 1 }), restart: { policy: 'always', failuresBeforeRestart: 5 } } });
    s.runtime.setHealthy('a', false);
    await s.until((e) => e.type === 'deregistered');
    s.runtime.setHealthy('a', true);
    await s.until((e) => e.type === 'health' && e.healthy);
    await s.until((e) => e.type === 'registered' && s.log.count('registered') === 2);
    await s.clock.advance(2_000);
    expect(s.attempts('a')).toBe(1);
    expect(await s.discovery.lookup('a')).toHaveLength(1);
  });
});

describe('dependents hear about it', () => {
  it('a restarted required dependency restarts its dependent; an optional one only re-renders it', async () => {
    const s = await setup({
      db: { port: 5432, restart: { policy: 'on-failure', backoff: '10ms' } },
      app: { dependencies: ['db'] },
      web: { dependencies: [{ name: 'db', type: 'optional' }], templates: [{ destination: 'db.env', data: { DB: '{{service.db.url}}' } }] },
    });
    s.runtime.crash('db');
    await s.until((e) => e.type === 'state' && e.service === 'app' && e.state === 'healthy' && s.attempts('app') === 2);
    await s.until((e) => e.type === 'render' && e.service === 'web' && e.reason.includes("dependency 'db' was restarted"));
    expect(s.log.events).toContainEqual(
      expect.objectContaining({ type: 'reload', service: 'app', action: 'restart', reason: expect.stringContaining("dependency 'db'") }),
    );
    expect(s.attempts('web')).toBe(1);
  });

  it('onDependencyRestart: none leaves the dependent alone', async () => {
    const s = await setup({ db: { restart: { policy: 'on-failure', backoff: '10ms' } }, app: { dependencies: [{ name: 'db', onDependencyRestart: 'none' }] } });
    s.runtime.crash('db');
    await s.until((e) => e.type === 'state' && e.service === 'db' && e.state === 'healthy');
    await s.clock.advance(1_000);
    expect(s.attempts('app')).toBe(1);
  });

  it('a required dependency down past dependencyTimeout blocks its dependents until it is back', async () => {
    const s = await setup({
      db: { restart: { policy: 'on-failure', backoff: '20s', maxBackoff: '20s' } },
      app: { dependencies: ['db'], restart: 'no' },
      edge: { dependencies: ['app'] },
    });
    s.runtime.crash('db');
    await s.until((e) => e.type === 'state' && e.service === 'edge' && e.state === 'blocked');
    expect(s.status('app')).toMatchObject({ state: 'blocked', reason: expect.stringContaining("required dependency 'db' is down") });
    expect(s.runtime.current('app')).toBeUndefined();
    expect(s.runtime.current('edge')).toBeUndefined();
    await s.until((e) => e.type === 'state' && e.service === 'edge' && e.state === 'healthy' && s.attempts('edge') === 2);
    expect(s.status('app').state).toBe('healthy');
    expect(s.status('db')).toMatchObject({ state: 'healthy', restarts: 1 });
  });
});

describe('replicas', () => {
  it('replicas: N runs N instances, each on its own port and registered; scaling converges without touching the others', async () => {
    const { startStack } = await import('../../src/engine/engine.js');
    const { makeStack } = await import('./helpers.js');
    const api = (replicas: number) => ({ command: [process.execPath], port: 7000, replicas, healthCheck: memCheck({ port: 7000 }), stopGracePeriod: '1s' });
    const s = await memoryStack({ api: api(3), app: { dependencies: ['api'], templates: [upstreams({ destination: 'app.env' })] } });
    cleanups.push(s.cleanup);
    const discovery = await createDiscovery(s.input.profile.discovery);
    cleanups.push(() => discovery.close());
    const stateDir = s.input.profile.stateDir!;
    const run = async (replicas: number) => {
      const input = makeStack('mem', s.dir, { api: api(replicas), app: { command: [process.execPath], dependencies: ['api'], templates: [upstreams()] } });
      const hooks = (await createTemplateHooks(input.profile, ['api', 'app'], { stateDir, cwd: s.dir, discovery }))!;
      const controller = startStack(input, {
        runtimes: { process: s.runtime },
        clock: s.clock,
        strategyFor: () => s.runtime.health,
        discovery,
        onEvent: s.log.push,
        renderConfigs: hooks.renderConfigs,
        rerender: hooks.rerender,
      });
      const report = await drive(s.clock, controller.ready);
      expect(report.outcome).toBe('up');
      return controller;
    };
    const live = () =>
      s.runtime
        .running()
        .filter((i) => i.handle.service === 'api')
        .map((i) => ({ replica: i.handle.replica, id: i.handle.id, port: i.request.service.port, env: i.request.environment.STACK_REPLICA }))
        .sort((a, b) => a.replica - b.replica);

    const first = await run(3);
    expect(live().map(({ replica, port, env }) => ({ replica, port, env }))).toEqual([
      { replica: 0, port: 7000, env: '0' },
      { replica: 1, port: 7001, env: '1' },
      { replica: 2, port: 7002, env: '2' },
    ]);
    expect((await discovery.lookup('api')).map((i) => `${i.id}@${i.port}`)).toEqual(['mem-api-0@7000', 'mem-api-1@7001', 'mem-api-2@7002']);
    expect(await readFile(path.join(stateDir, 'config', 'app', 'app.env'), 'utf8')).toBe(
      "UPSTREAMS='http://127.0.0.1:7000 http://127.0.0.1:7001 http://127.0.0.1:7002 '\n",
    );
    expect(
      first
        .status()
        .find((st) => st.name === 'api')
        ?.replicas?.map((r) => r.state),
    ).toEqual(['healthy', 'healthy']);
    const before = live();
    await drive(s.clock, first.detach());

    // Scale down to 2: replica 2 goes, 0 and 1 are kept as they are.
    const second = await run(2);
    expect(live().map((i) => i.id)).toEqual(before.slice(0, 2).map((i) => i.id));
    expect(s.log.events).toContainEqual(expect.objectContaining({ type: 'state', service: 'api', state: 'stopped', reason: 'replica 2 scaled down' }));
    await drive(s.clock, second.detach());

    // Scale up to 4: 0 and 1 kept, 2 and 3 new.
    const third = await run(4);
    const now = live();
    expect(now.slice(0, 2).map((i) => i.id)).toEqual(before.slice(0, 2).map((i) => i.id));
    expect(now.map((i) => i.port)).toEqual([7000, 7001, 7002, 7003]);
    await drive(s.clock, third.stop());
    expect(s.runtime.running()).toEqual([]);
  });

  it('an unhealthy replica is withdrawn and restarted on its own', async () => {
    const s = await setup({
      api: { port: 7000, replicas: 2, healthCheck: memCheck({ port: 7000, retries: 1 }), restart: { policy: 'always', backoff: '100ms' } },
    });
    s.runtime.setHealthy('api', false, 1);
    await s.until((e) => e.type === 'deregistered' && e.id === 'mem-api-1');
    expect((await s.discovery.lookup('api')).map((i) => i.id)).toEqual(['mem-api-0']);
    await s.until((e) => e.type === 'state' && e.service === 'api#1' && e.state === 'healthy' && s.attempts('api') === 3);
    expect((await s.discovery.lookup('api')).map((i) => i.id)).toEqual(['mem-api-0', 'mem-api-1']);
    expect(s.status('api')).toMatchObject({ restarts: 0, replicas: [expect.objectContaining({ restarts: 1 })] });
  });
});
