/** What the engine tells every process service about where it runs: STACK_STATE_DIR and STACK_CONFIG_DIR. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startStack } from '../../src/engine/index.js';
import { makeStack, nodeProgram, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const report = `require('node:fs').writeFileSync(process.env.OUT, JSON.stringify({ state: process.env.STACK_STATE_DIR, config: process.env.STACK_CONFIG_DIR }))`;

describe('process service environment', () => {
  it('carries the stack state folder and the service config folder as absolute paths; the profile may override them', async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const input = makeStack('envdirs', dir, {
      told: nodeProgram(report, { kind: 'task', environment: { OUT: path.join(dir, 'told.json') } }),
      own: nodeProgram(report, { kind: 'task', environment: { OUT: path.join(dir, 'own.json'), STACK_CONFIG_DIR: '/elsewhere' } }),
    });
    // A state folder relative to the working directory: services get it resolved.
    input.profile.stateDir = 'state';
    const controller = startStack(input, { cwd: dir });
    expect((await controller.ready).outcome).toBe('up');
    await controller.stop();

    const state = path.join(dir, 'state');
    expect(JSON.parse(await readFile(path.join(dir, 'told.json'), 'utf8'))).toEqual({ state, config: path.join(state, 'config', 'told') });
    expect(JSON.parse(await readFile(path.join(dir, 'own.json'), 'utf8'))).toEqual({ state, config: '/elsewhere' });
  });
});
