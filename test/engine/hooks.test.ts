/** Discovery registration, env injection, the render hook, and secrets kept out of state and events. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiscovery } from '../../src/discovery/index.js';
import { startStack, type RenderContext } from '../../src/engine/index.js';
import { createTemplateRenderer } from '../../src/engine/templates.js';
import { freePort, waitFor } from '../helpers/net.js';
import { EventLog, httpService, makeStack, nodeProgram, survivors, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A dependent that writes the variables it was given (names starting with `prefix`) to a file, then idles. */
function envDumper(file: string, dependsOn: string[]): Record<string, unknown> {
  const code = `require('fs').writeFileSync(${JSON.stringify(file)}, JSON.stringify(Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('ATPROTO_') || k.startsWith('RENDERED') || k === 'API_SECRET')))); setInterval(() => {}, 1000);`;
  return nodeProgram(code, { dependencies: dependsOn });
}

describe('engine hooks', () => {
  it('registers healthy services in discovery, injects env-backend variables, deregisters on stop', async () => {
    const { dir, cleanup } = await tempDir();
    const port = await freePort();
    const dump = path.join(dir, 'env.json');
    const input = makeStack('hooks', dir, { db: httpService(port), app: envDumper(dump, ['db']) }, { discovery: { backends: ['memory', 'env'] } });
    const discovery = await createDiscovery(input.profile.discovery);
    const log = new EventLog();
    const controller = startStack(input, { discovery, onEvent: log.push });
    cleanups.push(async () => {
      await controller.stop();
      await discovery.close();
      expect(survivors(log.pids())).toEqual([]);
      await cleanup();
    });
    expect((await controller.ready).outcome).toBe('up');
    const [db] = await discovery.lookup('db');
    expect(db).toMatchObject({ service: 'db', address: '127.0.0.1', port, url: `http://127.0.0.1:${port}` });
    // Registered before its dependents were let through.
    expect(log.events.findIndex((e) => e.type === 'registered' && e.service === 'db')).toBeLessThan(log.at('app', 'starting'));
    const env = JSON.parse(await waitFor(() => readFile(dump, 'utf8'), 10_000, 'env dump')) as Record<string, string>;
    expect(env.ATPROTO_SERVICE_DB_PORT).toBe(String(port));
    await controller.stop();
    discovery.invalidate();
    expect(await discovery.lookup('db')).toEqual([]);
  });

  it('renders configs just before a service starts, with its dependencies registered; secrets stay out of state and events', async () => {
    const { dir, cleanup } = await tempDir();
    const port = await freePort();
    const dump = path.join(dir, 'env.json');
    const services = { db: httpService(port), app: { ...envDumper(dump, ['db']), environment: { API_SECRET: 'hunter2-secret' } } };
    const input = makeStack('render', dir, services);
    const contexts: { service: string; context: RenderContext }[] = [];
    const log = new EventLog();
    const controller = startStack(input, {
      onEvent: log.push,
      renderConfigs: async (service, context) => {
        contexts.push({ service: service.name, context });
        return { files: [], environment: { RENDERED_FOR: service.name } };
      },
    });
    cleanups.push(async () => {
      await controller.stop();
      expect(survivors(log.pids())).toEqual([]);
      await cleanup();
    });
    expect((await controller.ready).outcome).toBe('up');
    const app = contexts.find((c) => c.service === 'app');
    expect(Object.keys(app?.context.dependencies ?? {})).toEqual(['db']);
    expect(app?.context.configDir).toBe(path.join(dir, 'state', 'config', 'app'));
    const env = JSON.parse(await waitFor(() => readFile(dump, 'utf8'), 10_000, 'env dump')) as Record<string, string>;
    expect(env.RENDERED_FOR).toBe('app');
    expect(env.API_SECRET).toBe('hunter2-secret'); // the service gets it…
    const state = await waitFor(() => readFile(path.join(dir, 'state', 'state.json'), 'utf8'), 5_000, 'state file');
    expect(state).not.toContain('hunter2-secret'); // …nobody else sees it
    expect(JSON.stringify(log.events)).not.toContain('hunter2-secret');
  });

  it('renders templates through src/template: variables and live dependency addresses reach the service', async () => {
    const { dir, cleanup } = await tempDir();
    const port = await freePort();
    const dump = path.join(dir, 'env.json');
    const app = {
      ...envDumper(dump, ['db']),
      templates: [{ destination: 'app.env', format: 'env', env: true, data: { RENDERED_DB_URL: '{{service.db.url}}', RENDERED_GREETING: '{{greeting}}' } }],
    };
    const input = makeStack('tpl', dir, { db: httpService(port), app }, { variables: { greeting: { type: 'string', required: true } } });
    const stateDir = path.join(dir, 'state');
    // A missing variable is reported before anything starts.
    await expect(createTemplateRenderer(input.profile, ['db', 'app'], { stateDir, cwd: dir })).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringContaining('greeting'),
    });

    const renderConfigs = await createTemplateRenderer(input.profile, ['db', 'app'], { stateDir, cwd: dir, vars: ['greeting=hello'] });
    const log = new EventLog();
    const controller = startStack(input, { onEvent: log.push, ...(renderConfigs ? { renderConfigs } : {}) });
    cleanups.push(async () => {
      await controller.stop();
      expect(survivors(log.pids())).toEqual([]);
      await cleanup();
    });
    expect((await controller.ready).outcome).toBe('up');
    const env = JSON.parse(await waitFor(() => readFile(dump, 'utf8'), 10_000, 'env dump')) as Record<string, string>;
    expect(env).toMatchObject({ RENDERED_DB_URL: `http://127.0.0.1:${port}`, RENDERED_GREETING: 'hello' });
    expect(await readFile(path.join(stateDir, 'config', 'app', 'app.env'), 'utf8')).toContain('RENDERED_GREETING=hello');
  });
});
