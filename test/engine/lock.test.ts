/**
 * The stack lock's hand-over: a detached supervisor holding it is relieved (RELIEVE_SIGNAL: it
 * lets go and exits) by a later `up`; any other live holder still refuses it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { acquireLock, lockFilePath, lockOwnerAlive, readLock, RELIEVE_SIGNAL, type LockInfo } from '../../src/engine/lock.js';
import { fixedRuntimeSet } from '../../src/engine/runtimes.js';
import { readStateFile } from '../../src/engine/state.js';
import { stopStack } from '../../src/engine/stop.js';
import { createProcessRuntime, type ProcessHandle } from '../../src/runtime/process.js';
import { processStartTime } from '../../src/util/proc.js';
import { guardKill, processService } from '../runtime/helpers.js';
import { survivors, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A process that holds the lock of `stateDir`. On RELIEVE_SIGNAL it removes the lock and exits,
 * as a supervisor does, unless `stubborn` (it ignores the signal).
 */
async function holder(stateDir: string, detached: boolean, stubborn = false): Promise<{ child: ChildProcess; exited: Promise<number | null> }> {
  const file = lockFilePath(stateDir);
  const onRelieve = stubborn ? '() => {}' : `() => { require('node:fs').rmSync(${JSON.stringify(file)}, { force: true }); process.exit(0); }`;
  const child = spawn(process.execPath, ['-e', `process.on('${RELIEVE_SIGNAL}', ${onRelieve}); setInterval(() => {}, 1000); console.log('ready');`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  await new Promise((resolve) => child.stdout!.once('data', resolve)); // its handler is in place
  const pid = child.pid!;
  const info: LockInfo = {
    pid,
    processStartTime: processStartTime(pid)!,
    startedAt: new Date().toISOString(),
    command: detached ? 'up --detach' : 'up',
    ...(detached ? { detached: true } : {}),
  };
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
    await expect(acquireLock(dir, 'locked')).rejects.toMatchObject({
      code: 'stack_locked',
      message: expect.stringMatching(/already being run by `stack up` \(pid \d+/),
    });
    expect(survivors([foreground.child.pid!])).toEqual([foreground.child.pid]);
  });

  it('gives up, clearly, on a supervisor that does not hand over in time', async () => {
    const dir = await stateDir();
    const stubborn = await holder(dir, true, true);
    await expect(acquireLock(dir, 'locked', { relieveTimeoutMs: 300 })).rejects.toMatchObject({
      code: 'stack_locked',
      message: expect.stringMatching(/did not hand over within 300 ms/),
    });
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

describe('stack lock: only a proven owner is signalled', () => {
  it('takes over a lock without a recorded start time, never sending its (maybe recycled) pid RELIEVE_SIGNAL', async () => {
    const dir = await stateDir();
    const unrelated = await holder(dir, true); // would exit on RELIEVE_SIGNAL
    const pid = unrelated.child.pid!;
    await writeFile(lockFilePath(dir), JSON.stringify({ pid, startedAt: new Date().toISOString(), command: 'up --detach', detached: true }));
    const kill = guardKill(() => []);
    const lock = await acquireLock(dir, 'locked', { relieveTimeoutMs: 300 });
    expect(kill.calls.filter(([p, signal]) => p === pid && signal !== 0)).toEqual([]);
    expect(survivors([pid])).toEqual([pid]);
    expect(await readLock(dir)).toMatchObject({ pid: process.pid, stack: 'locked' });
    await lock.release();
  });

  it('never counts pid 1, or a pid without a start time, as a live owner', () => {
    expect(lockOwnerAlive({ pid: 1, processStartTime: processStartTime(1)!, startedAt: '', command: 'up' })).toBe(false);
    expect(lockOwnerAlive({ pid: process.pid, startedAt: '', command: 'up' })).toBe(false);
    expect(lockOwnerAlive({ pid: process.pid, processStartTime: processStartTime(process.pid)!, startedAt: '', command: 'up' })).toBe(true);
  });

  it('`down` does not SIGTERM the pid of a forged lock (pid 1, or no start time)', async () => {
    for (const forged of [{ pid: 1, processStartTime: processStartTime(1) }, { pid: process.pid }]) {
      const dir = await stateDir();
      await writeFile(lockFilePath(dir), JSON.stringify({ ...forged, startedAt: new Date().toISOString(), command: 'up' }));
      const kill = guardKill(() => []);
      const runtime = createProcessRuntime({ stateDirFor: () => dir });
      const report = await stopStack({ stack: 'locked', stateDir: dir, runtimes: fixedRuntimeSet({ process: runtime }) });
      expect(kill.blocked()).toEqual([]);
      expect(report.owner).toBeUndefined();
      await runtime.close();
      vi.restoreAllMocks();
    }
  });
});

describe('a state folder shared by two stacks', () => {
  /** Stack `alpha` running one process in `dir`, with its state file and lock as `up` leaves them. */
  async function alphaRunning(dir: string): Promise<ProcessHandle> {
    const runtime = createProcessRuntime({ stateDirFor: () => dir });
    const service = processService('web', { command: ['sleep', '300'] });
    const handle = (await runtime.start({
      stack: 'alpha',
      service,
      replica: 0,
      environment: {},
      files: [],
      configDir: path.join(dir, 'config'),
      stateDir: dir,
      profileDir: dir,
    })) as ProcessHandle;
    cleanups.push(async () => {
      try {
        process.kill(-handle.pgid, 'SIGKILL');
      } catch {
        // gone
      }
    });
    await runtime.close();
    const state = {
      version: 1,
      stack: 'alpha',
      owner: { pid: process.pid, startedAt: new Date().toISOString() },
      phase: 'running',
      updatedAt: new Date().toISOString(),
      profile: {},
      services: { web: { name: 'web', state: 'healthy', handle, dependsOn: [], stopSignal: 'SIGTERM', stopGracePeriodMs: 1000 } },
    };
    await writeFile(path.join(dir, 'state.json'), JSON.stringify(state));
    return handle;
  }

  it('`down` of the other stack refuses, and stack alpha keeps running', async () => {
    const dir = await stateDir();
    const alpha = await alphaRunning(dir);
    const runtime = createProcessRuntime({ stateDirFor: () => dir });
    await expect(stopStack({ stack: 'beta', stateDir: dir, runtimes: fixedRuntimeSet({ process: runtime }) })).rejects.toMatchObject({
      code: 'state_dir_shared',
    });
    expect(survivors([alpha.pid])).toEqual([alpha.pid]);
    expect((await readStateFile(dir))?.stack).toBe('alpha');
    await runtime.close();
  });

  it('`up` of the other stack refuses the folder (state file or lock of another stack)', async () => {
    const dir = await stateDir();
    await alphaRunning(dir);
    await expect(acquireLock(dir, 'beta')).rejects.toMatchObject({ code: 'state_dir_shared' });
    await expect(readStateFile(dir, 'beta')).rejects.toMatchObject({ code: 'state_dir_shared' });

    const other = await stateDir();
    const lock = await acquireLock(other, 'alpha');
    await expect(acquireLock(other, 'beta')).rejects.toMatchObject({ code: 'state_dir_shared' });
    await expect(readLock(other, 'beta')).rejects.toMatchObject({ code: 'state_dir_shared' });
    await lock.release();
  });
});

describe('stack lock: symlinks', () => {
  it('never writes the lock through a symlink planted at its temporary name', async () => {
    const dir = await stateDir();
    const victim = `${dir}/victim`;
    await writeFile(victim, 'precious\n');
    await symlink(victim, `${lockFilePath(dir)}.${process.pid}.tmp`);
    const lock = await acquireLock(dir, 'locked');
    expect(await readFile(victim, 'utf8')).toBe('precious\n');
    expect(await readLock(dir)).toMatchObject({ pid: process.pid, stack: 'locked' });
    await lock.release();
  });
});
