/**
 * What the kernel says about processes: is one alive, which group is it in, when did it start,
 * what is in its environment, who listens on a port and who holds a socket. Generic OS helpers
 * (the process runtime, the stack lock and the supervisor use them); nothing here knows a stack.
 *
 * Linux `/proc/<pid>/stat` is the source, because `kill(pid, 0)` alone lies twice: it succeeds
 * for a zombie (an exited process whose parent has not reaped it yet, common when PID 1 reaps
 * slowly), and for a *recycled* pid that now belongs to someone else. The start time (in clock
 * ticks since boot) tells our process apart from a later one with the same pid. Without /proc
 * (not Linux) we fall back to `kill(pid, 0)`.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

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

/** Whether this system has /proc: without it nothing about a process can be proven ours. */
export function procAvailable(): boolean {
  return hasProc;
}

/** The value of `name` in the initial environment of `pid` (undefined when unreadable or unset). */
export function processEnvironmentValue(pid: number, name: string): string | undefined {
  let raw: Buffer;
  try {
    raw = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return undefined;
  }
  const prefix = `${name}=`;
  for (const entry of raw.toString('utf8').split('\0')) if (entry.startsWith(prefix)) return entry.slice(prefix.length);
  return undefined;
}

/**
 * Live processes (other than this one) whose initial environment carries `name=value`: with a
 * marker variable set at spawn, the whole tree of a process, daemons that left its group included.
 */
export function processesWithEnvironment(name: string, value: string): number[] {
  if (!hasProc) return [];
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const stat = readProcStat(pid);
    if (!stat || stat.state === 'Z' || stat.state === 'X') continue;
    if (processEnvironmentValue(pid, name) === value) found.push(pid);
  }
  return found;
}

/** The command name of a process (`/proc/<pid>/comm`), for messages. */
export function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A TCP listener found in /proc/net/tcp{,6}. */
export interface TcpListener {
  address: string;
  port: number;
  inode: string;
}

/** TCP sockets in LISTEN state on `port`, any address, IPv4 and IPv6 (empty without /proc). */
export function tcpListenersOn(port: number): TcpListener[] {
  const found: TcpListener[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const [local, , state] = [cols[1], cols[2], cols[3]];
      const inode = cols[9];
      if (!local || state !== '0A' || inode === undefined) continue; // 0A: LISTEN
      const [hexAddr, hexPort] = local.split(':');
      if (hexAddr === undefined || hexPort === undefined || parseInt(hexPort, 16) !== port) continue;
      found.push({ address: decodeProcAddress(hexAddr), port, inode });
    }
  }
  return found;
}

/** Pids holding a socket with one of these inodes open (unreadable processes are skipped). */
export function socketHolders(inodes: string[]): number[] {
  if (!hasProc || inodes.length === 0) return [];
  const wanted = new Set(inodes.map((i) => `socket:[${i}]`));
  const holders: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${entry}/fd/${fd}`);
      } catch {
        continue;
      }
      if (wanted.has(target)) {
        holders.push(Number(entry));
        break;
      }
    }
  }
  return holders;
}

/** `0100007F` → `127.0.0.1`; IPv6 as 32 hex digits in 4-byte little-endian words. */
function decodeProcAddress(hex: string): string {
  const bytes = (word: string) => [word.slice(6, 8), word.slice(4, 6), word.slice(2, 4), word.slice(0, 2)].map((b) => parseInt(b, 16));
  if (hex.length === 8) return bytes(hex).join('.');
  const all = [0, 8, 16, 24].flatMap((i) => bytes(hex.slice(i, i + 8)));
  if (all.slice(0, 10).every((b) => b === 0) && all[10] === 0xff && all[11] === 0xff) return all.slice(12).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((all[i] ?? 0) << 8) | (all[i + 1] ?? 0)).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}
