/** Run the built `stack` command (bin/stack.js → dist/) as a separate process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect } from 'vitest';
import { fixture, survivors, tempDir } from '../engine/helpers.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const stackBin = fileURLToPath(new URL('../../bin/stack.js', import.meta.url));

/** Compile src/ to dist/ once; type errors in files still in progress elsewhere do not stop the emit. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runStack(args: string[], cwd: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [stackBin, ...args], { cwd, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A long-running `stack` process whose stdout is read line by line (`--json` events). */
export class StackProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  constructor(args: string[], cwd: string) {
    this.child = spawn(process.execPath, [stackBin, ...args], { cwd, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buffer = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buffer += d.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      this.lines.push(...parts);
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }
  /** JSON events printed so far. */
  events(): Record<string, unknown>[] {
    return this.lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }
  hasState(service: string, state: string): boolean {
    return this.events().some((e) => e.type === 'state' && e.service === service && e.state === state);
  }
  pids(): number[] {
    return [...new Set(this.events().flatMap((e) => (typeof e.pid === 'number' ? [e.pid] : [])))];
  }
}

/**
 * The supervisor `stack up --detach` left running: the pid in its last `--json` line
 * (`phase: detached`), or in its plain "detached: supervised by pid N".
 */
export function supervisorPid(stdout: string): number | undefined {
  const plain = /supervised by pid (\d+)/.exec(stdout);
  if (plain) return Number(plain[1]);
  const last = stdout.trim().split('\n').at(-1) ?? '';
  try {
    const event = JSON.parse(last) as { phase?: string; supervisor?: unknown };
    return event.phase === 'detached' && typeof event.supervisor === 'number' ? event.supervisor : undefined;
  } catch {
    return undefined;
  }
}

/** Live `stack` processes (supervisors, say) whose working directory is `cwd`, found in /proc. */
export function stackProcessesIn(cwd: string): number[] {
  const found: number[] = [];
  const dir = realpathSync(cwd);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (realpathSync(`/proc/${entry}/cwd`) !== dir) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const zombie = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
      if (!zombie && argv.includes(stackBin)) found.push(Number(entry));
    } catch {
      // gone in between, or not ours to read
    }
  }
  return found;
}

/** The http-service fixture as a process service on `port`, healthy at /health. */
export function webService(port: number, env: Record<string, string> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    command: [process.execPath, fixture],
    port,
    environment: { PORT: String(port), ...env },
    healthCheck: { strategy: 'http', endpoint: '/health', interval: '100ms', retries: 0 },
    stopGracePeriod: '2s',
    ...extra,
  };
}

export interface StackFolders {
  /**
   * A fresh folder with a `stack.json` (runtime process, file discovery in the folder) for
   * `services`, `extra` appended to the file. After the test: `stack down` there, and neither
   * the `pids` pushed to the result nor any `stack` process of the folder may survive.
   */
  stackFolder(services: Record<string, unknown>, extra?: string): Promise<{ dir: string; pids: number[] }>;
  /** Run after the current test, last pushed first. */
  cleanups: (() => Promise<void>)[];
}

/** Register the afterEach that runs the cleanups, and return the folder maker. */
export function useStackFolders(settings: { prefix: string; name: string; dependencyTimeout: string; discovery?: Record<string, unknown> }): StackFolders {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function stackFolder(services: Record<string, unknown>, extra = ''): Promise<{ dir: string; pids: number[] }> {
    const { dir, cleanup } = await tempDir(settings.prefix);
    const pids: number[] = [];
    const profile = {
      name: settings.name,
      runtime: 'process',
      discovery: { backend: 'file', fileDirectory: path.join(dir, 'discovery'), ...settings.discovery },
      coordination: { dependencyTimeout: settings.dependencyTimeout },
      services,
    };
    await writeFile(path.join(dir, 'stack.json'), JSON.stringify(profile, null, 2) + extra);
    cleanups.push(async () => {
      await runStack(['down', '--timeout', '1'], dir);
      expect(survivors(pids)).toEqual([]);
      expect(stackProcessesIn(dir)).toEqual([]); // no supervisor left behind
      await cleanup();
    });
    return { dir, pids };
  }
  return { stackFolder, cleanups };
}

/** JSON events of a `--json` run, with the pid each service became healthy as. */
export function healthyPids(r: CliResult): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const e = JSON.parse(line) as { type: string; service?: string; state?: string; pid?: number };
    if (e.type === 'state' && e.state === 'healthy' && e.service && e.pid !== undefined) out[e.service] = e.pid;
  }
  return out;
}
