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
 */
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { StackFailedError } from '../errors.js';
import { isProcessAlive, processStartTime } from '../runtime/process-proc.js';

export interface LockInfo {
  pid: number;
  processStartTime?: string;
  /** ISO-8601. */
  startedAt: string;
  command: string;
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

export async function acquireLock(stateDir: string, stack: string, command = 'up'): Promise<StackLock> {
  await mkdir(stateDir, { recursive: true });
  const file = lockFilePath(stateDir);
  const startTime = processStartTime(process.pid);
  const info: LockInfo = { pid: process.pid, ...(startTime ? { processStartTime: startTime } : {}), startedAt: new Date().toISOString(), command };
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(info)}\n`, { mode: 0o600 });
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
        throw new StackFailedError(
          `stack '${stack}' is already being run by \`stack ${holder.command}\` (pid ${holder.pid}, since ${holder.startedAt}); stop it with \`stack down\` or wait for it`,
          { code: 'stack_locked' },
        );
      }
      if (attempt >= 2) throw new StackFailedError(`cannot take the lock of stack '${stack}' at ${file}`, { code: 'stack_locked' });
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
