/**
 * What the kernel says about a process: is it alive, which group is it in, when did it start.
 *
 * Linux `/proc/<pid>/stat` is the source, because `kill(pid, 0)` alone lies twice: it succeeds
 * for a zombie (an exited process whose parent has not reaped it yet, common when PID 1 reaps
 * slowly), and for a *recycled* pid that now belongs to someone else. The start time (in clock
 * ticks since boot) tells our process apart from a later one with the same pid. Without /proc
 * (not Linux) we fall back to `kill(pid, 0)`.
 */
import { readFileSync, readdirSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  /** R, S, D, Z, T, … (Z = zombie: exited, not yet reaped). */
  state: string;
  pgrp: number;
  /** Start time in clock ticks since boot, as a string (stable across readers). */
  startTime: string;
}

const hasProc = (() => {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
})();

export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name sits in parentheses and may itself contain ") ": cut at the last one.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const [state, , pgrp] = fields;
  const startTime = fields[19];
  if (state === undefined || pgrp === undefined || startTime === undefined) return undefined;
  return { pid, state, pgrp: Number(pgrp), startTime };
}

/** The process start time to record at spawn (undefined without /proc or if it already exited). */
export function processStartTime(pid: number): string | undefined {
  return readProcStat(pid)?.startTime;
}

/**
 * True when `pid` is a live (non-zombie) process and, if `startTime` is given, the very process
 * that started then.
 */
export function isProcessAlive(pid: number, startTime?: string): boolean {
  if (!hasProc) return signalZeroSucceeds(pid);
  const stat = readProcStat(pid);
  if (!stat || stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === undefined || stat.startTime === startTime;
}

/** Live (non-zombie) members of process group `pgid`. */
export function liveGroupMembers(pgid: number): number[] {
  if (!hasProc) return signalZeroSucceeds(-pgid) ? [pgid] : [];
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(Number(entry));
    if (stat && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') members.push(stat.pid);
  }
  return members;
}

function signalZeroSucceeds(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, but not ours to signal
  }
}
