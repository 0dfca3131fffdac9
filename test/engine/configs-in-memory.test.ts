/**
 * A runtime that takes configs in memory (`capabilities.configsInMemory`: Swarm) gets its
 * services' rendered templates as content: nothing is written on this machine, a secret least of
 * all, neither before the first start nor when discovery changes them after startup (the runtime
 * then updates the running service in place). The memory runtime stands in for Swarm here.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiscovery } from '../../src/discovery/index.js';
import { createTemplateHooks } from '../../src/engine/templates.js';
import type { EngineEvent } from '../../src/engine/types.js';
import type { Runtime, StartRequest } from '../../src/runtime/types.js';
import { drive, memoryStack } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Every file under a folder whose content holds `needle`. */
async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const e of entries) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    if ((await readFile(file, 'utf8').catch(() => '')).includes(needle)) found.push(file);
  }
  return found;
}

describe('configs in memory (swarm)', () => {
  it('rendered files and secrets reach the runtime as content and are never written; a re-render updates the service in place', async () => {
    const token = randomBytes(12).toString('hex');
    const s = await memoryStack(
      {
        api: { port: 7000 },
        app: {
          runtime: 'swarm',
          image: 'busybox',
          dependencies: ['api'],
          templates: [
            { destination: 'token.env', format: 'env', data: { TOKEN: '{{secret "token"}}' } },
            { destination: 'upstreams.env', data: { UPSTREAMS: '{{#each service.api.instances}}{{url}} {{/each}}' }, wait: { min: '500ms', max: '2s' } },
          ],
        },
      },
      { extra: { variables: { token: { type: 'secret', required: true } } } },
    );
    const stateDir = s.input.profile.stateDir!;
    const configDir = path.join(stateDir, 'config', 'app');
    // What the runtime was handed, and whether the service's config folder existed at that moment
    // (between the render and the runtime's creation of its configs and secrets).
    const requests: { files: StartRequest['files']; folderExisted: boolean }[] = [];
    let secondRequest = (): void => undefined;
    const updated = new Promise<void>((resolve) => (secondRequest = resolve));
    const swarm: Runtime = {
      ...s.runtime,
      start: async (req) => {
        if (req.service.name === 'app' && requests.push({ files: req.files, folderExisted: existsSync(configDir) }) === 2) secondRequest();
        return s.runtime.start(req);
      },
    };
    const discovery = await createDiscovery(s.input.profile.discovery);
    const hooks = (await createTemplateHooks(s.input.profile, ['api', 'app'], { stateDir, cwd: s.dir, discovery, vars: [`token=${token}`] }))!;
    const controller = s.start({ runtimes: { process: s.runtime, swarm }, discovery, renderConfigs: hooks.renderConfigs, rerender: hooks.rerender });
    cleanups.push(async () => {
      await drive(s.clock, controller.stop());
      await discovery.close();
      await s.cleanup();
    });
    expect((await drive(s.clock, controller.ready)).outcome).toBe('up');

    expect(requests).toHaveLength(1);
    expect(requests[0]!.folderExisted).toBe(false);
    const first = Object.fromEntries(requests[0]!.files.map((f) => [f.destination, f]));
    expect(first['token.env']).toMatchObject({ mode: 0o600, content: Buffer.from(`TOKEN=${token}\n`) });
    expect(first['token.env']!.hostPath).toBeUndefined();
    expect(first['upstreams.env']!.content?.toString()).toBe("UPSTREAMS='http://127.0.0.1:7000 '\n");
    expect(existsSync(configDir)).toBe(false);
    expect(await filesContaining(stateDir, token)).toEqual([]);

    // A new instance of api: the template changes; the runtime gets the new content, no file, no restart.
    await discovery.register({ id: 'api-r1', service: 'api', address: '10.0.0.2', port: 7001, url: 'http://10.0.0.2:7001' });
    const reloaded = new Promise<EngineEvent>((resolve) => controller.subscribe((e) => e.type === 'reload' && e.service === 'app' && resolve(e)));
    expect(await drive(s.clock, reloaded)).toMatchObject({ action: 'restart', template: 'upstreams.env' });
    await drive(s.clock, updated);
    expect(requests).toHaveLength(2);
    expect(requests[1]!.folderExisted).toBe(false);
    const second = Object.fromEntries(requests[1]!.files.map((f) => [f.destination, f]));
    expect(second['upstreams.env']!.content?.toString()).toBe("UPSTREAMS='http://10.0.0.2:7001 http://127.0.0.1:7000 '\n");
    expect(second['token.env']!.hostPath).toBeUndefined();
    // Updated in place: the same instance, never stopped.
    expect(s.runtime.instances.filter((i) => i.handle.service === 'app')).toHaveLength(1);
    expect(s.log.events.filter((e) => e.type === 'state' && e.service === 'app' && e.state === 'stopped')).toEqual([]);
    expect(existsSync(configDir)).toBe(false);
    expect(await filesContaining(stateDir, token)).toEqual([]);
  });
});
