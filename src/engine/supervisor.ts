/**
 * The detached supervisor of `stack up --detach`, seen from the process that starts it.
 *
 * A stack only stays supervised (health monitoring, restart policies, discovery heartbeats) while
 * an engine runs it, so `--detach` does what process-compose's detached mode and the Compose
 * daemon do: it starts the ordinary foreground `stack up` as a background process, and only
 * follows it until the stack is up. The supervisor
 * - leads its own session (`setsid`), so a closing terminal or a Ctrl-C there never reaches it;
 * - writes its output to `<stateDir>/supervisor.log`: one JSON event per line, then any error
 *   text. It gets the file itself (no pipe through us), so it logs on after we exit;
 * - holds the stack's lock, marked `detached`, so `stack down` (SIGTERM) stops it and its
 *   services, and a later `up` relieves it (lock.ts) to converge the stack.
 *
 * The previous log moves to `supervisor.log.1`, so the file holds one supervisor's output and
 * does not grow with every re-`up` (a supervisor being relieved finishes writing to the old one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { StackFailedError } from '../errors.js';

export function supervisorLogPath(stateDir: string): string {
  return path.join(stateDir, 'supervisor.log');
}

export interface SupervisorOptions {
  /** The full command line: `[program, ...args]`. */
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  stateDir: string;
  /** How often `follow` looks for new output; default 25 ms. */
  pollIntervalMs?: number;
}

export interface SupervisorProcess {
  readonly pid: number;
  readonly logFile: string;
  /** Its exit code once it exits (a death by signal counts as 128 + the signal's number). */
  readonly exited: Promise<number>;
  kill(signal: NodeJS.Signals): void;
  /**
   * Hand each line of its output to `onLine`, from the start, until `onLine` returns true
   * (resolves `'released'`: it runs on) or it exits and everything it wrote was read (resolves
   * with its exit code).
   */
  follow(onLine: (line: string) => boolean | void): Promise<number | 'released'>;
  /** Let it run on without us: our own process may exit. */
  release(): void;
}

export async function startSupervisor(opts: SupervisorOptions): Promise<SupervisorProcess> {
  const [program, ...args] = opts.argv;
  if (program === undefined) throw new TypeError('startSupervisor: empty argv');
  const logFile = supervisorLogPath(opts.stateDir);
  await mkdir(opts.stateDir, { recursive: true });
  await rename(logFile, `${logFile}.1`).catch(() => undefined); // no earlier log: nothing to keep
  const logFd = openSync(logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(program, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', logFd, logFd] });
  } finally {
    closeSync(logFd); // the child has its own copy
  }
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0)));
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new StackFailedError(`cannot start the supervisor: ${err.message}`, { code: 'start_failed', cause: err })));
  });
  const pollIntervalMs = opts.pollIntervalMs ?? 25;
  let exitCode: number | undefined;
  void exited.then((code) => (exitCode = code));

  return {
    pid: child.pid!,
    logFile,
    exited,
    kill(signal) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    },
    async follow(onLine) {
      const file = await open(logFile, 'r');
      const decoder = new StringDecoder('utf8');
      const chunk = Buffer.alloc(64 * 1024);
      let position = 0;
      let pending = '';
      try {
        for (;;) {
          // Decided before reading: once it has exited, this read sees everything it wrote.
          const over = exitCode;
          for (;;) {
            const { bytesRead } = await file.read(chunk, 0, chunk.length, position);
            if (bytesRead === 0) break;
            position += bytesRead;
            pending += decoder.write(chunk.subarray(0, bytesRead));
          }
          const lines = pending.split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) if (line !== '' && onLine(line)) return 'released';
          if (over !== undefined) {
            if (pending !== '') onLine(pending);
            return over;
          }
          await new Promise((resolve) => setTimeout(resolve, pollIntervalMs));
        }
      } finally {
        await file.close();
      }
    },
    release() {
      child.unref();
    },
  };
}
