/**
 * The second gate source (docs/architecture.md, "Gates"): dependencies this run does not start —
 * a service of the stack placed on another host, or an `external` one run by another stack — are
 * met when discovery holds a passing record of them. For a mesh's `host: all` service, a remote
 * record is one way to meet it, the local instance the other (gates.ts, `composeGates`).
 *
 * Each such service is watched (DiscoveryManager.watch: the current list, then one per change);
 * only the records that count are kept: this stack's (`meta.stack`), from the host it is placed
 * on (`meta.host`), or, for an external service, the stack named by `stack:` (any without it).
 * Lookups and watches return passing instances only (an unhealthy one is withdrawn), so a record
 * is a healthy instance.
 *
 * A task on another host is registered once it has completed there (lifecycle.ts): seen once, it
 * stays met for the rest of the run (a completed task does not un-complete when its host's
 * records expire).
 *
 * Like every wait, this one is bounded by `dependencyTimeout`: a service missing from discovery
 * for that long (from the start of the run, or since its records vanished) breaks the `healthy`
 * gates of its dependents, opens their `settled` ones with a warning, and their `started` ones.
 * After startup the run reacts to records that vanish or come back as it does to a local
 * dependency that goes down or comes back (run.ts).
 */
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import type { ServiceKind } from '../profile/types.js';
import type { Clock } from '../util/clock.js';
import { errorText } from '../util/error-text.js';
import type { GateVerdict, RemoteGateSource } from './gates.js';

/** One service met from discovery, and which of its records count. */
export interface RemoteTarget {
  service: string;
  kind: ServiceKind;
  /** `remote`: only discovery meets it; `either`: the local instance or a remote one (mesh `host: all`). */
  placement: 'remote' | 'either';
  /** For messages: `on host 'data'`, `external, of stack 'infra'`. */
  where: string;
  /** Records count only with this `meta.stack` (absent: any stack's). */
  stack?: string;
  /** Records count only with this `meta.host`. */
  host?: string;
  /** Records with this `meta.host` are the local instance's: not counted here. */
  notHost?: string;
}

export interface RemoteGatesOptions {
  targets: readonly RemoteTarget[];
  /** Absent: nothing can be found, every target is missing at once. */
  discovery?: DiscoveryManager;
  clock: Clock;
  dependencyTimeoutMs: number;
  warn(message: string, service?: string): void;
}

export interface RemoteGates extends RemoteGateSource {
  /** The records of it that count, now. */
  records(service: string): ServiceInstance[];
  /** It has at least one record that counts. */
  up(service: string): boolean;
  /** The services it answers for. */
  services(): string[];
  /** Where a service it answers for runs, for messages (`on host 'data'`). */
  where(service: string): string | undefined;
  /** Start watching (and the `dependencyTimeout` of every target). */
  start(): void;
  /** Stop every watch and timer. */
  close(): void;
}

interface TargetState {
  target: RemoteTarget;
  records: ServiceInstance[];
  /** Missing from discovery for longer than `dependencyTimeout`. */
  expired: boolean;
  /** A task whose completion was seen: met from then on. */
  completed?: boolean;
  /** Cancels the running `dependencyTimeout` wait. */
  timer?: AbortController;
}

export function createRemoteGates(opts: RemoteGatesOptions): RemoteGates {
  const states = new Map<string, TargetState>(opts.targets.map((t) => [t.service, { target: t, records: [], expired: false }]));
  const listeners = new Set<(service: string) => void>();
  const closing = new AbortController();
  const notify = (service: string) => {
    for (const l of listeners) l(service);
  };

  /** While it is missing, `dependencyTimeout` runs; once it has run out, its gates stop waiting. */
  const armTimer = (st: TargetState) => {
    if (st.timer || met(st) || closing.signal.aborted) return;
    const timer = new AbortController();
    st.timer = timer;
    opts.clock.sleep(opts.dependencyTimeoutMs, AbortSignal.any([timer.signal, closing.signal])).then(
      () => {
        delete st.timer;
        if (met(st)) return;
        st.expired = true;
        notify(st.target.service);
      },
      () => undefined,
    );
  };

  const update = (st: TargetState, list: readonly ServiceInstance[]) => {
    const records = list.filter((r) => counts(st.target, r));
    const before = st.records;
    st.records = records;
    if (records.length > 0 && st.target.kind === 'task') st.completed = true;
    if (met(st)) {
      st.timer?.abort();
      delete st.timer;
      st.expired = false;
    } else armTimer(st);
    if (fingerprint(before) !== fingerprint(records)) notify(st.target.service);
  };

  const follow = async (st: TargetState, discovery: DiscoveryManager) => {
    const { service } = st.target;
    try {
      for await (const list of discovery.watch(service, { signal: closing.signal })) update(st, list);
    } catch (err) {
      if (!closing.signal.aborted) opts.warn(`cannot watch '${service}' (${st.target.where}) in discovery: ${errorText(err)}`, service);
    }
  };

  const verdict = (st: TargetState, gate: 'healthy' | 'settled' | 'started', circular: boolean): GateVerdict => {
    // Members of a circular group start together; across hosts each starts with its host's share.
    if (met(st) || (circular && st.target.placement === 'remote')) return { kind: 'open' };
    if (!st.expired) return { kind: 'waiting' };
    const { service, where } = st.target;
    const why = opts.discovery
      ? `had no passing record in discovery for dependencyTimeout (${opts.dependencyTimeoutMs} ms)`
      : 'cannot be found: this run has no discovery';
    if (gate === 'healthy') return { kind: 'broken', reason: `requires '${service}' (${where}), which ${why}` };
    if (gate === 'settled') return { kind: 'open', warning: `optional dependency '${service}' (${where}) ${why}; starting anyway` };
    return { kind: 'open' };
  };

  return {
    placement: (service) => states.get(service)?.target.placement,
    verdict(edge) {
      const st = states.get(edge.to);
      return st ? verdict(st, edge.gate, edge.type === 'circular') : { kind: 'waiting' };
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    records: (service) => states.get(service)?.records ?? [],
    up: (service) => {
      const st = states.get(service);
      return st !== undefined && met(st);
    },
    services: () => [...states.keys()],
    where: (service) => states.get(service)?.target.where,
    start() {
      for (const st of states.values()) {
        if (!opts.discovery) {
          st.expired = true;
          notify(st.target.service);
          continue;
        }
        armTimer(st);
        void follow(st, opts.discovery);
      }
    },
    close() {
      closing.abort();
      listeners.clear();
    },
  };
}

/** It has a record that counts now, or (a task) had one. */
function met(st: TargetState): boolean {
  return st.records.length > 0 || st.completed === true;
}

/** Whether a record is one of the target's (its stack, its host, not the local instance). */
function counts(t: RemoteTarget, r: ServiceInstance): boolean {
  if (t.stack !== undefined && r.meta.stack !== t.stack) return false;
  if (t.host !== undefined && r.meta.host !== t.host) return false;
  return t.notHost === undefined || r.meta.host !== t.notHost;
}

function fingerprint(records: readonly ServiceInstance[]): string {
  return records
    .map((r) => `${r.id}@${r.address}:${r.port ?? ''}`)
    .sort()
    .join(',');
}
