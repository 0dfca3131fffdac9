/**
 * The stack lock's hand-over: a detached supervisor holding it is relieved (RELIEVE_SIGNAL: it
 * lets go and exits) by a later `up`; any other live holder still refuses it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireLock, lockFilePath, readLock, RELIEVE_SIGNAL, type LockInfo } from '../../src/engine/lock.js';
import { processStartTime } from '../../src/runtime/process-proc.js';
import { survivors, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A process that holds the lock of `stateDir`. On RELIEVE_SIGNAL it removes the lock and exits,
 * as a supervisor does, unless `stubborn` (it ignores the signal).
 */
async function holder(stateDir: string, detached: boolean, stubborn = false): Promise<{ child: ChildProcess; exited: Promise<number | null> }> {
  const file = lockFilePath(stateDir);
  const onRelieve = stubborn ? '() => {}' : `() => { require('node:fs').rmSync(${JSON.stringify(file)}, { force: true }); process.exit(0); }`;
  const child = spawn(process.execPath, ['-e', `process.on('${RELIEVE_SIGNAL}', ${onRelieve}); setInterval(() => {}, 1000); console.log('ready');`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  await new Promise((resolve) => child.stdout!.once('data', resolve)); // its handler is in place
  const pid = child.pid!;
  const info: LockInfo = { pid, processStartTime: processStartTime(pid)!, startedAt: new Date().toISOString(), command: detached ? 'up --detach' : 'up', ...(detached ? { detached: true } : {}) };
  await writeFile(file, JSON.stringify(info));
  return { child, exited };
}

async function stateDir(): Promise<string> {
  const { dir, cleanup } = await tempDir('lock-');
  cleanups.push(cleanup);
  return dir;
}

describe('stack lock', () => {
  it('relieves a detached supervisor: it exits, and the lock is ours', async () => {
    const dir = await stateDir();
    const supervisor = await holder(dir, true);
    const lock = await acquireLock(dir, 'locked', { command: 'up' });
    expect(await supervisor.exited).toBe(0);
    expect(await readLock(dir)).toMatchObject({ pid: process.pid, command: 'up' });
    expect((await readLock(dir))?.detached).toBeUndefined();
    await lock.release();
    expect(await readLock(dir)).toBeUndefined();
  });

  it('refuses while a foreground `up` holds it, and leaves that one alone', async () => {
    const dir = await stateDir();
    const foreground = await holder(dir, false);
    await expect(acquireLock(dir, 'locked')).rejects.toMatchObject({ code: 'stack_locked', message: expect.stringMatching(/already being run by `stack up` \(pid \d+/) });
    expect(survivors([foreground.child.pid!])).toEqual([foreground.child.pid]);
  });

  it('gives up, clearly, on a supervisor that does not hand over in time', async () => {
    const dir = await stateDir();
    const stubborn = await holder(dir, true, true);
    await expect(acquireLock(dir, 'locked', { relieveTimeoutMs: 300 })).rejects.toMatchObject({ code: 'stack_locked', message: expect.stringMatching(/did not hand over within 300 ms/) });
    expect(survivors([stubborn.child.pid!])).toEqual([stubborn.child.pid]);
    expect((await readLock(dir))?.pid).toBe(stubborn.child.pid);
  });

  it('marks the lock of a detached supervisor', async () => {
    const dir = await stateDir();
    const lock = await acquireLock(dir, 'locked', { command: 'up --detach', detached: true });
    expect(await readLock(dir)).toMatchObject({ pid: process.pid, command: 'up --detach', detached: true });
    // Never relieves itself (two runs in one process): refused like any live holder.
    await expect(acquireLock(dir, 'locked')).rejects.toMatchObject({ code: 'stack_locked' });
    await lock.release();
  });
});
