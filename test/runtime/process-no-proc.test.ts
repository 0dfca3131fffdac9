/**
 * On a system without /proc nothing can be proven ours (no start time, no marker, no cgroup):
 * the process runtime and the lock say so and refuse to signal. Simulated by mocking
 * `procAvailable` (the processes themselves are real).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

vi.mock('../../src/util/proc.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/util/proc.js')>()),
  procAvailable: () => false,
}));

const { acquireLock, lockFilePath } = await import('../../src/engine/lock.js');
const { createProcessRuntime } = await import('../../src/runtime/process.js');
const { isProcessAlive, processStartTime } = await import('../../src/util/proc.js');
const { guardKill, processService } = await import('./helpers.js');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'no-proc-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('without /proc', () => {
  it('the process runtime refuses to signal an instance it cannot prove ours, and says why', async () => {
    const dir = await tempDir();
    const stateDir = path.join(dir, 'state');
    const runtime = createProcessRuntime({ stateDirFor: () => stateDir });
    const handle = await runtime.start({
      stack: 's',
      service: processService('web', { command: ['sleep', '300'] }),
      replica: 0,
      environment: {},
      files: [],
      configDir: dir,
      stateDir,
      profileDir: dir,
    });
    cleanups.push(() => {
      try {
        process.kill(-handle.pgid!, 'SIGKILL');
      } catch {
        // gone
      }
    });
    await runtime.close();
    const fresh = createProcessRuntime({ stateDirFor: () => stateDir });
    const kill = guardKill(() => [handle.pid!]);
    expect(await fresh.discover('s')).toEqual([]);
    await expect(fresh.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 100 })).rejects.toMatchObject({
      code: 'not_ours',
      message: expect.stringContaining('no /proc'),
    });
    expect(kill.calls.filter(([, signal]) => signal !== 0)).toEqual([]);
    expect(isProcessAlive(handle.pid!)).toBe(true);
    await fresh.close();
  });

  it('a lock held by a live pid is refused, never relieved or taken over: we cannot tell', async () => {
    const dir = await tempDir();
    const holder = spawn('sleep', ['300'], { stdio: 'ignore' });
    cleanups.push(() => void holder.kill('SIGKILL'));
    await new Promise((resolve) => holder.once('spawn', resolve));
    await writeFile(
      lockFilePath(dir),
      JSON.stringify({
        pid: holder.pid,
        processStartTime: processStartTime(holder.pid!),
        startedAt: new Date().toISOString(),
        command: 'up --detach',
        detached: true,
      }),
    );
    const kill = guardKill(() => []);
    await expect(acquireLock(dir, 's')).rejects.toMatchObject({ code: 'stack_locked', message: expect.stringContaining('no /proc') });
    expect(kill.calls.filter(([, signal]) => signal !== 0)).toEqual([]);
  });
});
