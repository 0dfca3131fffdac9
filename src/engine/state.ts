/**
 * The stack's state on disk, so `status` and `down` work from another process, and after the
 * `stack up` that wrote it was killed (even with `kill -9`).
 *
 * Layout under the state folder (`.stack/<stack>/`, or the profile's `stateDir`):
 *   state.json   every service's state, handle, health, start time, restarts, last health result
 *   lock         the `stack up` currently running this stack (lock.ts)
 *   logs/        per-service output (written by the services themselves)
 *   pids/        the process runtime's own pid files (it finds instances the state file missed)
 *   supervisor.log  the detached supervisor's output (`up --detach`): JSON events, then errors
 *   leader/      leader-follower: the singletons' run while this host leads (its own lock and state.json)
 *   leadership.json  leader-follower: this host's supervisor's view of the election
 *
 * `state.json` is written atomically (temp + rename), and writes are coalesced: a burst of state
 * changes costs one write, the latest. It never holds environment values, so never a secret.
 */
import { realClock } from '../util/clock.js';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { atomicWrite } from '../util/fs.js';
import { sharedFolder } from './lock.js';
import type { ServiceStatus, StackPhase } from './types.js';

export const STATE_VERSION = 1;

export interface StackStateFile {
  version: typeof STATE_VERSION;
  stack: string;
  /** The `stack up` process that wrote it (it may be gone). */
  owner: { pid: number; processStartTime?: string; startedAt: string };
  phase: StackPhase;
  /** A stack across hosts: the declared host whose share this is (`stack up --host`). */
  host?: string;
  updatedAt: string;
  profile: { file?: string; builtin?: string };
  services: Record<string, ServiceStatus>;
}

// One definition of the state folder for the engine, templates and secrets alike.
export { stateDirOf } from '../profile/paths.js';

/** Leader-follower: the folder of the leader's share (its singletons' lock, state file, control channel). */
export function leaderRunDir(stateDir: string): string {
  return path.join(stateDir, 'leader');
}

export function stateFilePath(stateDir: string): string {
  return path.join(stateDir, 'state.json');
}

/**
 * The state file of a folder. With `stack`, a state file of another stack is refused
 * (`state_dir_shared`): two profiles share the folder, and its services are not ours to stop.
 */
export async function readStateFile(stateDir: string, stack?: string): Promise<StackStateFile | undefined> {
  let text: string;
  try {
    text = await readFile(stateFilePath(stateDir), 'utf8');
  } catch {
    return undefined;
  }
  let parsed: Partial<StackStateFile>;
  try {
    parsed = JSON.parse(text) as Partial<StackStateFile>;
  } catch {
    return undefined; // atomic writes make this unlikely; an unreadable file is no state at all
  }
  if (parsed.version !== STATE_VERSION || typeof parsed.stack !== 'string' || typeof parsed.services !== 'object' || !parsed.services) return undefined;
  if (stack !== undefined && parsed.stack !== stack) throw sharedFolder(stateFilePath(stateDir), parsed.stack, stack);
  return parsed as StackStateFile;
}

export async function removeStateFile(stateDir: string): Promise<void> {
  await rm(stateFilePath(stateDir), { force: true });
}

/** Coalescing writer: `save` returns at once; `flush` waits until the latest snapshot is on disk. */
export interface StateWriter {
  save(snapshot: () => StackStateFile): void;
  flush(): Promise<void>;
}

/**
 * At most one write per `minGapMs`: a 100-service stack changes state hundreds of times while
 * starting, and health probes update it every interval; readers only need it current within a
 * moment (the runtime's pid files cover the instant before a crash).
 */
export function createStateWriter(stateDir: string, onError: (err: unknown) => void, minGapMs = 50): StateWriter {
  const file = stateFilePath(stateDir);
  let pending: (() => StackStateFile) | undefined;
  let writing: Promise<void> | undefined;

  const drain = async (): Promise<void> => {
    while (pending) {
      const next = pending;
      pending = undefined;
      try {
        await atomicWrite(file, `${JSON.stringify(next(), null, 2)}\n`, 0o600);
      } catch (err) {
        onError(err);
      }
      if (pending) await realClock.sleep(minGapMs);
    }
    writing = undefined;
  };

  return {
    save(snapshot) {
      pending = snapshot;
      // Wait a tick so a burst of synchronous state changes becomes one write.
      writing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(drain);
    },
    async flush() {
      while (writing) await writing;
    },
  };
}
