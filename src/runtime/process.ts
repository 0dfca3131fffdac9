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
 * - A pid file per instance (`<stateDir>/pids/<service>-<replica>.json`) records pid, pgid, the
 *   kernel start time and the instance's `STACK_INSTANCE` marker (set in its environment), so
 *   `discover`, `stop` and `wait` work from another process after a crash.
 * - Nothing is signalled unless proven ours (`proveOwnership`): a pid and group above 1 that the
 *   instance led, the recorded start time matching the kernel's, the marker in its environment.
 *   A record that cannot be proven (no start time, no /proc, forged) is reported, never signalled.
 * - `stop` also stops what left the group (a daemon in a new session), found by its marker and,
 *   where cgroup v2 is writable, by the instance's own cgroup (process-cgroup.ts).
 * - Before a start, a port of the service that something else listens on fails the start and
 *   names the holder: otherwise the foreign listener would pass the health check.
 * - Nothing under the state folder is opened through a symlink (logs, pid files).
 * - The engine applies restart policies (`appliesRestartPolicy` is false): `wait` reports exits.
 * - `start` converges, as the Docker runtime does with its label: the pid file keeps the
 *   instance's config hash (`processConfigHash`); a live instance (pid and kernel start time
 *   checked) with the same hash is returned as it is, and one with another hash is stopped and
 *   replaced. A task is never reused: only its parent can read its exit status, and a task
 *   still running here was left by a `stack up` that died; it runs again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, rm, rmdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InvalidInputError, StackFailedError, type Problem } from '../errors.js';
import type { ServiceSpec } from '../profile/types.js';
import { realClock, type Clock } from '../util/clock.js';
import { atomicWrite, openNoFollow } from '../util/fs.js';
import { poll, PollTimeoutError } from '../util/retry.js';
import { logFilePath, pidFileOf, pidFilePath, pidsDir, processConfigHash, readPidFile, readPidFiles, type ProcessHandle } from './process-files.js';
import { instanceCgroupMembers, joinInstanceCgroup, removeInstanceCgroup, removeStackCgroups } from './process-cgroup.js';
import { readLogLines } from './process-logs.js';
import {
  isProcessAlive,
  liveGroupMembers,
  procAvailable,
  processEnvironmentValue,
  processesWithEnvironment,
  processName,
  processStartTime,
  readProcStat,
  socketHolders,
  tcpListenersOn,
} from '../util/proc.js';
import type { RuntimeFactory } from './create.js';
import type { ExitInfo, InstanceStatus, LogOptions, Runtime, ServiceHandle, StartRequest, StopOptions } from './types.js';

export type { ProcessHandle } from './process-files.js';

/**
 * The environment variable the process runtime sets in every instance it spawns, with a random
 * nonce: `STACK_INSTANCE=<stack>/<service>/<replica>/<nonce>`. It is inherited by everything the
 * instance forks (also a daemon that left the process group), so it proves a process ours and
 * finds the survivors of a `stop`.
 */
export const INSTANCE_ENV = 'STACK_INSTANCE';

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
  /**
   * Told what `stop` found and dealt with beyond the process group (an instance's daemon that
   * left it), or could not prove ours. Default: a process warning on stderr.
   */
  onWarning?: (message: string) => void;
}

/** The runtime made for a run (found by name: src/runtime/create.ts); it has no profile section. */
export const fromProfile: RuntimeFactory<object> = async ({ stateDir, onWarning }) =>
  createProcessRuntime({ stateDirFor: () => stateDir, ...(onWarning ? { onWarning } : {}) });

/**
 * Whether a handle's process is ours to look at and signal:
 * - `ours`: alive, and proven the very process we started (kernel start time recorded at spawn
 *   matches, and its environment carries our instance marker when one was recorded);
 * - `gone`: nothing of it runs (or its pid now belongs to a later process: the start time differs);
 * - `unproven`: something runs at that pid or group that we cannot prove ours (no recorded start
 *   time, a marker that differs, a pid or group we never create, no /proc): never signalled.
 */
type Ownership = { state: 'ours'; leaderAlive: boolean } | { state: 'gone' } | { state: 'unproven'; reason: string };

/** What was recorded about an instance at spawn, from the handle or its pid file. */
interface SpawnRecord {
  startTime?: string;
  instance?: string;
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
  const warn = opts.onWarning ?? ((message: string) => process.emitWarning(message, 'StackWarning'));

  /** Our own child for this handle, if we spawned it (and it is the same process). */
  const localChildOf = (handle: ServiceHandle): LocalChild | undefined => (handle.pid === undefined ? undefined : children.get(handle.pid));

  /** The start time and marker recorded for the handle's pid, from the handle or its pid file. */
  const recordOf = async (handle: ServiceHandle): Promise<SpawnRecord> => {
    const own = handle as Partial<ProcessHandle>;
    const file = own.processStartTime && own.instance ? undefined : pidFileOf(handle);
    const persisted = file ? await readPidFile(file) : undefined;
    const fromFile = persisted && persisted.pid === handle.pid && persisted.stack === handle.stack ? persisted : undefined;
    const startTime = own.processStartTime ?? fromFile?.processStartTime;
    const instance = own.instance ?? fromFile?.instance;
    return { ...(startTime ? { startTime } : {}), ...(instance ? { instance } : {}) };
  };

  /** Ownership of the handle's process (see `Ownership`); a pid or group at or below 1 is never ours. */
  const ownershipOf = async (handle: ServiceHandle): Promise<Ownership> => {
    const local = localChildOf(handle);
    if (local) return local.exited ? { state: 'gone' } : { state: 'ours', leaderAlive: true };
    return proveOwnership(handle, await recordOf(handle));
  };

  /** Whether the handle's leader process is alive and is the process we started. */
  const leaderAlive = async (handle: ServiceHandle): Promise<boolean> => {
    const own = await ownershipOf(handle);
    return own.state === 'ours' && own.leaderAlive;
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

  /**
   * The instance a pid file describes, when something of it still runs. A live instance of
   * another stack there means two stacks share one state folder: refused, never overwritten.
   */
  const runningInstance = async (pidFile: string, stack: string): Promise<ProcessHandle | undefined> => {
    const persisted = await readPidFile(pidFile);
    if (!persisted) return undefined;
    const own = await ownershipOf(persisted);
    if (persisted.stack !== stack) {
      if (own.state === 'gone') return undefined;
      throw new StackFailedError(
        `${pidFile} belongs to stack '${persisted.stack}', not '${stack}': two stacks share one state folder (give each its own \`stateDir\`)`,
        {
          code: 'state_dir_shared',
          path: pidFile,
        },
      );
    }
    return own.state === 'ours' ? persisted : undefined;
  };

  /** Stop what of an instance left its process group (a daemon: double fork, new session), found by its marker. */
  const stopSurvivors = async (handle: ServiceHandle, instance: string | undefined, stopOpts: StopOptions): Promise<void> => {
    if (!instance) return;
    const survivors = [...new Set([...processesWithEnvironment(INSTANCE_ENV, instance), ...instanceCgroupMembers(instance)])].filter((pid) => pid > 1);
    if (survivors.length === 0) {
      removeInstanceCgroup(instance);
      return;
    }
    const described = survivors.map((pid) => `${pid} (${processName(pid) ?? '?'})`).join(', ');
    const started = new Map(survivors.map((pid) => [pid, readProcStat(pid)?.startTime]));
    const alive = () => [...started].filter(([pid, t]) => t !== undefined && isProcessAlive(pid, t)).map(([pid]) => pid);
    for (const pid of alive()) signalProcess(pid, stopOpts.signal);
    let left = await waitUntilNone(alive, stopOpts.gracePeriodMs);
    for (const pid of left) signalProcess(pid, 'SIGKILL');
    if (left.length > 0) left = await waitUntilNone(alive, killWaitMs);
    if (left.length > 0) {
      throw new StackFailedError(`'${handle.service}' left processes outside its group that survived SIGKILL: ${left.join(', ')}`, { code: 'stop_failed' });
    }
    removeInstanceCgroup(instance);
    warn(`'${handle.service}' had left its process group (daemonised): stopped ${described}, found by its ${INSTANCE_ENV} marker or cgroup`);
  };

  const waitUntilNone = async (alive: () => number[], deadlineMs: number): Promise<number[]> => {
    try {
      await poll(() => (alive().length === 0 ? true : undefined), pollOpts(deadlineMs));
      return [];
    } catch (err) {
      if (err instanceof PollTimeoutError) return alive();
      throw err;
    }
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
        throw new InvalidInputError([
          { code: 'missing_command', path: `services.${service.name}.command`, message: `service '${service.name}' has no command to run` },
        ]);
      }
      const cwd = path.resolve(req.profileDir, service.workingDir ?? '.');
      if (!(await isDirectory(cwd))) {
        throw new StackFailedError(`cannot start '${service.name}': working directory ${cwd} does not exist`, {
          code: 'start_failed',
          path: `services.${service.name}.workingDir`,
        });
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
      if (service.kind === 'service') refuseHeldPorts(service);
      const logFile = logFilePath(req.stateDir, service.name, replica);

      const startedAt = new Date().toISOString();
      const instance = `${req.stack}/${service.name}/${replica}/${randomBytes(8).toString('hex')}`;
      // The child writes to the file itself; we close our copy of the descriptor right after
      // spawning. No symlink is followed: a planted logs/<svc>.log must not receive the output.
      const logHandle = await openNoFollow(req.stateDir, logFile, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT, 0o600);
      let child: ChildProcess;
      let local: LocalChild;
      let spawning: Promise<void>;
      try {
        child = spawn(program, args, {
          cwd,
          env: { ...environmentFor(req), [INSTANCE_ENV]: instance },
          detached: true,
          stdio: ['ignore', logHandle.fd, logHandle.fd],
        });
        // Listen before any await: 'spawn' and an instant 'exit' come on the next tick.
        local = trackExit(child);
        spawning = spawned(child, service.name, program);
        spawning.catch(() => undefined); // awaited below; not unhandled while the log closes
      } finally {
        await logHandle.close();
      }
      await spawning;
      const pid = child.pid as number;
      children.set(pid, local);
      joinInstanceCgroup(instance, pid); // where cgroups v2 are ours to use: the kernel tracks its whole tree
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
        instance,
      };
      try {
        await atomicWrite(handle.pidFile, `${JSON.stringify(handle, null, 2)}\n`, 0o600, { within: req.stateDir });
      } catch (err) {
        // Unrecorded, nobody could find or stop it later (a full disk, a read-only pids/): stop it now.
        await runtime.stop(handle, { signal: 'SIGKILL', gracePeriodMs: 0 }).catch(() => undefined);
        throw new StackFailedError(
          `cannot record '${service.name}' in ${handle.pidFile} (${(err as NodeJS.ErrnoException).code ?? String(err)}); stopped it again`,
          {
            code: 'start_failed',
            path: handle.pidFile,
            cause: err,
          },
        );
      }
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
      // Not our child: its exit status is not ours to read; watch it disappear. Something we
      // cannot prove ours has, as far as we are concerned, exited.
      const record = await recordOf(handle);
      const closed = closing.signal;
      try {
        await poll(() => (proveOwnership(handle, record).state === 'ours' ? undefined : true), { ...pollOpts(), signal: closed });
      } catch (err) {
        if (closed.aborted) return new Promise<ExitInfo>(() => undefined);
        throw err;
      }
      return { code: null, signal: null };
    },

    async stop(handle, stopOpts: StopOptions) {
      const pgid = handle.pgid ?? handle.pid;
      const record = await recordOf(handle);
      const own = await ownershipOf(handle);
      if (own.state === 'unproven') {
        throw new StackFailedError(`not signalling '${handle.service}' (pid ${String(handle.pid)}): ${own.reason}; its record is stale or not ours`, {
          code: 'not_ours',
          ...(pidFileOf(handle) ? { path: pidFileOf(handle) } : {}),
        });
      }
      if (own.state === 'ours' && pgid !== undefined) {
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
      await stopSurvivors(handle, record.instance, stopOpts);
      const pidFile = pidFileOf(handle);
      if (pidFile) await rm(pidFile, { force: true });
    },

    /** A template's `changeMode: signal`: its whole process group, and only once proven ours, as `stop` does. */
    async signal(handle, signal) {
      const own = await ownershipOf(handle);
      const pgid = handle.pgid ?? handle.pid;
      if (own.state !== 'ours' || pgid === undefined) {
        const why = own.state === 'unproven' ? own.reason : 'it is not running';
        throw new StackFailedError(`not signalling '${handle.service}' (pid ${String(handle.pid)}): ${why}`, { code: 'not_ours' });
      }
      signalGroup(pgid, signal);
    },

    async inspect(handle): Promise<InstanceStatus> {
      const local = localChildOf(handle);
      if (local?.exited) return { running: false, exit: local.exited };
      return { running: (await ownershipOf(handle)).state === 'ours' };
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
        if ((await ownershipOf(handle)).state === 'ours') found.push(handle);
      }
      return found;
    },

    async teardown(stack) {
      // Only this stack's pid files: another stack's in a shared folder are not ours to forget.
      const dir = pidsDir(stateDirOf(stack));
      for (const handle of await readPidFiles(stateDirOf(stack))) if (handle.stack === stack) await rm(handle.pidFile, { force: true });
      await rmdir(dir).catch(() => undefined); // kept while something else is in it
      removeStackCgroups(stack);
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
      reject(
        new StackFailedError(`cannot start '${service}': ${program}: ${err.code ?? err.message}`, {
          code: 'start_failed',
          path: `services.${service}.command`,
          cause: err,
        }),
      );
    });
  });
}

/**
 * Whether a handle's process (or, its leader gone, its group) is the one we started, from what
 * was recorded at spawn. Nothing is ours without /proc, without a recorded start time, or with a
 * pid or group we never create (≤ 1, or a group not led by the instance's own pid).
 */
function proveOwnership(handle: ServiceHandle, record: SpawnRecord): Ownership {
  const { pid } = handle;
  const pgid = handle.pgid ?? pid;
  if (pid === undefined || pgid === undefined) return { state: 'gone' };
  if (!validPid(pid) || !validPid(pgid)) return { state: 'unproven', reason: `pid ${String(pid)} / process group ${String(pgid)} is never one of ours` };
  if (pgid !== pid) return { state: 'unproven', reason: `process group ${pgid} is not the group the instance led (${pid})` };
  if (!procAvailable()) {
    return isProcessAlive(pid) ? { state: 'unproven', reason: 'this system has no /proc, so no process can be proven ours' } : { state: 'gone' };
  }
  const leader = readProcStat(pid);
  const leaderLive = leader !== undefined && leader.state !== 'Z' && leader.state !== 'X';
  if (leaderLive) {
    if (record.startTime === undefined) return { state: 'unproven', reason: 'no start time was recorded for it' };
    if (leader.startTime !== record.startTime) return { state: 'gone' }; // a later process got the pid
    if (record.instance !== undefined && processEnvironmentValue(pid, INSTANCE_ENV) !== record.instance) {
      return { state: 'unproven', reason: `its environment does not carry the recorded ${INSTANCE_ENV} marker` };
    }
    return { state: 'ours', leaderAlive: true };
  }
  // The leader is gone; members of its group may remain (a pgid is not reused while its group
  // has members). Ours only when one carries our marker.
  const members = liveGroupMembers(pgid);
  if (members.length === 0) return { state: 'gone' };
  if (record.instance !== undefined && members.some((m) => processEnvironmentValue(m, INSTANCE_ENV) === record.instance))
    return { state: 'ours', leaderAlive: false };
  return { state: 'unproven', reason: `process group ${pgid} outlived its leader and nothing in it carries the recorded ${INSTANCE_ENV} marker` };
}

function validPid(n: number): boolean {
  return Number.isSafeInteger(n) && n > 1;
}

/**
 * Fail the start of a service whose port something else already listens on: the instance
 * would die on EADDRINUSE while the other program answered its health check. Names the holder.
 */
function refuseHeldPorts(service: ServiceSpec): void {
  const wanted = new Map<number, string>();
  if (service.port !== undefined) wanted.set(service.port, service.address);
  for (const p of service.ports) if (p.protocol === 'tcp') wanted.set(p.container, p.hostIp);
  for (const [port, address] of wanted) {
    const listeners = tcpListenersOn(port).filter((l) => addressesOverlap(l.address, address));
    if (listeners.length === 0) continue;
    const holders = socketHolders(listeners.map((l) => l.inode));
    const who = holders.length > 0 ? holders.map((pid) => `pid ${pid} (${processName(pid) ?? '?'})`).join(', ') : 'a process we cannot see';
    throw new StackFailedError(
      `cannot start '${service.name}': port ${port} is already in use by ${who} on ${listeners[0]?.address ?? '?'}; stop it or change the port`,
      {
        code: 'port_in_use',
        path: `services.${service.name}.port`,
      },
    );
  }
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** Whether a listener on `held` takes the port from a service binding `wanted`. */
function addressesOverlap(held: string, wanted: string): boolean {
  return WILDCARDS.has(held) || WILDCARDS.has(wanted) || held === wanted;
}

function signalProcess(pid: number, signal: string): void {
  if (!validPid(pid)) throw new StackFailedError(`refusing to signal pid ${pid}`, { code: 'not_ours' });
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function signalGroup(pgid: number, signal: string): void {
  // kill(-1) is every process we may signal; kill(0) our own group: never.
  if (!validPid(pgid)) throw new StackFailedError(`refusing to signal process group ${pgid}`, { code: 'not_ours' });
  try {
    process.kill(-pgid, signal);
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
    return (await isExecutable(file))
      ? []
      : [{ code: 'command_not_found', path: at, message: `service '${service.name}': ${program} is not an executable file` }];
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
