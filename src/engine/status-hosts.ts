/**
 * `stack status` of a stack across hosts: every service on every host, from any host. This
 * machine's share comes from its state file and runtimes (status.ts); every other instance from
 * discovery, where each `stack up` registers what it runs (meta `stack` and `host`) and renews it
 * every heartbeat. A service placed on a host where nothing of it is registered shows as such.
 *
 * The age of an instance's last heartbeat is derived from its record: a backend that renews a
 * registration moves its expiry one TTL ahead, so `TTL - (expiresAt - now)` is the time since the
 * last renewal (etcd reports its lease's remaining time in `list()`; a backend that gives no
 * expiry has no age to show).
 */
import { isExpired } from '../discovery/record.js';
import type { ServiceInstance } from '../discovery/types.js';
import { ALL_HOSTS, type CoordinationStrategy, type Profile } from '../profile/types.js';
import type { ServiceStatusView, StackStatusView } from './status.js';
import { CONTROL_SERVICE, downRequestId } from './supervisor.js';
import type { ServiceStatus } from './types.js';

/** One instance of a service on one host. */
export interface HostInstanceView {
  service: string;
  /** The declared host it runs on; `?` when its registration does not say. */
  host: string;
  /** Where the row comes from: this machine's state and runtimes, discovery, or neither (placed there, nothing registered). */
  source: 'local' | 'discovery' | 'missing';
  /** Local: the engine's state (healthy, failed, …); discovery: `registered`; missing: `not registered`. */
  state: string;
  /** Local: the last health result; discovery: `passing` (only instances passing their checks stay registered); missing: `unknown`. */
  health: string;
  /** Where it is reached: its registration's address and port, else the profile's. */
  address?: string;
  port?: number;
  /** Its registration's id. */
  id?: string;
  /** Milliseconds since its registration was last renewed; absent when the backend gives no expiry. */
  heartbeatAgeMs?: number;
  /** This machine runs it: its pid or container, uptime and restarts. */
  local?: { pid?: number; container?: string; uptimeMs?: number; restarts: number };
}

export interface AcrossHostsView {
  strategy: CoordinationStrategy;
  /** The declared host this machine is (`--host`, `STACK_HOST`), when known. */
  host?: string;
  instances: HostInstanceView[];
  /** Discovery could not be read: only this machine's share is shown. */
  discoveryError?: string;
}

export interface AcrossHostsInput {
  profile: Profile;
  local: StackStatusView;
  /** Everything discovery lists (undefined: it could not be read, `discoveryError` says why). */
  records: readonly ServiceInstance[] | undefined;
  discoveryError?: string;
  host?: string;
  now: number;
}

/** The registrations a stack's `stack up`s made (not its control records), live now. */
export function stackRegistrations(records: readonly ServiceInstance[], stack: string, now: number): ServiceInstance[] {
  return records.filter((r) => r.meta.stack === stack && !(r.service === CONTROL_SERVICE && r.id === downRequestId(stack)) && !isExpired(r, now));
}

export function acrossHosts(input: AcrossHostsInput): AcrossHostsView {
  const { profile, now } = input;
  const records = stackRegistrations(input.records ?? [], profile.name, now);
  const byId = new Map(records.map((r) => [r.id, r]));
  const ageOf = (r: ServiceInstance | undefined) =>
    r?.expiresAt === undefined ? undefined : Math.max(0, profile.discovery.ttlMs - Math.max(0, Date.parse(r.expiresAt) - now));
  const endpoint = (r: ServiceInstance | undefined, service: string) => {
    const spec = profile.services[service];
    const address = r?.address ?? spec?.address;
    const port = r ? r.port : spec?.port;
    return { ...(address !== undefined ? { address } : {}), ...(port !== undefined ? { port } : {}) };
  };
  const instances: HostInstanceView[] = [];
  const used = new Set<string>();
  for (const view of input.local.services) {
    for (const status of [view as ServiceStatus, ...(view.replicas ?? [])]) {
      const spec = profile.services[view.name];
      const placed = spec?.host === ALL_HOSTS ? input.host : spec?.host;
      // Its own registration; for an instance the runtimes found that the state file does not
      // know (another process started it), the record of that service on that host.
      const record = status.registration
        ? byId.get(status.registration.id)
        : records.find((r) => !used.has(r.id) && r.service === view.name && placed !== undefined && hostOfRecord(profile, r) === placed);
      if (record) used.add(record.id);
      const age = ageOf(record);
      instances.push({
        service: view.name,
        host: (record ? hostOfRecord(profile, record) : undefined) ?? placed ?? '?',
        source: 'local',
        state: status.state,
        health: status.health,
        ...endpoint(record, view.name),
        ...(record ? { id: record.id } : {}),
        ...(age !== undefined ? { heartbeatAgeMs: age } : {}),
        local: localFacts(view, status),
      });
    }
  }
  for (const record of records) {
    if (used.has(record.id)) continue;
    const age = ageOf(record);
    instances.push({
      service: record.service,
      host: hostOfRecord(profile, record),
      source: 'discovery',
      state: 'registered',
      health: 'passing',
      ...endpoint(record, record.service),
      id: record.id,
      ...(age !== undefined ? { heartbeatAgeMs: age } : {}),
    });
  }
  if (input.records) instances.push(...missing(profile, instances));
  instances.sort((a, b) => a.service.localeCompare(b.service) || a.host.localeCompare(b.host) || (a.id ?? '').localeCompare(b.id ?? ''));
  return {
    strategy: profile.coordination.strategy,
    ...(input.host !== undefined ? { host: input.host } : {}),
    instances,
    ...(input.discoveryError !== undefined ? { discoveryError: input.discoveryError } : {}),
  };
}

/** The host a registration says it runs on (meta `host`), else the one host its service is placed on; `?` when neither says. */
export function hostOfRecord(profile: Profile, record: ServiceInstance): string {
  const placed = profile.services[record.service]?.host;
  return record.meta.host ?? (placed !== undefined && placed !== ALL_HOSTS ? placed : '?');
}

function localFacts(view: ServiceStatusView, status: ServiceStatus): NonNullable<HostInstanceView['local']> {
  const handle = status.handle;
  const main = status === view;
  return {
    ...(handle?.pid !== undefined ? { pid: handle.pid } : {}),
    ...(handle && handle.pid === undefined ? { container: handle.containerName ?? handle.id.slice(0, 12) } : {}),
    ...(main && view.running && view.uptimeMs !== undefined ? { uptimeMs: view.uptimeMs } : {}),
    restarts: status.restarts,
  };
}

/** A service placed on a host (or on every host) with no instance there that anyone knows of. */
function missing(profile: Profile, seen: readonly HostInstanceView[]): HostInstanceView[] {
  const out: HostInstanceView[] = [];
  for (const spec of Object.values(profile.services)) {
    if (!spec.enable || spec.external || spec.host === undefined) continue;
    const placements = spec.host === ALL_HOSTS ? Object.keys(profile.hosts) : [spec.host];
    for (const host of placements) {
      if (seen.some((i) => i.service === spec.name && i.host === host)) continue;
      const address = spec.host === ALL_HOSTS ? profile.hosts[host]?.address : spec.address;
      out.push({
        service: spec.name,
        host,
        source: 'missing',
        state: 'not registered',
        health: 'unknown',
        ...(address !== undefined ? { address } : {}),
        ...(spec.port !== undefined ? { port: spec.port } : {}),
      });
    }
  }
  return out;
}
