/**
 * One way in: the library's `mkServiceCoordination().up()` is `stack up` (engine/stack.ts):
 * templates are rendered (and checked before anything starts), services registered in the
 * profile's discovery, and `down` stops and deregisters them. On the memory runtime: no process.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiscovery } from '../../src/discovery/index.js';
import { fixedRuntimeSet, mkServiceCoordination } from '../../src/engine/index.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import { createMemoryRuntime } from '../../src/runtime/memory.js';
import { realClock } from '../../src/util/clock.js';
import { tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function coordination() {
  const { dir, cleanup } = await tempDir('engine-lib-');
  cleanups.push(cleanup);
  const profile = mkDeploymentProfile(
    {
      name: 'lib',
      runtime: 'process',
      stateDir: path.join(dir, 'state'),
      discovery: { backend: 'file', fileDirectory: path.join(dir, 'discovery') },
      variables: { greeting: { type: 'string', required: true } },
      services: {
        db: { command: [process.execPath], port: 7001 },
        app: {
          command: [process.execPath],
          dependencies: ['db'],
          templates: [{ destination: 'app.env', format: 'env', data: { DB_URL: '{{service.db.url}}', GREETING: '{{greeting}}' } }],
        },
      },
    } as never,
    { cwd: dir },
  );
  const runtime = createMemoryRuntime({ clock: realClock });
  const stack = mkServiceCoordination(profile, { cwd: dir, runtimes: fixedRuntimeSet({ process: runtime }) });
  return { dir, profile, runtime, stack };
}

describe('the library entry point', () => {
  it('up renders templates and registers in discovery, as `stack up` does; down stops and deregisters', async () => {
    const { profile, runtime, stack } = await coordination();
    const controller = stack.up({ vars: ['greeting=hello'], settleMs: 10 });
    cleanups.push(() => controller.stop());
    const report = await controller.ready;
    expect(report.outcome).toBe('up');
    const app = runtime.current('app')!;
    expect(app.request.files.map((f) => f.destination)).toEqual(['app.env']);
    const rendered = await readFile(path.join(stack.stateDir, 'config', 'app', 'app.env'), 'utf8');
    expect(rendered).toContain('GREETING=hello');
    expect(rendered).toContain('DB_URL=http://127.0.0.1:7001');

    const discovery = await createDiscovery(profile.discovery);
    cleanups.push(() => discovery.close());
    expect((await discovery.lookup('db')).map((i) => i.id)).toEqual(['lib-db-0']);

    // Another process may look at it and stop it: status and down read the state file.
    await controller.detach(); // (which also writes the state file's last version)
    expect((await stack.status()).services.map((s) => [s.name, s.state, s.running])).toEqual([
      ['app', 'healthy', true],
      ['db', 'healthy', true],
    ]);
    const down = await stack.down();
    expect(down.services.map((s) => s.service).sort()).toEqual(['app', 'db']);
    expect(runtime.running()).toEqual([]);
    discovery.invalidate();
    expect(await discovery.lookup('db')).toEqual([]);
  });

  it('up checks every template before anything starts: a missing variable is exit 2', async () => {
    const { runtime, stack } = await coordination();
    const controller = stack.up();
    await expect(controller.ready).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('greeting') });
    await controller.done;
    expect(runtime.instances).toEqual([]);
  });
});
