/**
 * The engine's control channel (engine/control.ts), which `stack ui`'s actions and event feed use:
 * a restart on request whatever the restart policy, a re-render on request, the reason of each
 * render recorded, events followed from another connection, and refusals answered.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest, controlSocketPath, readRenderRecords, subscribeControl } from '../../src/engine/control.js';
import { startStack, type RenderConfigs } from '../../src/engine/index.js';
import { freePort, waitFor } from '../helpers/net.js';
import { EventLog, httpService, makeStack, survivors, tempDir } from '../engine/helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('the control channel of a running stack', () => {
  it('restarts a service on request even with restart policy "no", re-renders on request, and records why each render happened', async () => {
    const { dir, cleanup } = await tempDir('stack-ui-control-');
    const port = await freePort();
    const template = [{ destination: 'app.env', format: 'env', data: { X: '1' } }];
    const input = makeStack('ctl', dir, { app: httpService(port, {}, { restart: { policy: 'no' }, templates: template }) });
    const rendered: string[] = [];
    const renderConfigs: RenderConfigs = async (spec, context) => {
      rendered.push(spec.name);
      await mkdir(context.configDir, { recursive: true });
      await writeFile(path.join(context.configDir, 'app.env'), `X=${rendered.length}\n`);
      return { files: [{ hostPath: path.join(context.configDir, 'app.env'), destination: 'app.env', mode: 0o644 }], environment: {} };
    };
    const log = new EventLog();
    const controller = startStack(input, { onEvent: log.push, renderConfigs });
    cleanups.push(async () => {
      await controller.stop();
      expect(survivors(log.pids())).toEqual([]);
      await cleanup();
    });
    const report = await controller.ready;
    expect(report.outcome, JSON.stringify(report.failed)).toBe('up');
    const stateDir = controller.stateDir;
    expect(existsSync(controlSocketPath(stateDir))).toBe(true);
    expect((await readRenderRecords(stateDir)).app).toMatchObject({ why: 'started by `stack up`', files: ['app.env'] });

    // Another connection follows the events.
    const followed: string[] = [];
    const sub = subscribeControl(
      stateDir,
      (line) => followed.push(line),
      () => undefined,
    );
    cleanups.push(async () => sub.close());
    await new Promise((resolve) => setTimeout(resolve, 100));

    const before = controller.status().find((s) => s.name === 'app')!.handle!.pid!;
    expect(await controlRequest(stateDir, { op: 'restart', service: 'app' })).toEqual({ ok: true });
    await waitFor(
      () => {
        const s = controller.status().find((x) => x.name === 'app')!;
        return s.state === 'healthy' && s.handle?.pid !== before;
      },
      15_000,
      'app healthy again under a new pid',
    );
    const app = controller.status().find((s) => s.name === 'app')!;
    expect(app.restarts).toBe(1);
    expect(log.events.some((e) => e.type === 'restart' && e.service === 'app' && e.exit.includes('restart requested'))).toBe(true);
    expect(rendered).toEqual(['app', 'app']); // its templates rendered again on the way
    expect((await readRenderRecords(stateDir)).app?.why).toBe('restart requested (stack ui)');
    await waitFor(() => followed.some((l) => l.includes('"type":"restart"')), 5000, 'the restart event on the subscription');
    expect(followed.every((l) => typeof (JSON.parse(l) as { time?: unknown }).time === 'string')).toBe(true);

    expect(await controlRequest(stateDir, { op: 'render', service: 'app' })).toEqual({ ok: true, files: ['app.env'] });
    expect(rendered).toEqual(['app', 'app', 'app']);
    expect((await readRenderRecords(stateDir)).app?.why).toBe('re-render requested (stack ui)');
    expect(controller.status().find((s) => s.name === 'app')!.handle!.pid).toBe(app.handle!.pid); // left running

    const refused = await controlRequest(stateDir, { op: 'restart', service: 'nope' });
    expect(refused).toEqual({ ok: false, error: "stack 'ctl' runs no service 'nope'" });

    await controller.stop();
    expect(existsSync(controlSocketPath(stateDir))).toBe(false); // gone with the engine
    await expect(controlRequest(stateDir, { op: 'restart', service: 'app' })).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
