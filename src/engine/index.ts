/**
 * The engine as a library: start a plan, stop it, observe it.
 *
 * `mkServiceCoordination` and `mkDependencyManagement` are the counterparts of the ATproto
 * stacks builders of the same names: the first runs a stack (up, down, status, events), the
 * second answers "may this service start yet?" for a graph, from recorded states.
 */
import type { DiscoveryManager } from '../discovery/manager.js';
import { buildGraph } from '../graph/graph.js';
import { planStack, type PlanOptions } from '../graph/plan.js';
import type { DependencyGraph, Plan } from '../graph/types.js';
import type { Profile } from '../profile/types.js';
import { startStack, type StackController, type StartStackOptions } from './engine.js';
import { createLocalGates, readinessOf, type DependencyStatus, type LocalGates, type Readiness } from './gates.js';
import { createRuntimeSet, type RuntimeSet } from './runtimes.js';
import { stateDirOf } from './state.js';
import { readStackStatus, type StackStatusView } from './status.js';
import { stopStack, type StopReport } from './stop.js';

export { startStack, type RenderConfigs, type RenderContext, type RenderedConfigs, type StackController, type StartStackInput, type StartStackOptions } from './engine.js';
export { stopStack, type StopReport, type StopStackOptions, type StoppedService } from './stop.js';
export { readStackStatus, type ReadStatusOptions, type ServiceStatusView, type StackStatusView } from './status.js';
export { createLocalGates, judge, readinessOf, type DependencyStatus, type GateSource, type GateVerdict, type LocalGates, type Readiness } from './gates.js';
export { acquireLock, readLock, RELIEVE_SIGNAL, type AcquireLockOptions, type LockInfo, type StackLock } from './lock.js';
export { startSupervisor, supervisorLogPath, type SupervisorOptions, type SupervisorProcess } from './supervisor.js';
export { readStateFile, stateDirOf, type StackStateFile } from './state.js';
export { createRuntimeSet, fixedRuntimeSet, type RuntimeSet } from './runtimes.js';
export { restartDecision, type RestartDecision } from './restart.js';
export type * from './types.js';

export interface ServiceCoordination {
  readonly profile: Profile;
  readonly plan: Plan;
  readonly stateDir: string;
  /** Start the stack; observe it through `onEvent` or the controller's `subscribe`. */
  up(opts?: Omit<StartStackOptions, 'stateDir'>): StackController;
  /** Stop the stack, also one started by another process. */
  down(opts?: { timeoutMs?: number; dryRun?: boolean; discovery?: DiscoveryManager }): Promise<StopReport>;
  status(): Promise<StackStatusView>;
}

export function mkServiceCoordination(profile: Profile, opts: PlanOptions & { cwd?: string; runtimes?: RuntimeSet } = {}): ServiceCoordination {
  const { graph } = buildGraph(profile);
  const plan = planStack(profile, graph, opts);
  const stateDir = stateDirOf(profile, opts.cwd);
  const runtimes = () => opts.runtimes ?? createRuntimeSet({ stateDir, docker: profile.docker, swarm: profile.swarm });
  const runtimeNames = [...new Set(Object.values(profile.services).map((s) => s.runtime))];
  return {
    profile,
    plan,
    stateDir,
    up: (upOpts = {}) => startStack({ profile, graph, plan }, { ...(opts.runtimes ? { runtimes: opts.runtimes } : {}), ...upOpts, stateDir }),
    async down(downOpts = {}) {
      const set = runtimes();
      try {
        return await stopStack({ stack: profile.name, stateDir, runtimes: set, runtimeNames, graph, ...downOpts });
      } finally {
        if (!opts.runtimes) await set.close();
      }
    },
    async status() {
      const set = runtimes();
      try {
        return await readStackStatus({ stack: profile.name, stateDir, runtimes: set, runtimeNames });
      } finally {
        if (!opts.runtimes) await set.close();
      }
    },
  };
}

export interface DependencyManagement {
  readonly graph: DependencyGraph;
  readonly gates: LocalGates;
  /** Record a service's state (from local events, or from discovery records elsewhere). */
  record(service: string, status: DependencyStatus): void;
  /** May this service start now? (Its circular group, if any, starts with it.) */
  readiness(service: string): Readiness;
}

export function mkDependencyManagement(profile: Pick<Profile, 'services'>): DependencyManagement {
  const { graph } = buildGraph(profile);
  const gates = createLocalGates(graph);
  const enabled = (name: string) => graph.services.get(name)?.enable ?? false;
  return {
    graph,
    gates,
    record: (service, status) => gates.record(service, status),
    readiness(service) {
      const group = graph.groupOf(service);
      const members = group === undefined ? [service] : (graph.groups[group] ?? [service]);
      return readinessOf(members, graph, gates, enabled);
    },
  };
}
