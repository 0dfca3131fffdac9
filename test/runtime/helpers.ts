/** Shared by the runtime tests: a complete process ServiceSpec to override, and a guard on process.kill. */
import { vi, type MockInstance } from 'vitest';
import type { ServiceSpec } from '../../src/profile/types.js';

export function processService(name: string, overrides: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name,
    enable: true,
    kind: 'service',
    runtime: 'process',
    shell: false,
    ports: [],
    address: '127.0.0.1',
    tags: [],
    meta: {},
    environment: {},
    secretEnvironment: [],
    dependencies: [],
    templates: [],
    restart: { policy: 'no', maxRetries: 0, backoffMs: 100, maxBackoffMs: 1000 },
    stopSignal: 'SIGTERM',
    stopGracePeriodMs: 2000,
    volumes: [],
    resources: {},
    security: { readOnlyRootFilesystem: false, noNewPrivileges: false, capDrop: [], capAdd: [], tmpfs: [] },
    init: false,
    pull: 'missing',
    replicas: 1,
    ...overrides,
  };
}

/**
 * Spy on process.kill that lets through only signal 0 (existence checks) and signals to the
 * given pids or groups; every other call is recorded and NOT sent. A test of "never signal pid 1"
 * must not kill the machine when the code under test is wrong.
 */
export function guardKill(allowed: () => number[]): {
  calls: [number, string | number | undefined][];
  spy: MockInstance;
  blocked: () => [number, string | number | undefined][];
} {
  const real = process.kill.bind(process);
  const calls: [number, string | number | undefined][] = [];
  const isAllowed = (pid: number, signal: string | number | undefined) => signal === 0 || allowed().includes(Math.abs(pid));
  const spy = vi.spyOn(process, 'kill').mockImplementation((pid: number, signal?: string | number) => {
    calls.push([pid, signal]);
    if (!isAllowed(pid, signal)) return true; // recorded, not sent
    return real(pid, signal);
  });
  return { calls, spy, blocked: () => calls.filter(([pid, signal]) => !isAllowed(pid, signal)) };
}
