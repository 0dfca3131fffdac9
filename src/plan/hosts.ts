/**
 * Which host a run is, and where each service runs from its point of view (docs/architecture.md,
 * "Across hosts"). Pure functions of the profile: `stack plan --host`, `stack up --host` and the
 * engine all ask here.
 *
 * - peer-to-peer and mesh: every host runs its own `stack up --host NAME`, which starts only the
 *   services placed on it (and, mesh, those on `host: all`); the others are met from discovery.
 * - hub-spoke: one `stack up` starts everything; `--host` only says where the hub itself runs.
 * - an `external: true` service is run by someone else (another stack): never started here.
 */
import { UsageError } from '../errors.js';
import { ALL_HOSTS, type Profile, type ServiceSpec } from '../profile/types.js';
import { didYouMean } from '../util/suggest.js';

/**
 * Where a service runs, seen from one run: here, on another host, on the leader's host (a
 * singleton, seen from a host's share), or outside the stack.
 */
export type Placement = { kind: 'here' } | { kind: 'host'; host: string } | { kind: 'leader' } | { kind: 'external'; stack?: string };

/**
 * Which part of a host's work a run is, in a leader-follower stack: the services placed on the host
 * (`host`, every host runs one), or the singletons its supervisor runs while it leads (`leader`).
 */
export type Share = 'host' | 'leader';

/** Strategies whose hosts each run their own share (the others, hub-spoke, run everything from one place). */
const SHARED_OUT: ReadonlySet<string> = new Set(['peer-to-peer', 'mesh', 'leader-follower']);

/** The profile spans hosts, each running its own `stack up --host` (peer-to-peer, mesh). */
export function runsPerHost(profile: Pick<Profile, 'hosts' | 'coordination'>): boolean {
  return Object.keys(profile.hosts).length > 0 && SHARED_OUT.has(profile.coordination.strategy);
}

/**
 * The host a run is, checked: a declared host's name, or undefined for a profile without hosts (and
 * for a hub-spoke run that does not say where the hub is). `required`: a profile whose hosts each
 * run their own share must be told which one this is (`stack up`; `stack plan` may show them all).
 */
export function resolveHost(
  profile: Pick<Profile, 'hosts' | 'coordination' | 'name'>,
  given: string | undefined,
  opts: { required?: boolean } = {},
): string | undefined {
  const names = Object.keys(profile.hosts);
  if (given === undefined) {
    if (opts.required && runsPerHost(profile))
      throw new UsageError(`this profile spans hosts ${names.join(', ')}: say which one this is with --host NAME or STACK_HOST`, { path: '--host' });
    return undefined;
  }
  if (names.length === 0) throw new UsageError(`profile '${profile.name}' declares no hosts: --host names one of a profile's hosts:`, { path: '--host' });
  if (!profile.hosts[given] || given === ALL_HOSTS)
    throw new UsageError(`unknown host '${given}': this profile's hosts are ${names.join(', ')}${didYouMean(given, names)}`, { path: '--host' });
  return given;
}

/**
 * Where `svc` runs, seen from a run on `host` (undefined: the run starts every service of the
 * stack). Leader-follower: a host's share sees a singleton on the leader's host; the leader's
 * share runs the singletons and sees every other service on its host, this one included.
 */
export function placementOf(
  svc: Pick<ServiceSpec, 'host' | 'external' | 'singleton'>,
  host: string | undefined,
  perHost: boolean,
  share: Share = 'host',
): Placement {
  if (svc.external) return { kind: 'external', ...(svc.external.stack !== undefined ? { stack: svc.external.stack } : {}) };
  if (host !== undefined && perHost && svc.singleton) return share === 'leader' ? { kind: 'here' } : { kind: 'leader' };
  if (host !== undefined && perHost && share === 'leader' && svc.host !== undefined && svc.host !== ALL_HOSTS) return { kind: 'host', host: svc.host };
  if (host === undefined || !perHost || svc.host === undefined || svc.host === ALL_HOSTS || svc.host === host) return { kind: 'here' };
  return { kind: 'host', host: svc.host };
}

/** The profile is leader-follower across hosts: its supervisors elect one that runs the singletons. */
export function electsLeader(profile: Pick<Profile, 'hosts' | 'coordination'>): boolean {
  return profile.coordination.strategy === 'leader-follower' && runsPerHost(profile);
}

/**
 * The profile as one host runs it: a `host: all` service (or a singleton) whose address was not
 * written is reachable at this host's address (registered there, and what templates of this host see).
 * The same profile (not a copy) when nothing changes.
 */
export function profileOnHost<P extends Pick<Profile, 'hosts' | 'services'>>(profile: P, host: string | undefined): P {
  const address = host === undefined ? undefined : profile.hosts[host]?.address;
  if (address === undefined) return profile;
  const anywhere = (s: ServiceSpec) => s.host === ALL_HOSTS || (s.singleton === true && s.host === undefined);
  const moved = Object.values(profile.services).filter((s) => anywhere(s) && s.addressFromHost && s.address !== address);
  if (moved.length === 0) return profile;
  const services = { ...profile.services };
  for (const s of moved) services[s.name] = { ...s, address };
  return { ...profile, services };
}
