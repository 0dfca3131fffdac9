/**
 * The supervisor protocol, in one place: how `stack up --detach` starts a background supervisor
 * and follows it, how that supervisor is told apart and fed, how a later `up` relieves it, and
 * how `stack down` asks whoever runs a stack to stop.
 *
 * A stack only stays supervised (health monitoring, restart policies, discovery heartbeats) while
 * an engine runs it, so `--detach` does what process-compose's detached mode and the Compose
 * daemon do: it starts the ordinary foreground `stack up` as a background process, and only
 * follows it until the stack is up. The supervisor
 * - is that `stack up` with `--json` and `STACK_SUPERVISOR=1` in its environment (`SUPERVISOR_ENV`);
 * - gets what must not show in `ps` (the `--var` values: secrets among them) on its stdin, as one
 *   JSON document (`SupervisorInput`), never in its argv or environment, which other users of the
 *   machine can read (/proc/PID/cmdline) for as long as it runs;
 * - leads its own session (`setsid`), so a closing terminal or a Ctrl-C there never reaches it;
 * - writes its output to `<stateDir>/supervisor.log`: one JSON event per line, then any error
 *   text. It gets the file itself (no pipe through us), so it logs on after we exit;
 * - holds the stack's lock, marked `detached`, so `stack down` stops it and its services, and a
 *   later `up` relieves it to converge the stack.
 *
 * Relieving: a later `up` sends `RELIEVE_SIGNAL` (SIGUSR2), to which the supervisor answers by
 * letting go — it stops its monitors and heartbeats, releases the lock and exits, leaving every
 * service running — and waits for it to exit. A distinct signal, not SIGTERM: SIGTERM (`stack
 * down`, Ctrl-C) means "stop the stack". A signal rather than a control file: the lock already
 * names the process, and signals need no polling on its side.
 *
 * Stopping: `stack down` finds a live `stack up` (foreground or supervisor) holding the lock,
 * leaves a stop request next to the lock (`stop-request.json`: the `--timeout` to apply, so it
 * reaches whoever stops the services), sends SIGTERM, and waits for it to exit.
 *
 * Across hosts: `stack down --all-hosts` asks the supervisors of every host through discovery
 * (a control record each running `stack up` watches; see "stopping every host's share" below).
 *
 * The previous log moves to `supervisor.log.1`, so the file holds one supervisor's output and
 * does not grow with every re-`up` (a supervisor being relieved finishes writing to the old one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import { makeDirs } from '../util/fs.js';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { StackFailedError } from '../errors.js';
import { isProcessAlive } from '../util/proc.js';
import { realClock, type Clock } from '../util/clock.js';
import { poll, PollTimeoutError } from '../util/retry.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import type { LockInfo } from './lock.js';
import type { EngineEvent, StartupReport } from './types.js';

/** Set in the supervisor's environment: this `stack up` is the background supervisor of `up --detach`. */
export const SUPERVISOR_ENV = 'STACK_SUPERVISOR';

/** Asks a detached supervisor to let go of its stack (release the lock, exit, leave services running). */
export const RELIEVE_SIGNAL: NodeJS.Signals = 'SIGUSR2';

/** What the supervisor reads on its stdin: values that must not appear in its argv. */
export interface SupervisorInput {
  /** `--var key=value` flags. */
  vars: string[];
}

/** What `stack down` asks of the `stack up` it stops. */
export interface StopRequest {
  /** Grace period for every service (`down --timeout`), overriding each one's own. */
  timeoutMs?: number;
}

/** On disk: the request, and the pid it is meant for (a stale file never shortens a later Ctrl-C). */
interface StopRequestFile extends StopRequest {
  pid: number;
}

export function supervisorLogPath(stateDir: string): string {
  return path.join(stateDir, 'supervisor.log');
}

export interface SupervisorOptions {
  /** The full command line: `[program, ...args]`. */
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  stateDir: string;
  /** Written to its stdin (then closed): it reads it with `readSupervisorInput`. */
  input: SupervisorInput;
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
  await makeDirs(opts.stateDir);
  await rename(logFile, `${logFile}.1`).catch(() => undefined); // no earlier log: nothing to keep
  const logFd = openSync(logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(program, args, { cwd: opts.cwd, env: { ...opts.env, [SUPERVISOR_ENV]: '1' }, detached: true, stdio: ['pipe', logFd, logFd] });
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
  // A pipe holds far more than this document: the write completes even if it never reads.
  child.stdin!.on('error', () => undefined); // it died before reading: its exit code says why
  child.stdin!.end(JSON.stringify(opts.input));
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
          await realClock.sleep(pollIntervalMs);
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

/** In the supervisor: whether this process is one (and forget it, so its services do not inherit the mark). */
export function takeSupervisorMark(): boolean {
  const supervisor = process.env[SUPERVISOR_ENV] === '1';
  delete process.env[SUPERVISOR_ENV];
  return supervisor;
}

/** In the supervisor: read what `startSupervisor` wrote on its stdin. */
export async function readSupervisorInput(stdin: NodeJS.ReadableStream & { isTTY?: boolean } = process.stdin): Promise<SupervisorInput> {
  // Someone typed `STACK_SUPERVISOR=1 stack up` in a terminal: nothing will come, do not wait for it.
  if (stdin.isTTY) return { vars: [] };
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    const parsed = JSON.parse(text) as Partial<SupervisorInput>;
    return { vars: Array.isArray(parsed.vars) ? parsed.vars.filter((v): v is string => typeof v === 'string') : [] };
  } catch (err) {
    throw new StackFailedError('the supervisor got no valid input on its stdin (it is started by `stack up --detach`)', {
      code: 'supervisor_input',
      cause: err,
    });
  }
}

/** What the supervisor is run with: `stack up` again, without `--detach` nor `--var` (those come on stdin). */
export interface SupervisorCommand {
  /** The profile: an absolute file path, or a built-in name. */
  profile: string;
  onFailure: 'rollback' | 'leave';
  services: string[];
  /** `--host`: the host this is, in a profile with hosts. */
  host?: string;
  /** `--vars FILE`, absolute (a path, not a secret). */
  varsFile?: string;
  pull?: 'missing' | 'always' | 'never';
}

/** The supervisor's arguments after the program: every value as `--name=value`, so one starting with a dash never reads as an option. */
export function supervisorArgs(cmd: SupervisorCommand): string[] {
  return [
    'up',
    '--json',
    `--profile=${cmd.profile}`,
    `--on-failure=${cmd.onFailure}`,
    ...cmd.services.map((s) => `--service=${s}`),
    ...(cmd.host !== undefined ? [`--host=${cmd.host}`] : []),
    ...(cmd.varsFile ? [`--vars=${cmd.varsFile}`] : []),
    ...(cmd.pull ? [`--pull=${cmd.pull}`] : []),
  ];
}

/** The supervisor's startup report: one line of its output, for the `up --detach` following it. */
export interface ReportLine {
  type: 'report';
  report: StartupReport;
}

export function reportLine(report: StartupReport): string {
  return JSON.stringify({ type: 'report', report } satisfies ReportLine);
}

/** An engine event or the report, from one line of the supervisor's output; undefined for text (its errors). */
export function parseSupervisorLine(line: string): EngineEvent | ReportLine | undefined {
  try {
    const value = JSON.parse(line) as unknown;
    return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
      ? (value as EngineEvent | ReportLine)
      : undefined;
  } catch {
    return undefined;
  }
}

// ---- relieving a supervisor (a later `up`) ---------------------------------------------------

/** Ask a detached supervisor to let go of the stack, and wait until it has exited. */
export async function relieveSupervisor(stack: string, holder: LockInfo, timeoutMs: number, clock: Clock): Promise<void> {
  try {
    process.kill(holder.pid, RELIEVE_SIGNAL);
  } catch {
    return; // already gone
  }
  try {
    await poll(() => (isProcessAlive(holder.pid, holder.processStartTime) ? undefined : true), {
      clock,
      deadlineMs: timeoutMs,
      initialDelayMs: 10,
      maxDelayMs: 100,
    });
  } catch (err) {
    if (!(err instanceof PollTimeoutError)) throw err;
    throw new StackFailedError(
      `the supervisor of stack '${stack}' (pid ${holder.pid}) did not hand over within ${timeoutMs} ms; try again, or \`stack down\` first`,
      {
        code: 'stack_locked',
      },
    );
  }
}

// ---- stopping whoever runs the stack (`stack down`) -------------------------------------------

export function stopRequestPath(stateDir: string): string {
  return path.join(stateDir, 'stop-request.json');
}

/**
 * SIGTERM the `stack up` holding the lock, with `request` left for it to read, and wait for it
 * to finish stopping its services. False when it did not exit in time (the caller stops what is
 * left itself). `graces`: the grace periods of its services, to bound the wait.
 */
export async function askOwnerToStop(
  stateDir: string,
  owner: LockInfo,
  request: StopRequest,
  graces: number[],
  clock: Clock = realClock,
  /** Called once the owner has been signalled (work that can overlap its stopping). */
  signalled?: () => void,
): Promise<boolean> {
  const file = stopRequestPath(stateDir);
  await rm(file, { force: true });
  // O_EXCL: never through a symlink someone planted in its place.
  await writeFile(file, `${JSON.stringify({ ...request, pid: owner.pid } satisfies StopRequestFile)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    process.kill(owner.pid, 'SIGTERM');
  } catch {
    await rm(stopRequestPath(stateDir), { force: true });
    return true; // already gone
  }
  signalled?.();
  // Its services stop in reverse order, each within its grace period: allow the sum, plus slack.
  const deadlineMs = graces.map((g) => request.timeoutMs ?? g).reduce((a, b) => a + b, 0) + 10_000;
  try {
    // A look at /proc costs microseconds: look often, `down` returns as soon as the owner is gone.
    await poll(() => (isProcessAlive(owner.pid, owner.processStartTime) ? undefined : true), { clock, deadlineMs, initialDelayMs: 5, maxDelayMs: 10 });
    return true;
  } catch (err) {
    if (err instanceof PollTimeoutError) return false; // we stop what is left ourselves
    throw err;
  } finally {
    await rm(stopRequestPath(stateDir), { force: true });
  }
}

/** In the `stack up` being stopped: what `stack down` asked (read once, then removed); synchronous, for a signal handler. */
export function takeStopRequest(stateDir: string): StopRequest {
  const file = stopRequestPath(stateDir);
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<StopRequestFile>;
    if (parsed.pid !== process.pid) return {}; // meant for another (earlier) `stack up`
    rmSync(file, { force: true });
    const timeoutMs = parsed.timeoutMs;
    return typeof timeoutMs === 'number' && Number.isFinite(timeoutMs) && timeoutMs >= 0 ? { timeoutMs } : {};
  } catch {
    return {}; // a plain SIGTERM or Ctrl-C: each service's own grace period
  }
}

export interface SupervisorSignals {
  /** SIGINT or SIGTERM: stop the stack (`request`: what `stack down` asked). */
  onStop(signal: NodeJS.Signals, request: StopRequest): void;
  /** RELIEVE_SIGNAL (supervisors only): let go of the stack. */
  onRelieve?(): void;
}

/** Answer the signals of the protocol while a `stack up` runs; returns the function that stops answering. */
export function answerSignals(stateDir: string, answers: SupervisorSignals): () => void {
  const onStop = (signal: NodeJS.Signals) => answers.onStop(signal, takeStopRequest(stateDir));
  const onRelieve = () => answers.onRelieve?.();
  process.on('SIGINT', onStop);
  process.on('SIGTERM', onStop);
  if (answers.onRelieve) process.on(RELIEVE_SIGNAL, onRelieve);
  return () => {
    process.off('SIGINT', onStop);
    process.off('SIGTERM', onStop);
    process.off(RELIEVE_SIGNAL, onRelieve);
  };
}

// ---- stopping every host's share (`stack down --all-hosts`) ------------------------------------

/**
 * A stack across hosts has a supervisor on each host (peer-to-peer, mesh) or one hub, and no
 * process can signal the others. `stack down --all-hosts` asks them through the discovery they
 * all share: it registers a control record, service `CONTROL_SERVICE`, id `<stack>-down`, meta
 * `{ stack, action: 'down', requestedAt }` (and `timeoutMs` for `--timeout`). Every `stack up` of
 * a profile with hosts watches that service while it runs; one that sees a request for its stack
 * made after it started stops its own share (dependents first, deregistering only its own
 * registrations) as `stack down` would, and exits. The requester waits (bounded) until no
 * registration of the stack is left, then removes the request. The record carries a TTL, so a
 * requester that dies leaves no request behind for long; and a `stack up` started after the
 * request ignores it (the hosts' clocks must agree to within that much).
 */
export const CONTROL_SERVICE = 'stack-control';

export interface DownRequest {
  stack: string;
  /** ISO-8601, the requester's clock. */
  requestedAt: string;
  /** Who asked (the requesting machine's name). */
  by: string;
  /** `--timeout`: grace period for every service, overriding each one's own. */
  timeoutMs?: number;
}

export function downRequestId(stack: string): string {
  return `${stack}-down`;
}

/** Leave the request in discovery for `ttlMs` (or until `withdrawDownRequest`). */
export async function publishDownRequest(discovery: DiscoveryManager, request: DownRequest, ttlMs: number): Promise<void> {
  const meta: Record<string, string> = { stack: request.stack, action: 'down', requestedAt: request.requestedAt };
  if (request.timeoutMs !== undefined) meta.timeoutMs = String(request.timeoutMs);
  await discovery.register({ id: downRequestId(request.stack), service: CONTROL_SERVICE, address: request.by, meta }, { ttlMs });
}

export async function withdrawDownRequest(discovery: DiscoveryManager, stack: string): Promise<void> {
  await discovery.deregister(CONTROL_SERVICE, downRequestId(stack));
}

/** The down request a control record carries for `stack`, if it is one. */
export function parseDownRequest(record: ServiceInstance, stack: string): DownRequest | undefined {
  const { meta } = record;
  if (record.service !== CONTROL_SERVICE || record.id !== downRequestId(stack) || meta.stack !== stack || meta.action !== 'down') return undefined;
  const at = Date.parse(meta.requestedAt ?? '');
  if (Number.isNaN(at)) return undefined;
  const timeoutMs = meta.timeoutMs === undefined ? undefined : Number(meta.timeoutMs);
  return {
    stack,
    requestedAt: new Date(at).toISOString(),
    by: record.address,
    ...(timeoutMs !== undefined && Number.isFinite(timeoutMs) && timeoutMs >= 0 ? { timeoutMs } : {}),
  };
}

/**
 * In a running `stack up`: call `onRequest` once, for the first down request of `stack` made
 * after `since` (epoch milliseconds). Returns the function that stops watching.
 */
export function watchDownRequests(discovery: DiscoveryManager, stack: string, since: number, onRequest: (request: DownRequest) => void): () => void {
  const stop = new AbortController();
  void (async () => {
    try {
      for await (const list of discovery.watch(CONTROL_SERVICE, { signal: stop.signal })) {
        const request = list.map((r) => parseDownRequest(r, stack)).find((r) => r !== undefined && Date.parse(r.requestedAt) > since);
        if (!request) continue;
        stop.abort();
        onRequest(request);
        return;
      }
    } catch {
      // Stopped, or discovery closed under it: nothing more to watch.
    }
  })();
  return () => stop.abort();
}
