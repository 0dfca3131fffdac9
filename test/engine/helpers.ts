/** Shared fixtures for engine tests: profiles of real loopback processes, and event bookkeeping. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack, type StartStackOptions } from '../../src/engine/engine.js';
import type { EngineEvent, ServiceState } from '../../src/engine/types.js';
import { buildGraph } from '../../src/graph/graph.js';
import { planStack } from '../../src/plan/plan.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import type { Profile } from '../../src/profile/types.js';
import { createMemoryRuntime, type MemoryScript } from '../../src/runtime/memory.js';
import { isProcessAlive, liveGroupMembers } from '../../src/util/proc.js';
import { createManualClock, type ManualClock } from '../../src/util/clock.js';

export const fixture = fileURLToPath(new URL('../fixtures/http-service.mjs', import.meta.url));

export async function tempDir(prefix = 'engine-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** An http-service fixture listening on `port`, healthy at /health. */
export function httpService(port: number, env: Record<string, string> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    runtime: 'process',
    command: [process.execPath, fixture],
    port,
    environment: { PORT: String(port), ...env },
    healthCheck: { strategy: 'http', endpoint: '/health', port, interval: '100ms', timeout: '1s', retries: 0 },
    stopGracePeriod: '2s',
    ...extra,
  };
}

/** A `node -e` program (a task, or a service without a health check). */
export function nodeProgram(code: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { runtime: 'process', command: [process.execPath, '-e', code], stopGracePeriod: '2s', ...extra };
}

export function makeStack(name: string, dir: string, services: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const profile: Profile = mkDeploymentProfile(
    {
      name,
      runtime: 'process',
      stateDir: path.join(dir, 'state'),
      coordination: { dependencyTimeout: '10s' },
      discovery: { backend: 'memory' },
      services,
      ...extra,
    } as never,
    { cwd: dir },
  );
  const { graph } = buildGraph(profile);
  const plan = planStack(profile, graph);
  return { profile, graph, plan };
}

/** Events in arrival order, with helpers to find when something happened. */
export class EventLog {
  readonly events: EngineEvent[] = [];
  readonly push = (e: EngineEvent) => void this.events.push(e);
  /** Index of the first state event of `service` entering `state` (-1 when none). */
  at(service: string, state: ServiceState): number {
    return this.events.findIndex((e) => e.type === 'state' && e.service === service && e.state === state);
  }
  states(service: string): ServiceState[] {
    return this.events.flatMap((e) => (e.type === 'state' && e.service === service ? [e.state] : []));
  }
  pids(): number[] {
    return [...new Set(this.events.flatMap((e) => (e.type === 'state' && e.pid !== undefined ? [e.pid] : [])))];
  }
  count(type: EngineEvent['type'], service?: string): number {
    return this.events.filter((e) => e.type === type && (service === undefined || ('service' in e && e.service === service))).length;
  }
}

/** Pids (process-group leaders) still alive, or with live group members. */
export function survivors(pids: number[]): number[] {
  return pids.filter((pid) => isProcessAlive(pid) || liveGroupMembers(pid).length > 0);
}

/** A stack on the in-memory runtime and a manual clock: engine behaviour in milliseconds, no process. */
export async function memoryStack(services: Record<string, Record<string, unknown>>, opts: MemoryStackOptions = {}) {
  const { dir, cleanup } = await tempDir('engine-mem-');
  const clock = createManualClock();
  const runtime = createMemoryRuntime({ clock, ...(opts.script ? { script: opts.script } : {}) });
  const withCommands = Object.fromEntries(Object.entries(services).map(([name, s]) => [name, { command: [process.execPath], stopGracePeriod: '2s', ...s }]));
  const input = makeStack(opts.name ?? 'mem', dir, withCommands, opts.extra ?? {});
  const log = new EventLog();
  const start = (more: Partial<StartStackOptions> = {}) =>
    startStack(input, { runtimes: { process: runtime }, clock, strategyFor: () => runtime.health, onEvent: log.push, ...more });
  return { dir, cleanup, clock, runtime, input, log, start };
}

export interface MemoryStackOptions {
  name?: string;
  extra?: Record<string, unknown>;
  script?: (service: string, attempt: number) => MemoryScript;
}

/** A health check the memory runtime answers (any strategy works; its probes never touch the network). */
export const memCheck = (extra: Record<string, unknown> = {}) => ({
  strategy: 'http',
  endpoint: '/health',
  port: 1,
  interval: '100ms',
  timeout: '1s',
  retries: 0,
  ...extra,
});

/**
 * Drive a manual clock until `promise` settles: fire the next timer whenever one is pending, else
 * let real I/O (the lock, the state file) progress. Bounded (in real time, as a safety net only),
 * so a bug that never settles fails the test instead of hanging it.
 */
export async function drive<T>(clock: ManualClock, promise: Promise<T>): Promise<T> {
  let outcome: { value: T } | { error: unknown } | undefined;
  promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  const giveUpAt = Date.now() + 20_000;
  while (!outcome) {
    if (Date.now() > giveUpAt) throw new Error('the promise did not settle');
    if (!(await clock.advanceToNext()) && !outcome) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}

/**
 * Drive the clock until `promise` settles, in steps of `stepMs` with a real pause between them:
 * several runs doing real I/O (locks, state files) while others wait on the clock must not see
 * time race ahead of them (the single-run `drive` jumps straight to the next timer).
 */
export async function pace<T>(clock: ManualClock, promise: Promise<T>, stepMs = 50): Promise<T> {
  let outcome: { value: T } | { error: unknown } | undefined;
  promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  const giveUpAt = Date.now() + 30_000;
  while (!outcome) {
    if (Date.now() > giveUpAt) throw new Error('the promise did not settle');
    await clock.advance(stepMs);
    if (!outcome) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}

/** Drive the clock until `ready()` holds. */
export async function until(clock: ManualClock, ready: () => boolean): Promise<void> {
  if (ready()) return;
  await pace(
    clock,
    new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (!ready()) return;
        clearInterval(timer);
        resolve();
      }, 1);
    }),
  );
}
