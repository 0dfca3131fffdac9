/**
 * The engine as a library: start a plan, stop it, observe it. `upStack`, `downStack` and
 * `stackStatus` (stack.ts) are the one way in, used by the CLI and by `mkServiceCoordination`.
 *
 * `mkServiceCoordination` and `mkDependencyManagement` are the counterparts of the ATproto
 * stacks builders of the same names: the first runs a stack (up, down, status, events), the
 * second answers "may this service start yet?" for a graph, from recorded states.
 */
import { buildGraph } from '../graph/graph.js';
import { planStack, type PlanOptions } from '../plan/plan.js';
import type { Plan, StackGraph } from '../plan/types.js';
import type { Profile } from '../profile/types.js';
import type { StackController } from './engine.js';
import { createLocalGates, readinessOf, type DependencyStatus, type LocalGates, type Readiness } from './gates.js';
import type { RuntimeSet } from './runtimes.js';
import { downStack, stackStatus, upStack, type DownStackOptions, type UpStackOptions } from './stack.js';
import { stateDirOf } from './state.js';
import type { StackStatusView } from './status.js';
import type { StopReport } from './stop.js';

export {
  startStack,
  type RenderConfigs,
  type RenderContext,
  type RenderedConfigs,
  type StackController,
  type StartStackInput,
  type StartStackOptions,
} from './engine.js';
export { stopStack, type StopReport, type StopStackOptions, type StoppedService } from './stop.js';
export { readStackStatus, type ReadStatusOptions, type ServiceStatusView, type StackStatusView } from './status.js';
export {
  composeGates,
  createLocalGates,
  judge,
  readinessOf,
  type DependencyStatus,
  type GateSource,
  type GateVerdict,
  type LocalGates,
  type Readiness,
  type RemoteGateSource,
} from './gates.js';
export { createRemoteGates, type RemoteGates, type RemoteGatesOptions, type RemoteTarget } from './remote-gates.js';
export {
  upStack,
  downStack,
  downAllHosts,
  stackStatus,
  type UpStackOptions,
  type DownStackOptions,
  type DownAllHostsOptions,
  type DownAllHostsReport,
  type StackStatusOptions,
} from './stack.js';
export type { AcrossHostsView, HostInstanceView } from './status-hosts.js';
export { acquireLock, readLock, type AcquireLockOptions, type LockInfo, type StackLock } from './lock.js';
export {
  RELIEVE_SIGNAL,
  startSupervisor,
  supervisorLogPath,
  type StopRequest,
  type SupervisorInput,
  type SupervisorOptions,
  type SupervisorProcess,
} from './supervisor.js';
export { readStateFile, stateDirOf, type StackStateFile } from './state.js';
export { createRuntimeSet, fixedRuntimeSet, runtimeSetFor, type RuntimeSet } from './runtimes.js';
export { restartDecision, type RestartDecision } from './restart.js';
export { decide, unitsAffectedBy, unitsOf, type Unit, type UnitDecision } from './scheduler.js';
export { stopTargets, type StopSubject, type StopTarget, type StopperOptions } from './stopper.js';
export type * from './types.js';

export interface ServiceCoordination {
  readonly profile: Profile;
  readonly plan: Plan;
  readonly stateDir: string;
  /**
   * Start the stack exactly as `stack up` does (`upStack`): templates rendered, services
   * registered in the profile's discovery and heartbeated, the state file and the lock. Observe
   * it through `onEvent` or the controller's `subscribe`.
   */
  up(opts?: Omit<UpStackOptions, 'stateDir' | 'cwd'>): StackController;
  /** Stop the stack as `stack down` does (`downStack`), also one started by another process. */
  down(opts?: Omit<DownStackOptions, 'cwd' | 'runtimes'>): Promise<StopReport>;
  status(): Promise<StackStatusView>;
}

export function mkServiceCoordination(profile: Profile, opts: PlanOptions & { cwd?: string; runtimes?: RuntimeSet } = {}): ServiceCoordination {
  const { graph } = buildGraph(profile);
  const plan = planStack(profile, graph, opts);
  const stateDir = stateDirOf(profile, opts.cwd);
  const where = { ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.runtimes ? { runtimes: opts.runtimes } : {}) };
  return {
    profile,
    plan,
    stateDir,
    up: (upOpts = {}) => upStack({ profile, graph, plan }, { ...where, ...upOpts }),
    down: (downOpts = {}) => downStack(profile, { ...where, ...downOpts }),
    status: () => stackStatus(profile, where),
  };
}

export interface DependencyManagement {
  readonly graph: StackGraph;
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
