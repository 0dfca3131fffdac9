/**
 * The local-process runtime (`runtime: process`): each service instance is a child process.
 *
 * Choices, and why:
 * - argv is spawned directly, never through a shell, unless the service says `shell: true`
 *   (then its command, joined by spaces, runs under `/bin/sh -c`). `entrypoint`, if given,
 *   goes before `command`, as in Docker.
 * - Environment: our own environment plus the request's (`req.environment` wins), like
 *   process-compose and a shell user's expectations (PATH, HOME, nvm, locale all carry over);
 *   Compose does not inherit, but its containers have an image's environment instead. Pass
 *   `inheritEnv: 'minimal'` to hand over only PATH, HOME, USER, LANG and the like.
 * - Working directory: `service.workingDir` resolved against the profile's folder.
 * - Each instance leads its own process group (`detached: true`), so `stop` signals the whole
 *   tree (`kill(-pgid)`), and a Ctrl-C in our terminal does not reach services directly.
 * - Output goes straight to `<stateDir>/logs/<service>.log`: the child gets the file's fd, so it
 *   keeps logging after `stack` exits or dies (no pipe through us).
 * - A pid file per instance (`<stateDir>/pids/<service>-<replica>.json`) records pid, pgid and the
 *   kernel start time, so `discover`, `stop` and `wait` work from another process after a crash,
 *   and a recycled pid is never mistaken for ours.
 * - The engine applies restart policies (`appliesRestartPolicy` is false): `wait` reports exits.
 * - `start` converges, as the Docker runtime does with its label: the pid file keeps the
 *   instance's config hash (`processConfigHash`); a live instance (pid and kernel start time
 *   checked) with the same hash is returned as it is, and one with another hash is stopped and
 *   replaced. A task is never reused: only its parent can read its exit status, and a task
 *   still running here was left by a `stack up` that died; it runs again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { access, mkdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InvalidInputError, StackFailedError, type Problem } from '../errors.js';
import type { ServiceSpec } from '../profile/types.js';
import { realClock, type Clock } from '../util/clock.js';
import { atomicWrite } from '../util/fs.js';
import { poll, PollTimeoutError } from '../util/retry.js';
import { logFilePath, pidFileOf, pidFilePath, pidsDir, processConfigHash, readPidFile, readPidFiles, type ProcessHandle } from './process-files.js';
import { readLogLines } from './process-logs.js';
import { isProcessAlive, liveGroupMembers, processStartTime, readProcStat } from './process-proc.js';
import type { ExitInfo, InstanceStatus, LogOptions, Runtime, ServiceHandle, StartRequest, StopOptions } from './types.js';

export type { ProcessHandle } from './process-files.js';

export interface ProcessRuntimeOptions {
  /**
   * State folder of a stack this runtime instance did not start (for `discover` and `teardown`
   * in a fresh process). Default: `.stack/<stack>` under the current directory. Stacks started
   * through this instance use the `stateDir` of their start requests.
   */
  stateDirFor?: (stack: string) => string;
  /** `all` (default): services inherit our environment; `minimal`: only the variables below. */
  inheritEnv?: 'all' | 'minimal';
  clock?: Clock;
  /** Longest pause between looks at processes we did not start, and at growing log files. */
  pollIntervalMs?: number;
  /** After SIGKILL, how long to wait for the group to vanish before giving up. */
  killWaitMs?: number;
}

/** Variables passed on with `inheritEnv: 'minimal'`. */
const MINIMAL_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'TERM'];

interface LocalChild {
  child: ChildProcess;
  exit: Promise<ExitInfo>;
  exited?: ExitInfo;
}

/** The argv an instance runs: entrypoint + command, or `/bin/sh -c` with them joined. */
export function processArgv(service: ServiceSpec): string[] {
  const words = [...(service.entrypoint ?? []), ...(service.command ?? [])];
  if (service.shell) return words.length > 0 ? ['/bin/sh', '-c', words.join(' ')] : [];
  return words;
}

export function createProcessRuntime(opts: ProcessRuntimeOptions = {}): Runtime {
  const clock = opts.clock ?? realClock;
  const pollIntervalMs = opts.pollIntervalMs ?? 50;
  const killWaitMs = opts.killWaitMs ?? 5000;
  const stateDirFor = opts.stateDirFor ?? ((stack: string) => path.resolve('.stack', stack));
  const knownStateDirs = new Map<string, string>();
  const children = new Map<number, LocalChild>();
  /**
   * Cuts the polls of `wait` for processes we did not start (kept instances of an earlier `up`)
   * on close: their timers would keep a supervisor that hands the stack over (re-`up`) from exiting. Waits cut short stay
   * pending, like those of our own unref'd children: the instance has not exited as far as we know.
   */
  let closing = new AbortController();

  const stateDirOf = (stack: string) => knownStateDirs.get(stack) ?? stateDirFor(stack);
  const pollOpts = (deadlineMs?: number) => ({
    clock,
    initialDelayMs: Math.min(10, pollIntervalMs),
    maxDelayMs: pollIntervalMs,
    factor: 2,
    ...(deadlineMs !== undefined ? { deadlineMs } : {}),
  });

  const environmentFor = (req: StartRequest): Record<string, string> => {
    const inherited: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (value !== undefined && (opts.inheritEnv !== 'minimal' || MINIMAL_ENV.includes(key))) inherited[key] = value;
    }
    return { ...inherited, ...req.environment };
  };

  /** Our own child for this handle, if we spawned it (and it is the same process). */
  const localChildOf = (handle: ServiceHandle): LocalChild | undefined => (handle.pid === undefined ? undefined : children.get(handle.pid));

  /** The kernel start time we expect for the handle's pid, from the handle or its pid file. */
  const expectedStartTime = async (handle: ServiceHandle): Promise<string | undefined> => {
    const own = (handle as Partial<ProcessHandle>).processStartTime;
    if (own) return own;
    const file = pidFileOf(handle);
    const persisted = file ? await readPidFile(file) : undefined;
    return persisted && persisted.pid === handle.pid ? persisted.processStartTime : undefined;
  };

  /** Whether the handle's leader process is alive and is the process we started. */
  const leaderAlive = async (handle: ServiceHandle): Promise<boolean> => {
    if (handle.pid === undefined) return false;
    const local = localChildOf(handle);
    if (local) return !local.exited;
    return isProcessAlive(handle.pid, await expectedStartTime(handle));
  };

  /**
   * Whether the handle's process group is ours to signal: its leader is alive and ours, or the
   * leader is gone and members remain (a pgid cannot be reused while its group has members).
   */
  const groupIsOurs = async (handle: ServiceHandle, pgid: number): Promise<boolean> => {
    if (await leaderAlive(handle)) return true;
    const leader = readProcStat(pgid);
    if (leader && leader.state !== 'Z' && leader.state !== 'X') return false; // pid reused by another process
    return liveGroupMembers(pgid).length > 0;
  };

  const waitForGroupExit = async (pgid: number, deadlineMs: number): Promise<boolean> => {
    try {
      await poll(() => (liveGroupMembers(pgid).length === 0 ? true : undefined), pollOpts(deadlineMs));
      return true;
    } catch (err) {
      if (err instanceof PollTimeoutError) return false;
      throw err;
    }
  };

  /** The instance a pid file describes, when something of it still runs. */
  const runningInstance = async (pidFile: string, stack: string): Promise<ProcessHandle | undefined> => {
    const persisted = await readPidFile(pidFile);
    if (!persisted || persisted.stack !== stack) return undefined;
    return (await groupIsOurs(persisted, persisted.pgid)) ? persisted : undefined;
  };

  const runtime: Runtime = {
    name: 'process',
    appliesRestartPolicy: false,

    async prepare(_stack, services) {
      const problems: Problem[] = [];
      for (const service of services) {
        if (service.runtime !== 'process') continue;
        problems.push(...(await commandProblems(service)));
        if (os.constants.signals[service.stopSignal as NodeJS.Signals] === undefined) {
          problems.push({ code: 'invalid_signal', path: `services.${service.name}.stopSignal`, message: `unknown stop signal '${service.stopSignal}'` });
        }
      }
      if (problems.length > 0) throw new InvalidInputError(problems, 'cannot start processes');
    },

    async start(req) {
      const { service, replica } = req;
      const argv = processArgv(service);
      const [program, ...args] = argv;
      if (program === undefined) {
        throw new InvalidInputError([{ code: 'missing_command', path: `services.${service.name}.command`, message: `service '${service.name}' has no command to run` }]);
      }
      const cwd = path.resolve(req.profileDir, service.workingDir ?? '.');
      if (!(await isDirectory(cwd))) {
        throw new StackFailedError(`cannot start '${service.name}': working directory ${cwd} does not exist`, { code: 'start_failed', path: `services.${service.name}.workingDir` });
      }
      knownStateDirs.set(req.stack, req.stateDir);
      const pidFile = pidFilePath(req.stateDir, service.name, replica);
      const configHash = await processConfigHash(req, { cwd, inheritEnv: opts.inheritEnv ?? 'all' });
      const running = await runningInstance(pidFile, req.stack);
      if (running) {
        if (running.configHash === configHash && service.kind === 'service' && (await leaderAlive(running))) return running;
        // Changed (or a leftover task, or a group whose leader died): stop it as `down` would.
        await runtime.stop(running, { signal: service.stopSignal, gracePeriodMs: service.stopGracePeriodMs });
      }
      const logFile = logFilePath(req.stateDir, service.name, replica);
      await mkdir(path.dirname(logFile), { recursive: true });

      const startedAt = new Date().toISOString();
      // The child writes to the file itself; we close our copy of the descriptor right after spawning.
      const logFd = openSync(logFile, 'a', 0o600);
      let child: ChildProcess;
      try {
        child = spawn(program, args, { cwd, env: environmentFor(req), detached: true, stdio: ['ignore', logFd, logFd] });
      } finally {
        closeSync(logFd);
      }
      const local = trackExit(child);
      await spawned(child, service.name, program);
      const pid = child.pid as number;
      children.set(pid, local);
      child.unref(); // `stack` may exit (hand-over, crash) while its services run on

      const startTime = processStartTime(pid);
      const handle: ProcessHandle = {
        runtime: 'process',
        stack: req.stack,
        service: service.name,
        replica,
        id: String(pid),
        pid,
        pgid: pid, // detached: the child leads a new group with its own pid
        startedAt,
        logFile,
        pidFile,
        ...(startTime !== undefined ? { processStartTime: startTime } : {}),
        configHash,
      };
      await atomicWrite(handle.pidFile, `${JSON.stringify(handle, null, 2)}\n`);
      return handle;
    },

    async wait(handle) {
      const local = localChildOf(handle);
      if (local) {
        if (local.exited) return local.exited;
        local.child.ref(); // someone waits for this exit: keep the event loop alive for it
        return local.exit;
      }
      if (handle.pid === undefined) return { code: null, signal: null };
      // Not our child: its exit status is not ours to read; watch it disappear.
      const pid = handle.pid;
      const startTime = await expectedStartTime(handle);
      const closed = closing.signal;
      try {
        await poll(() => (isProcessAlive(pid, startTime) ? undefined : true), { ...pollOpts(), signal: closed });
      } catch (err) {
        if (closed.aborted) return new Promise<ExitInfo>(() => undefined);
        throw err;
      }
      return { code: null, signal: null };
    },

    async stop(handle, stopOpts: StopOptions) {
      const pgid = handle.pgid ?? handle.pid;
      if (pgid !== undefined && (await groupIsOurs(handle, pgid))) {
        signalGroup(pgid, stopOpts.signal);
        const stopped = await waitForGroupExit(pgid, stopOpts.gracePeriodMs);
        if (!stopped) {
          signalGroup(pgid, 'SIGKILL');
          if (!(await waitForGroupExit(pgid, killWaitMs))) {
            throw new StackFailedError(`'${handle.service}' (process group ${pgid}) survived SIGKILL`, { code: 'stop_failed' });
          }
        }
      }
      const local = localChildOf(handle);
      if (local && !local.exited) await local.exit; // record the exit status
      const pidFile = pidFileOf(handle);
      if (pidFile) await rm(pidFile, { force: true });
    },

    async inspect(handle): Promise<InstanceStatus> {
      const local = localChildOf(handle);
      if (local?.exited) return { running: false, exit: local.exited };
      return { running: await leaderAlive(handle) };
    },

    logs(handle, logOpts: LogOptions) {
      if (!handle.logFile) return emptyLines();
      return readLogLines(handle.logFile, {
        follow: logOpts.follow,
        ...(logOpts.tail !== undefined ? { tail: logOpts.tail } : {}),
        ...(logOpts.signal !== undefined ? { signal: logOpts.signal } : {}),
        clock,
        pollIntervalMs: Math.max(pollIntervalMs, 100),
      });
    },

    async discover(stack) {
      const found: ServiceHandle[] = [];
      for (const handle of await readPidFiles(stateDirOf(stack))) {
        if (handle.stack !== stack) continue;
        if (await groupIsOurs(handle, handle.pgid)) found.push(handle);
      }
      return found;
    },

    async teardown(stack) {
      await rm(pidsDir(stateDirOf(stack)), { recursive: true, force: true });
    },

    endpoint(_handle, port) {
      return { host: '127.0.0.1', port };
    },

    async close() {
      // Services outlive us (that is the point of pid files); just stop tracking them.
      for (const local of children.values()) local.child.unref();
      children.clear();
      closing.abort();
      closing = new AbortController(); // a closed runtime may be used again, as before
    },
  };
  return runtime;
}

/** Listen for the exit at once, so an instant exit is not missed while we finish starting. */
function trackExit(child: ChildProcess): LocalChild {
  const local: LocalChild = {
    child,
    exit: new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        local.exited = { code, signal };
        child.unref();
        resolve(local.exited);
      });
    }),
  };
  return local;
}

/** Resolves once the child is running; a failed spawn (missing program, no permission) rejects clearly. */
function spawned(child: ChildProcess, service: string, program: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(new StackFailedError(`cannot start '${service}': ${program}: ${err.code ?? err.message}`, { code: 'start_failed', path: `services.${service}.command`, cause: err }));
    });
  });
}

function signalGroup(pgid: number, signal: string): void {
  try {
    process.kill(-pgid, signal as NodeJS.Signals);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; // ESRCH: already gone
  }
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Problems with a service's program: missing command, or argv[0] neither on PATH nor a file. */
async function commandProblems(service: ServiceSpec): Promise<Problem[]> {
  const at = `services.${service.name}.command`;
  const program = processArgv(service)[0];
  if (program === undefined || program === '') {
    return [{ code: 'missing_command', path: at, message: `service '${service.name}' has no command (the process runtime needs one)` }];
  }
  if (program.includes('/')) {
    // A relative path resolves against the working directory; when that is relative too, only
    // `start` (which knows the profile's folder) can tell.
    const base = service.workingDir && path.isAbsolute(service.workingDir) ? service.workingDir : undefined;
    if (!path.isAbsolute(program) && base === undefined) return [];
    const file = path.resolve(base ?? '/', program);
    return (await isExecutable(file)) ? [] : [{ code: 'command_not_found', path: at, message: `service '${service.name}': ${program} is not an executable file` }];
  }
  const searchPath = service.environment.PATH ?? process.env.PATH ?? '';
  for (const dir of searchPath.split(path.delimiter)) {
    if (dir && (await isExecutable(path.join(dir, program)))) return [];
  }
  return [{ code: 'command_not_found', path: at, message: `service '${service.name}': command '${program}' not found on PATH` }];
}

async function* emptyLines(): AsyncGenerator<string> {
  // A handle without a log file has no output to show.
}
