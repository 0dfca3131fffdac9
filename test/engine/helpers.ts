/** Shared fixtures for engine tests: profiles of real loopback processes, and event bookkeeping. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EngineEvent, ServiceState } from '../../src/engine/types.js';
import { buildGraph } from '../../src/graph/graph.js';
import { planStack } from '../../src/graph/plan.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import type { Profile } from '../../src/profile/types.js';
import { isProcessAlive, liveGroupMembers } from '../../src/runtime/process-proc.js';

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
    { name, runtime: 'process', stateDir: path.join(dir, 'state'), coordination: { dependencyTimeout: '10s' }, discovery: { backend: 'memory' }, services, ...extra } as never,
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
