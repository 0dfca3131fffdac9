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
 * Only a holder proven alive is ever signalled or waited for: a lock must name a pid above 1 and
 * the kernel start time recorded when it was taken, matching /proc/<pid>/stat now. A lock without
 * one (forged, or from a system without /proc) cannot be proven: it is stale on Linux; on a system
 * without /proc a live pid there refuses the lock (we cannot tell) and is never signalled.
 *
 * The lock names its stack: a state folder shared by two stacks (the same `stateDir` in two
 * profiles) is refused (`state_dir_shared`), so one stack never stops or relieves the other.
 *
 * Except when the holder is a detached supervisor (`stack up --detach` runs the normal `up` as a
 * background process, marked `detached` in the lock): a later `up` converges the running stack,
 * so it relieves that supervisor first. It sends `RELIEVE_SIGNAL` (SIGUSR2), to which the
 * supervisor answers by letting go — it stops its monitors and heartbeats, releases the lock and
 * exits, leaving every service running — and waits for it to exit. A distinct signal, not
 * SIGTERM: SIGTERM (`stack down`, Ctrl-C) means "stop the stack". A signal rather than a control
 * file: the lock already names the process, and signals need no polling on its side.
 */
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { makeDirs } from '../util/fs.js';
import path from 'node:path';
import { StackFailedError } from '../errors.js';
import { isProcessAlive, procAvailable, processStartTime } from '../util/proc.js';
import { realClock, type Clock } from '../util/clock.js';
import { relieveSupervisor } from './supervisor.js';

// The relieving side of the supervisor protocol lives with the rest of it (supervisor.ts).
export { RELIEVE_SIGNAL } from './supervisor.js';

export interface LockInfo {
  pid: number;
  /** The stack whose lock it is (absent in locks of older versions). */
  stack?: string;
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

/**
 * The lock of a state folder. With `stack`, a lock naming another stack is refused
 * (`state_dir_shared`): the folder is shared, and what it describes is not ours to act on.
 */
export async function readLock(stateDir: string, stack?: string): Promise<LockInfo | undefined> {
  let info: LockInfo | undefined;
  try {
    const parsed = JSON.parse(await readFile(lockFilePath(stateDir), 'utf8')) as Partial<LockInfo>;
    info = typeof parsed.pid === 'number' ? (parsed as LockInfo) : undefined;
  } catch {
    return undefined;
  }
  if (info && stack !== undefined && info.stack !== undefined && info.stack !== stack) throw sharedFolder(lockFilePath(stateDir), info.stack, stack);
  return info;
}

/**
 * Whether the process that took the lock is still running, proven: a pid above 1, a recorded
 * start time matching the kernel's. What cannot be proven (no start time, no /proc) counts as
 * not running, so it is never signalled.
 */
export function lockOwnerAlive(info: LockInfo): boolean {
  if (!Number.isSafeInteger(info.pid) || info.pid <= 1 || !info.processStartTime || !procAvailable()) return false;
  if (info.pid === process.pid && info.processStartTime === processStartTime(process.pid)) return true;
  return isProcessAlive(info.pid, info.processStartTime);
}

/** An error for a state folder that holds another stack's lock, state or pid files. */
export function sharedFolder(file: string, owner: string, stack: string): StackFailedError {
  return new StackFailedError(`${file} belongs to stack '${owner}', not '${stack}': two stacks share one state folder; give each its own \`stateDir\``, {
    code: 'state_dir_shared',
    path: file,
  });
}

export async function acquireLock(stateDir: string, stack: string, opts: AcquireLockOptions = {}): Promise<StackLock> {
  await makeDirs(stateDir);
  const file = lockFilePath(stateDir);
  await refuseOtherStacksState(stateDir, stack);
  const startTime = processStartTime(process.pid);
  const info: LockInfo = {
    pid: process.pid,
    stack,
    ...(startTime ? { processStartTime: startTime } : {}),
    startedAt: new Date().toISOString(),
    command: opts.command ?? 'up',
    ...(opts.detached ? { detached: true } : {}),
  };
  const tmp = `${file}.${process.pid}.tmp`;
  // O_EXCL ('wx') never writes through a symlink planted at this predictable name; a leftover of
  // a crashed run with our pid is removed first (rm removes a link, not its target).
  await rm(tmp, { force: true });
  await writeFile(tmp, `${JSON.stringify(info)}\n`, { mode: 0o600, flag: 'wx' });
  let relieved = false;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, file);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await readLock(stateDir, stack);
      if (holder && !procAvailable() && holder.pid !== process.pid && pidExists(holder.pid)) {
        throw new StackFailedError(
          `stack '${stack}' has a lock held by pid ${holder.pid}, and this system has no /proc to prove whether that process still runs the stack; remove ${file} if it does not`,
          { code: 'stack_locked', path: file },
        );
      }
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

/** A state folder whose state file names another stack is not ours to run in. */
async function refuseOtherStacksState(stateDir: string, stack: string): Promise<void> {
  const file = path.join(stateDir, 'state.json');
  let owner: unknown;
  try {
    owner = (JSON.parse(await readFile(file, 'utf8')) as { stack?: unknown }).stack;
  } catch {
    return; // none, or unreadable: no stack claims the folder
  }
  if (typeof owner === 'string' && owner !== stack) throw sharedFolder(file, owner, stack);
}

/** kill(pid, 0): whether a process with this pid exists (all we can know without /proc). */
function pidExists(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
