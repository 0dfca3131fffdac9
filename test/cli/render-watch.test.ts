/**
 * `stack render --watch`: the re-render loop without starting anything. Against the file
 * discovery backend: files follow registrations, `--pid` gets the signal, `--exec` runs, SIGTERM
 * ends it with 0; an invalid template is exit 2 before anything is written.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiscovery } from '../../src/discovery/index.js';
import { discoveryConfig } from '../../src/discovery/index.js';
import { tempDir } from '../engine/helpers.js';
import { waitFor } from '../helpers/net.js';
import { runStack, StackProcess } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(template: Record<string, unknown>) {
  const { dir, cleanup } = await tempDir('render-watch-');
  cleanups.push(cleanup);
  const fileDirectory = path.join(dir, 'discovery');
  await writeFile(
    path.join(dir, 'stack.json'),
    JSON.stringify({
      name: 'sidecar',
      discovery: { backend: 'file', fileDirectory },
      services: { app: { runtime: 'process', command: ['true'], templates: [template] } },
    }),
  );
  const discovery = await createDiscovery(discoveryConfig({ backends: ['file'], fileDirectory, ttlMs: 600_000 }));
  cleanups.push(() => discovery.close());
  return { dir, discovery };
}

const upstreams = {
  destination: 'up.env',
  external: ['api'],
  data: { UP: '{{#if service.api}}{{#each service.api.instances}}{{url}} {{/each}}{{/if}}' },
  wait: { min: '100ms' },
};

describe('stack render --watch', () => {
  it('re-renders when records change and signals --pid; SIGTERM ends it with 0', async () => {
    const { dir, discovery } = await setup(upstreams);
    const hups = path.join(dir, 'hups');
    const target = spawn(
      process.execPath,
      ['-e', `process.on('SIGHUP',()=>require('fs').appendFileSync(${JSON.stringify(hups)},'x'));setInterval(()=>{},1e6)`],
      { stdio: 'ignore' },
    );
    cleanups.push(() => void target.kill('SIGKILL'));
    const out = path.join(dir, 'out');
    const p = new StackProcess(['render', '--profile', 'stack.json', '--watch', '--json', '--out', out, '--pid', String(target.pid)], dir);
    cleanups.push(() => void p.child.kill('SIGKILL'));
    const file = path.join(out, 'app', 'up.env');
    await waitFor(() => p.events().some((e) => e.type === 'render') || undefined, 20_000, 'the first render');
    expect(await readFile(file, 'utf8')).toBe('UP=\n');

    await discovery.register({ id: 'api-1', service: 'api', address: '10.2.0.1', port: 80, url: 'http://10.2.0.1:80' });
    // The first render wrote the file (a change: consul-template also runs its command then); this is the second.
    await waitFor(() => p.events().filter((e) => e.type === 'reload').length >= 2 || undefined, 20_000, 'a second reload');
    expect(await readFile(file, 'utf8')).toBe("UP='http://10.2.0.1:80 '\n");
    await waitFor(async () => (existsSync(hups) && (await readFile(hups, 'utf8')).length === 2) || undefined, 5_000, 'two SIGHUPs');
    expect(p.events()).toContainEqual(expect.objectContaining({ type: 'reload', action: 'signal', pid: target.pid, signal: 'SIGHUP' }));

    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  }, 60_000);

  it('--exec runs after a change', async () => {
    const { dir, discovery } = await setup(upstreams);
    const marker = path.join(dir, 'ran');
    const p = new StackProcess(
      ['render', '--profile', 'stack.json', '--watch', '--json', '--exec', `cp "$STACK_TEMPLATE" /dev/null && echo ran >> ${marker}`],
      dir,
    );
    cleanups.push(() => void p.child.kill('SIGKILL'));
    await waitFor(() => existsSync(marker) || undefined, 20_000, '--exec after the first render');
    await discovery.register({ id: 'api-1', service: 'api', address: '10.2.0.1', port: 80 });
    await waitFor(async () => (await readFile(marker, 'utf8')).split('\n').length === 3 || undefined, 20_000, '--exec after the change');
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  }, 60_000);

  it('an invalid template is exit 2, nothing written', async () => {
    const { dir } = await setup({ destination: 'bad.env', data: { X: '{{service.nowhere.url}}' } });
    const r = await runStack(['render', '--profile', 'stack.json', '--watch', '--out', 'out'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Unknown service 'nowhere'");
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
  }, 30_000);
});
