/** Run the built `stack` command (bin/stack.js → dist/) as a separate process. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const stackBin = fileURLToPath(new URL('../../bin/stack.js', import.meta.url));

/** Compile src/ to dist/ once; type errors in files still in progress elsewhere do not stop the emit. */
export function buildDist(): void {
  spawnSync(process.execPath, [fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url)), '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'ignore' });
}

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
