/**
 * The scheduler and the stopper without any runtime: the scheduler is pure (states in, decisions
 * out), the stopper only calls `stop` in the right order.
 */
import { describe, expect, it } from 'vitest';
import { createLocalGates, type DependencyStatus } from '../../src/engine/gates.js';
import { decide, unitsAffectedBy, unitsOf } from '../../src/engine/scheduler.js';
import { stopTargets, type StopTarget } from '../../src/engine/stopper.js';
import type { ServiceState } from '../../src/engine/types.js';
import { buildGraph } from '../../src/graph/graph.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import type { Runtime, ServiceHandle } from '../../src/runtime/types.js';

function graphOf(services: Record<string, unknown>) {
  const profile = mkDeploymentProfile({ name: 'sched', runtime: 'process', services } as never);
  return buildGraph(profile).graph;
}

const svc = (dependencies: unknown[] = [], extra: Record<string, unknown> = {}) => ({ command: ['x'], dependencies, ...extra });
const status = (state: ServiceState, extra: Partial<DependencyStatus> = {}): DependencyStatus => ({
  state,
  kind: 'service',
  started: state !== 'waiting',
  ...extra,
});

/** What the scheduler decides for every unit, given each service's state. */
function decisions(services: Record<string, unknown>, states: Record<string, DependencyStatus>) {
  const graph = graphOf(services);
  const gates = createLocalGates(graph);
  for (const [name, s] of Object.entries(states)) gates.record(name, s);
  const unitOf = unitsOf(Object.values(graph.groups), [...graph.services.keys()]);
  const pending = [...new Set(unitOf.values())].filter((u) => u.members.every((m) => !states[m]));
  return Object.fromEntries(
    decide(pending, graph, gates, (n) => graph.services.has(n)).map((d) => [
      d.unit.members.join('+'),
      d.kind === 'start' ? { start: d.warnings } : { block: d.reason },
    ]),
  );
}

describe('scheduler', () => {
  it('starts units without dependencies at once; a dependent waits for a required dependency to be healthy', () => {
    const services = { db: svc(), api: svc(['db']) };
    expect(decisions(services, {})).toEqual({ db: { start: [] } });
    expect(decisions(services, { db: status('checking') })).toEqual({});
    expect(decisions(services, { db: status('healthy') })).toEqual({ api: { start: [] } });
    expect(decisions(services, { db: status('failed', { reason: 'boom' }) })).toEqual({ api: { block: "requires 'db', which failed: boom" } });
  });

  it('optional waits until the dependency settled, and starts with a warning when it failed', () => {
    const services = { cache: svc(), api: svc([{ name: 'cache', type: 'optional' }]) };
    expect(decisions(services, { cache: status('checking') })).toEqual({});
    expect(decisions(services, { cache: status('healthy') })).toEqual({ api: { start: [] } });
    expect(decisions(services, { cache: status('failed') })).toEqual({ api: { start: ["optional dependency 'cache' failed; starting anyway"] } });
  });

  it('soft starts once the dependency started, or can never start', () => {
    const services = { log: svc(), api: svc([{ name: 'log', type: 'soft' }]) };
    expect(decisions(services, { log: status('waiting') })).toEqual({});
    expect(decisions(services, { log: status('checking') })).toEqual({ api: { start: [] } });
    expect(decisions(services, { log: status('blocked', { started: false }) })).toEqual({ api: { start: [] } });
  });

  it('a circular group is one unit; its dependents wait for every member', () => {
    const services = { a: svc([{ name: 'b', type: 'circular' }]), b: svc([{ name: 'a', type: 'circular' }]), c: svc(['a']) };
    expect(decisions(services, {})).toEqual({ 'a+b': { start: [] } });
    expect(decisions(services, { a: status('healthy'), b: status('checking') })).toEqual({});
    expect(decisions(services, { a: status('healthy'), b: status('healthy') })).toEqual({ c: { start: [] } });
    expect(decisions(services, { a: status('healthy'), b: status('failed') })).toEqual({ c: { block: "requires 'b', which failed" } });
  });

  it('a task opens its gate by completing, and breaks it by failing', () => {
    const services = { migrate: svc([], { kind: 'task' }), app: svc(['migrate']) };
    expect(decisions(services, { migrate: status('running', { kind: 'task' }) })).toEqual({});
    expect(decisions(services, { migrate: status('completed', { kind: 'task' }) })).toEqual({ app: { start: [] } });
    expect(decisions(services, { migrate: status('failed', { kind: 'task' }) })).toEqual({ app: { block: "requires 'migrate', which failed" } });
  });

  it('a change concerns the units of its dependents, and for a group member those of every member', () => {
    const graph = graphOf({ a: svc([{ name: 'b', type: 'circular' }]), b: svc([{ name: 'a', type: 'circular' }]), c: svc(['a']), d: svc(['b']), e: svc() });
    const unitOf = unitsOf(Object.values(graph.groups), [...graph.services.keys()]);
    const names = (service: string) => [...unitsAffectedBy(service, graph, unitOf)].map((u) => u.members.join('+')).sort();
    expect(names('a')).toEqual(['a+b', 'c', 'd']);
    expect(names('c')).toEqual([]);
  });
});

describe('stopper', () => {
  const handle = (service: string): ServiceHandle => ({ runtime: 'process', stack: 's', service, replica: 0, id: service, startedAt: '' });

  it('stops dependents first, branches in parallel, with the timeout overriding each grace period; deregisters first', async () => {
    const calls: string[] = [];
    const runtime = {
      stop: async (h: ServiceHandle, o: { gracePeriodMs: number }) => void calls.push(`stop ${h.service} ${o.gracePeriodMs}`),
    } as unknown as Runtime;
    const discovery = { deregister: async (service: string) => void calls.push(`deregister ${service}`) } as never;
    const target = (name: string, dependsOn: string[], running = true): StopTarget => ({
      name,
      dependsOn,
      resolve: () => ({
        instances: running ? [{ handle: handle(name), runtime }] : [],
        stopSignal: 'SIGTERM',
        gracePeriodMs: 10_000,
        registration: { service: name, id: `${name}-0` },
      }),
    });
    const errors = await stopTargets([target('db', []), target('migrate', ['db'], false), target('api', ['migrate'])], { timeoutMs: 1000, discovery });
    expect(errors).toEqual([]);
    expect(calls).toEqual(['deregister api', 'stop api 1000', 'deregister migrate', 'deregister db', 'stop db 1000']);
  });

  it('one failure does not keep the others from stopping', async () => {
    const stopped: string[] = [];
    const runtime = {
      stop: async (h: ServiceHandle) => {
        if (h.service === 'api') throw new Error('EPERM');
        stopped.push(h.service);
      },
    } as unknown as Runtime;
    const t = (name: string, dependsOn: string[]): StopTarget => ({
      name,
      dependsOn,
      resolve: () => ({ instances: [{ handle: handle(name), runtime }], stopSignal: 'SIGTERM', gracePeriodMs: 1 }),
    });
    const errors = await stopTargets([t('db', []), t('api', ['db'])]);
    expect(errors.map((e) => e.name)).toEqual(['api']);
    expect(stopped).toEqual(['db']);
  });
});
