/**
 * One `stack up` per stack at a time. The lock is a file under the state folder holding the
 * owner's pid and kernel start time; it is created with link(2), which fails atomically when the
 * file exists, so a reader never sees half a lock.
 *
 * A lock whose owner is dead (crashed, `kill -9`) is stale and taken over. The start time tells a
 * live owner from an unrelated process that later got the same pid. Two processes taking over the
 * same stale lock at the same instant could both succeed; that needs a crash and a double start
 * within microseconds, and is accepted.
 *
 * A second `up` fails with exit code 1 (`stack_locked`): the input is fine, the stack is busy.
 *
 * Except when the holder is a detached supervisor (`stack up --detach` runs the normal `up` as a
 * background process, marked `detached` in the lock): a later `up` converges the running stack,
 * so it relieves that supervisor first. It sends `RELIEVE_SIGNAL` (SIGUSR2), to which the
 * supervisor answers by letting go — it stops its monitors and heartbeats, releases the lock and
 * exits, leaving every service running — and waits for it to exit. A distinct signal, not
 * SIGTERM: SIGTERM (`stack down`, Ctrl-C) means "stop the stack". A signal rather than a control
 * file: the lock already names the process, and signals need no polling on its side.
 */
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { StackFailedError } from '../errors.js';
import { isProcessAlive, processStartTime } from '../runtime/process-proc.js';
import { realClock, type Clock } from '../util/clock.js';
import { relieveSupervisor } from './supervisor.js';

// The relieving side of the supervisor protocol lives with the rest of it (supervisor.ts).
export { RELIEVE_SIGNAL } from './supervisor.js';

export interface LockInfo {
  pid: number;
  processStartTime?: string;
  /** ISO-8601. */
  startedAt: string;
  command: string;
  /** Held by a detached supervisor (`up --detach`): a later `up` relieves it instead of being refused. */
  detached?: boolean;
}

export interface AcquireLockOptions {
  /** Shown to a refused `up`; default `up`. */
  command?: string;
  /** We are a detached supervisor: we answer `RELIEVE_SIGNAL`. */
  detached?: boolean;
  /**
   * How long a relieved supervisor may take to exit. It finishes its own startup first (a
   * half-started stack is not handed over), so allow for that; default 60 s.
   */
  relieveTimeoutMs?: number;
  clock?: Clock;
}

export interface StackLock {
  readonly info: LockInfo;
  release(): Promise<void>;
}

export function lockFilePath(stateDir: string): string {
  return path.join(stateDir, 'lock');
}

export async function readLock(stateDir: string): Promise<LockInfo | undefined> {
  try {
    const parsed = JSON.parse(await readFile(lockFilePath(stateDir), 'utf8')) as Partial<LockInfo>;
    return typeof parsed.pid === 'number' ? (parsed as LockInfo) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the process that took the lock is still running. */
export function lockOwnerAlive(info: LockInfo): boolean {
  if (info.pid === process.pid && info.processStartTime === processStartTime(process.pid)) return true;
  return isProcessAlive(info.pid, info.processStartTime);
}

export async function acquireLock(stateDir: string, stack: string, opts: AcquireLockOptions = {}): Promise<StackLock> {
  await mkdir(stateDir, { recursive: true });
  const file = lockFilePath(stateDir);
  const startTime = processStartTime(process.pid);
  const info: LockInfo = {
    pid: process.pid,
    ...(startTime ? { processStartTime: startTime } : {}),
    startedAt: new Date().toISOString(),
    command: opts.command ?? 'up',
    ...(opts.detached ? { detached: true } : {}),
  };
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(info)}\n`, { mode: 0o600 });
  let relieved = false;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, file);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await readLock(stateDir);
      if (holder && lockOwnerAlive(holder)) {
        // Relieve once: a second live holder after that is another `up` that got in first. Never
        // ourselves (two runs in one process): the signal would be ours to answer.
        if (!holder.detached || relieved || holder.pid === process.pid) throw lockedBy(stack, holder);
        relieved = true;
        await relieveSupervisor(stack, holder, opts.relieveTimeoutMs ?? 60_000, opts.clock ?? realClock);
        continue; // it released the lock (or died holding it: stale)
      }
      if (attempt >= 3) throw new StackFailedError(`cannot take the lock of stack '${stack}' at ${file}`, { code: 'stack_locked' });
      await rm(file, { force: true }); // stale: its owner is gone
    }
  } finally {
    await rm(tmp, { force: true });
  }
  let released = false;
  return {
    info,
    async release() {
      if (released) return;
      released = true;
      const holder = await readLock(stateDir);
      if (holder && holder.pid === info.pid && holder.startedAt === info.startedAt) await rm(file, { force: true });
    },
  };
}

function lockedBy(stack: string, holder: LockInfo): StackFailedError {
  return new StackFailedError(
    `stack '${stack}' is already being run by \`stack ${holder.command}\` (pid ${holder.pid}, since ${holder.startedAt}); stop it with \`stack down\` or wait for it`,
    { code: 'stack_locked' },
  );
}
