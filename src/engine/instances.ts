/**
 * Registrations that follow a runtime's own placement (`Runtime.placements`: Swarm's tasks on their
 * nodes). Such a service is registered once per instance, id `<stack>-<service>-<key>` (Swarm: the
 * task's slot, so a rescheduled task keeps its id), at the instance's address and port, and
 * followed: every heartbeat interval its instances are listed again; new or moved ones are
 * registered, gone ones deregistered, the others heartbeated. A listing that fails leaves the
 * records as they are and heartbeats them (a manager out of reach does not empty discovery).
 *
 * At a stop, `deregisterInstances` removes the records of such a service before its instances are
 * stopped (the stopper calls it: `down` from any machine, a rollback, an interruption): those of
 * what runs now, and any other record of the service this stack registered per instance.
 */
import type { DiscoveryManager } from '../discovery/manager.js';
import type { InstanceInput, ServiceInstance } from '../discovery/types.js';
import type { ServiceSpec } from '../profile/types.js';
import type { Runtime, Placement, ServiceHandle } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';
import { errorText } from '../util/error-text.js';
import type { FoundInstance } from './converge.js';
import type { EngineEvent } from './types.js';

/** Marks a record as one of a service's per-instance registrations (`meta.instanceKey`). */
const KEY_META = 'instanceKey';

export function instanceId(stack: string, service: string, key: string): string {
  return `${stack}-${service}-${key}`;
}

export interface FollowOptions {
  stack: string;
  spec: ServiceSpec;
  runtime: Runtime;
  handle: ServiceHandle;
  discovery?: DiscoveryManager | undefined;
  clock: Clock;
  ttlMs: number;
  intervalMs: number;
  emit(event: EngineEvent): void;
  warn(message: string): void;
  /** The records changed (an instance came, moved or went): the list now. */
  onChange?(records: ServiceInstance[]): void;
}

export interface InstanceFollower {
  /** The service's records now, in key order (templates of dependents render against them). */
  records(): ServiceInstance[];
  /** Stop following; the records stay until a stop deregisters them or they expire (a detach). */
  stop(): Promise<void>;
}

/** Register the service's instances now, then follow them every `intervalMs` until `stop`. */
export async function followInstances(opts: FollowOptions): Promise<InstanceFollower> {
  const { stack, spec, discovery, clock } = opts;
  let records = new Map<string, ServiceInstance>();
  const registered = new Set<string>();
  let failing = false;
  const report = (ok: boolean, what: string) => {
    if (!ok && !failing) opts.warn(what);
    failing = !ok;
  };

  const recordOf = (i: Placement): ServiceInstance => ({
    id: instanceId(stack, spec.name, i.key),
    service: spec.name,
    address: i.address,
    ...(i.port !== undefined ? { port: i.port } : {}),
    ...(i.url !== undefined ? { url: i.url } : {}),
    tags: [...spec.tags],
    meta: { ...spec.meta, stack, ...i.meta, [KEY_META]: i.key },
    registeredAt: new Date().toISOString(),
  });

  const register = async (r: ServiceInstance): Promise<void> => {
    const { registeredAt: _r, expiresAt: _e, ...input } = r;
    await discovery!.register(input satisfies InstanceInput, { ttlMs: opts.ttlMs });
    registered.add(r.id);
    opts.emit({ type: 'registered', service: spec.name, id: r.id });
  };

  const deregister = async (id: string): Promise<void> => {
    registered.delete(id);
    await discovery!.deregister(spec.name, id);
    opts.emit({ type: 'deregistered', service: spec.name, id, reason: 'its task is gone or moved' });
  };

  async function sync(): Promise<void> {
    let listed: Placement[];
    try {
      listed = await opts.runtime.placements!(opts.handle, spec);
    } catch (err) {
      report(false, `could not list the instances of '${spec.name}' (registrations kept): ${errorText(err)}`);
      if (discovery?.canRegister) await Promise.allSettled([...registered].map((id) => discovery.heartbeat(spec.name, id)));
      return;
    }
    const next = new Map(listed.map((i) => [instanceId(stack, spec.name, i.key), recordOf(i)]));
    const changed = next.size !== records.size || [...next].some(([id, r]) => !sameRecord(records.get(id), r));
    const previous = records;
    records = new Map([...next].map(([id, r]) => [id, sameRecord(previous.get(id), r) ? previous.get(id)! : r]));
    if (changed) opts.onChange?.([...records.values()]);
    if (!discovery?.canRegister) return;
    const results = await Promise.allSettled([
      ...[...registered].filter((id) => !next.has(id)).map((id) => deregister(id)),
      ...[...next.values()].map((r) => (registered.has(r.id) && sameRecord(previous.get(r.id), r) ? discovery.heartbeat(spec.name, r.id) : register(r))),
    ]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    report(!failed, `could not register the instances of '${spec.name}' in discovery: ${failed ? errorText(failed.reason) : ''}`);
  }

  await sync();
  const stopping = new AbortController();
  const loop = (async () => {
    for (;;) {
      try {
        await clock.sleep(opts.intervalMs, stopping.signal);
      } catch {
        return;
      }
      await sync().catch((err: unknown) => opts.warn(`following the instances of '${spec.name}': ${errorText(err)}`));
    }
  })();
  return {
    records: () => [...records.values()],
    stop: async () => {
      stopping.abort();
      await loop;
    },
  };
}

/**
 * Before instances of a runtime that places them are stopped: remove the service's per-instance
 * records, those of the instances listed now and any other this stack registered for the service
 * (a slot whose task was between nodes). Other runtimes' instances are left to the caller.
 */
export async function deregisterInstances(discovery: DiscoveryManager, found: readonly FoundInstance[], onError: (err: unknown) => void): Promise<void> {
  if (!discovery.canRegister) return;
  await Promise.all(
    found.map(async ({ handle, runtime }) => {
      if (!runtime.placements) return;
      const { stack, service } = handle;
      discovery.invalidate(service);
      const [listed, known] = await Promise.all([
        runtime.placements(handle).catch(() => [] as Placement[]),
        discovery.lookup(service).catch(() => [] as ServiceInstance[]),
      ]);
      const ids = new Set(listed.map((i) => instanceId(stack, service, i.key)));
      for (const r of known)
        if (r.meta.stack === stack && r.meta[KEY_META] !== undefined && r.id === instanceId(stack, service, r.meta[KEY_META])) ids.add(r.id);
      await Promise.all([...ids].map((id) => discovery.deregister(service, id).catch(onError)));
    }),
  );
}

function sameRecord(a: ServiceInstance | undefined, b: ServiceInstance): boolean {
  return (
    a !== undefined &&
    a.address === b.address &&
    a.port === b.port &&
    a.url === b.url &&
    JSON.stringify(a.meta) === JSON.stringify(b.meta) &&
    a.tags.join() === b.tags.join()
  );
}
