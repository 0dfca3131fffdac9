/**
 * `up` on a stack that already runs converges it, as `docker compose up` does, instead of
 * refusing. (A live foreground `stack up` holding the lock still refuses; the background
 * supervisor of `up --detach` is relieved first, leaving its services running: lock.ts.)
 *
 * The runtimes decide what changed: each `start` compares the config hash of what it is asked
 * to run with the running instance's (a Docker label; the process runtime's pid file), returns
 * the running instance when they match and replaces it when they differ. The engine only needs
 * to tell the two apart afterwards (`sameInstance`), and to deal with what the new run will not
 * start at all (`sortOut`):
 * - planned services: their running instance is the slot's `previous` instance, handed to `start`
 *   when the gates open, in the normal order;
 * - obsolete instances: the service left the profile, is disabled, runs in another runtime now,
 *   or is a replica beyond `replicas` (scaled down): stopped before anything starts, dependents
 *   first, so a port or a name they hold is free for the new run;
 * - services the profile still has but this run did not select (`up --service x`): left alone,
 *   and their state-file entries carried over, so `status` and `down` still know them.
 *
 * Dependents of a recreated service are kept unless their own hash changed (Compose's default,
 * without `--always-recreate-deps`); they are gated on it as on any dependency.
 */
import { errorText } from '../util/error-text.js';
import type { StackGraph } from '../plan/types.js';
import type { RuntimeName } from '../profile/types.js';
import type { Runtime, ServiceHandle } from '../runtime/types.js';
import type { RuntimeSet } from './runtimes.js';
import type { StackStateFile } from './state.js';
import type { ServiceStatus } from './types.js';

/** An instance of the stack that exists now, and the runtime that found it. */
export interface FoundInstance {
  handle: ServiceHandle;
  runtime: Runtime;
}

/** An instance the run will not keep, and why (shown while it is stopped). */
export interface ObsoleteInstance extends FoundInstance {
  reason: string;
}

export interface SortedInstances {
  /** The running instance of each planned service (replica 0 in its planned runtime). */
  previous: Map<string, FoundInstance>;
  /** Running replicas 1…N-1 of planned services (`replicas: N`), kept or replaced like replica 0. */
  replicas: FoundInstance[];
  /** To stop before the run starts. */
  obsolete: ObsoleteInstance[];
  /** State-file entries of unselected services that still run: kept in the new state file. */
  carried: ServiceStatus[];
  /** State-file entries of services neither planned nor carried: their registrations are stale. */
  retired: ServiceStatus[];
}

/**
 * Every instance of the stack that the runtimes find: those the run uses, and those the last
 * state file names (a service may have moved from one runtime to another). A runtime the run
 * does not need that cannot be asked (Docker away) is reported through `warn` and skipped.
 */
export async function findInstances(
  stack: string,
  runtimes: RuntimeSet,
  planned: ReadonlySet<RuntimeName>,
  state: StackStateFile | undefined,
  warn: (message: string) => void,
): Promise<FoundInstance[]> {
  const names = new Set<RuntimeName>(planned);
  for (const status of Object.values(state?.services ?? {})) if (status.handle) names.add(status.handle.runtime);
  const found: FoundInstance[] = [];
  for (const name of names) {
    try {
      const runtime = await runtimes.get(name);
      for (const handle of await runtime.discover(stack)) found.push({ handle, runtime });
    } catch (err) {
      if (planned.has(name)) throw err;
      warn(`cannot look for instances of stack '${stack}' in the ${name} runtime: ${errorText(err)}`);
    }
  }
  return found;
}

/** Split what runs into the planned services' previous instances, obsolete ones, and the rest. */
export function sortOut(
  found: readonly FoundInstance[],
  graph: StackGraph,
  planned: ReadonlySet<string>,
  state: StackStateFile | undefined,
  /** Why a service runs elsewhere now (on another host, external), if it does. */
  elsewhere: (service: string) => string | undefined = () => undefined,
): SortedInstances {
  const previous = new Map<string, FoundInstance>();
  const replicas: FoundInstance[] = [];
  const obsolete: ObsoleteInstance[] = [];
  const carried = new Map<string, ServiceStatus>();
  for (const instance of found) {
    const { service, runtime, replica } = instance.handle;
    const spec = graph.services.get(service);
    // Replicas beyond `replicas` are scaled down; the others are kept or replaced like replica 0.
    const reason = !spec
      ? 'removed from the profile'
      : !spec.enable
        ? 'disabled (enable: false)'
        : spec.runtime !== runtime
          ? `moved to the ${spec.runtime} runtime`
          : replica >= spec.replicas
            ? `replica ${replica} scaled down`
            : elsewhere(service);
    if (reason !== undefined) obsolete.push({ ...instance, reason });
    else if (planned.has(service) && replica > 0) replicas.push(instance);
    else if (planned.has(service)) previous.set(service, instance);
    else {
      const status = state?.services[service];
      if (status) carried.set(service, status);
    }
  }
  const retired = Object.values(state?.services ?? {}).filter((s) => !planned.has(s.name) && !carried.has(s.name));
  return { previous, replicas, obsolete, carried: [...carried.values()], retired };
}

/** Whether `start` returned the very instance that ran before (reused), not a new one. */
export function sameInstance(before: ServiceHandle | undefined, after: ServiceHandle): boolean {
  return before !== undefined && before.runtime === after.runtime && before.id === after.id && before.startedAt === after.startedAt;
}
