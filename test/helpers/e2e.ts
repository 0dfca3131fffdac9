/** Shared by the end-to-end tests that run a whole profile through the built `stack` command. */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { processStartTime } from '../../src/util/proc.js';
import { ROOT } from './cli.js';

/** Whether `pid` runs; a zombie (exited, waiting for an init process that reaps lazily) does not. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return existsSync('/proc/self') ? false : true; // gone in between, or no /proc (then kill(0) decides)
  }
}

/** Registration files the file discovery backend holds under `workDir` (`.stack/discovery/<service>/<id>.json`). */
export function registrations(workDir: string): string[] {
  const dir = path.join(workDir, '.stack', 'discovery');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.json'));
}

/**
 * Bluesky's client class, loaded from the install the stack's setup task just made (same cache
 * folder, same rules), so the tool itself does not depend on @atproto/api.
 */
export function loadAtpAgent<T>(env: Record<string, string>): T {
  const dir = execFileSync(process.execPath, [path.join(ROOT, 'launchers', 'install.mjs'), '--print-dir'], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  }).trim();
  return (createRequire(path.join(dir, 'package.json'))('@atproto/api') as { AtpAgent: T }).AtpAgent;
}

/** Pids the stack ran as, each with its kernel start time when first seen: what proves it is still that process. */
export type SeenProcesses = Map<number, string | undefined>;

export function see(seen: SeenProcesses, pid: number): void {
  if (!seen.has(pid)) seen.set(pid, processStartTime(pid));
}

/**
 * `stack down` (when the stack was started), then, as a last resort so a failed test never
 * leaves servers behind, SIGKILL to the processes this stack ran as: only a pid whose start time
 * is still the one recorded (a recycled pid is someone else's). The temp dir goes last.
 */
export async function tearDownStack(down: (() => Promise<unknown>) | undefined, seen: SeenProcesses, cleanup: () => void): Promise<void> {
  try {
    if (down) await down();
  } finally {
    for (const [pid, startTime] of seen) if (startTime !== undefined && processStartTime(pid) === startTime) process.kill(pid, 'SIGKILL');
    cleanup();
  }
}
