/**
 * Where the process runtime keeps things under a stack's state folder, and the pid files that
 * let another `stack` process (or this one after a crash) find running instances:
 *
 *   <stateDir>/logs/<service>.log            replica 0 (the common case keeps the plain name)
 *   <stateDir>/logs/<service>-<replica>.log  other replicas
 *   <stateDir>/pids/<service>-<replica>.json the instance's handle, with pid, pgid, start time
 *                                            and config hash
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
// The Docker runtime's hashing helpers: plain node:crypto, no Docker client behind them.
import { sha256, stableStringify } from './docker-spec.js';
import { renderedContent } from './rendered.js';
import type { ServiceHandle, StartRequest } from './types.js';

/** A process-runtime handle: the persisted fields every other process needs to act on it. */
export interface ProcessHandle extends ServiceHandle {
  runtime: 'process';
  pid: number;
  pgid: number;
  logFile: string;
  /** Where this handle is persisted. */
  pidFile: string;
  /** Kernel start time of the process (ticks since boot): tells it apart from a recycled pid. */
  processStartTime?: string;
  /** What the instance was started from (`processConfigHash`): `start` reuses it only while this matches. */
  configHash?: string;
  /**
   * The `STACK_INSTANCE` marker set in the instance's environment (`<stack>/<service>/<replica>/<nonce>`):
   * proves a process ours, and finds what of the instance left its process group (a daemon).
   */
  instance?: string;
}

/**
 * Everything that defines a process instance, hashed, as Compose hashes a service into its
 * `config-hash` label: the service's definition without what does not change the running
 * instance (as Compose leaves out scale, pull policy and depends_on: `replicas`, `pull`,
 * `dependencies`, `enable`, `description`), the final environment (in place of the profile's
 * own, which it contains), and every rendered file's destination, mode and contents (in place of
 * the template specs that produced them). The working directory is hashed resolved, since a
 * relative one means another folder for another profile location.
 *
 * The inherited environment of the `stack` process is left out: a re-run from another shell
 * (another `PWD`, `SHLVL`, `TERM`) must not restart everything.
 */
export async function processConfigHash(req: StartRequest, run: { cwd: string; inheritEnv: 'all' | 'minimal' }): Promise<string> {
  const { replicas: _r, pull: _p, dependencies: _d, enable: _e, description: _t, environment: _v, templates: _f, ...definition } = req.service;
  const files: Record<string, string> = {};
  for (const f of req.files) files[f.destination] = `${f.mode.toString(8)}:${sha256(await renderedContent(f))}`;
  return sha256(stableStringify({ definition, environment: req.environment, files, ...run }));
}

export function logFilePath(stateDir: string, service: string, replica: number): string {
  return path.join(stateDir, 'logs', replica > 0 ? `${service}-${replica}.log` : `${service}.log`);
}

export function pidsDir(stateDir: string): string {
  return path.join(stateDir, 'pids');
}

export function pidFilePath(stateDir: string, service: string, replica: number): string {
  return path.join(pidsDir(stateDir), `${service}-${replica}.json`);
}

/**
 * The pid file of a handle, also for a handle persisted by someone else without our extra fields:
 * the log file sits in `<stateDir>/logs/`, so the state folder is two levels up.
 */
export function pidFileOf(handle: ServiceHandle): string | undefined {
  const own = (handle as Partial<ProcessHandle>).pidFile;
  if (own) return own;
  if (!handle.logFile) return undefined;
  return pidFilePath(path.dirname(path.dirname(handle.logFile)), handle.service, handle.replica);
}

export async function readPidFile(file: string): Promise<ProcessHandle | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<ProcessHandle>;
    if (parsed.runtime !== 'process' || typeof parsed.pid !== 'number' || typeof parsed.stack !== 'string') return undefined;
    return { ...parsed, pgid: parsed.pgid ?? parsed.pid, pidFile: file } as ProcessHandle;
  } catch {
    return undefined; // missing or half-written by a crashed writer: nothing to find there
  }
}

export async function readPidFiles(stateDir: string): Promise<ProcessHandle[]> {
  let names: string[];
  try {
    names = await readdir(pidsDir(stateDir));
  } catch {
    return [];
  }
  const handles = await Promise.all(names.filter((n) => n.endsWith('.json')).map((n) => readPidFile(path.join(pidsDir(stateDir), n))));
  return handles.filter((h): h is ProcessHandle => h !== undefined);
}
