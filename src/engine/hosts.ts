/**
 * The engine's side of a stack across hosts (docs/architecture.md, "Across hosts"):
 *
 * - which host a run is, and the input as that host runs it (`onHost`): only its share of the
 *   services (peer-to-peer, mesh), `host: all` services at its own address;
 * - what it waits for elsewhere (`remoteTargets`), answered from discovery (remote-gates.ts);
 * - how its services are registered so that hosts never collide: `<stack>-<service>-<host>-<replica>`,
 *   `meta.stack` and `meta.host` (the host's name), claimed `exclusive` (`claim`).
 *
 * A profile without hosts is untouched: the same input, today's ids, no extra meta.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CollisionError } from '../discovery/errors.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { InstanceInput, RegisterOptions, ServiceInstance } from '../discovery/types.js';
import { UsageError } from '../errors.js';
import { buildGraph } from '../graph/graph.js';
import { profileOnHost, resolveHost } from '../plan/hosts.js';
import { planStack } from '../plan/plan.js';
import type { Plan, StackGraph } from '../plan/types.js';
import { ALL_HOSTS, type Profile, type ServiceSpec } from '../profile/types.js';
import { atomicWrite } from '../util/fs.js';
import type { StartStackInput } from './engine.js';
import type { RemoteTarget } from './remote-gates.js';

/**
 * The input as host `given` runs it (default: the host the plan was made for). A profile whose
 * hosts each run their own share must name one (UsageError otherwise, as for an unknown name); a
 * plan made for the whole stack is made again for the host, with the same selection.
 */
export function onHost(input: StartStackInput, given: string | undefined): StartStackInput {
  const { profile, plan } = input;
  if (given !== undefined && plan.host !== undefined && given !== plan.host)
    throw new UsageError(`the plan was made for host '${plan.host}', and this run is host '${given}'`, { path: '--host' });
  const host = resolveHost(profile, given ?? plan.host, { required: true });
  if (host === undefined) return input;
  const local = profileOnHost(profile, host);
  const graph = local === profile ? input.graph : buildGraph(local).graph;
  return { profile: local, graph, plan: plan.host === host ? plan : replan(local, graph, plan, host) };
}

/** The same plan for one host: the services it selected (all, or the named ones and what they need). */
function replan(profile: Profile, graph: StackGraph, plan: Plan, host: string): Plan {
  const chose = plan.skipped.some((s) => s.reason === 'not selected');
  const services = [...plan.services.map((s) => s.name), ...plan.blocked.map((b) => b.service)];
  return planStack(profile, graph, { host, ...(chose && services.length > 0 ? { services } : {}) });
}

/**
 * What a run waits for in discovery: the plan's remote dependencies (another host's, external),
 * and, in a mesh, the `host: all` services its own services depend on (met by the local instance
 * or a remote one; a `host: all` task only by the local one).
 */
export function remoteTargets(profile: Profile, graph: StackGraph, plan: Plan): RemoteTarget[] {
  const targets: RemoteTarget[] = (plan.remote ?? []).map((r) => {
    const kind = graph.services.get(r.service)?.kind ?? 'service';
    if (r.external)
      return {
        service: r.service,
        kind,
        placement: 'remote',
        where: r.stack ? `external, of stack '${r.stack}'` : 'external',
        ...(r.stack ? { stack: r.stack } : {}),
      };
    // A singleton: this stack's record from whichever host leads (it moves with the leader).
    if (r.leader) return { service: r.service, kind, placement: 'remote', where: "a singleton, on the leader's host", stack: profile.name };
    return { service: r.service, kind, placement: 'remote', where: `on host '${r.host}'`, stack: profile.name, ...(r.host ? { host: r.host } : {}) };
  });
  if (plan.host === undefined) return targets;
  const run = new Set(plan.services.map((s) => s.name));
  const meshed = new Set<string>();
  // A `host: all` task prepares the host it runs on: only this host's own run of it counts.
  for (const e of plan.edges) {
    const to = graph.services.get(e.to);
    if (run.has(e.to) && to?.host === ALL_HOSTS && to.kind !== 'task') meshed.add(e.to);
  }
  for (const service of [...meshed].sort()) {
    const kind = graph.services.get(service)!.kind;
    targets.push({ service, kind, placement: 'either', where: 'on every host', stack: profile.name, notHost: plan.host });
  }
  return targets;
}

/** The host a service's registration names: its own, or (`host: all`, a singleton) the run's; undefined without hosts. */
export function registeredHost(spec: Pick<ServiceSpec, 'host' | 'singleton'>, runHost: string | undefined): string | undefined {
  if (spec.singleton && spec.host === undefined) return runHost;
  if (spec.host === undefined) return undefined;
  return spec.host === ALL_HOSTS ? runHost : spec.host;
}

/** `<stack>-<service>-<replica>`; with hosts `<stack>-<service>-<host>-<replica>`, so two hosts never share one. */
export function registrationId(stack: string, service: string, replica: number, host?: string): string {
  return host === undefined ? `${stack}-${service}-${replica}` : `${stack}-${service}-${host}-${replica}`;
}

/**
 * Register `input` exclusively: an id another host (another state folder) holds fails loudly
 * (CollisionError). A record this state folder left (`meta.claim` is ours: an earlier `up` of this
 * host that was killed, or a supervisor relieved by this one) is taken over.
 */
export async function claim(discovery: DiscoveryManager, input: InstanceInput, opts: RegisterOptions): Promise<void> {
  try {
    await discovery.register(input, { ...opts, exclusive: true });
  } catch (err) {
    if (!(err instanceof CollisionError)) throw err;
    discovery.invalidate(input.service);
    const held = (await discovery.lookup(input.service).catch(() => [])).find((r) => r.id === input.id);
    if (!held || held.meta.claim === undefined || held.meta.claim !== input.meta?.claim) throw err;
    await discovery.register(input, { ...opts, exclusive: false });
  }
}

/** What this state folder's registrations carry as `meta.claim`: made once, kept in `<stateDir>/host-claim`. */
export async function claimToken(stateDir: string): Promise<string> {
  const file = path.join(stateDir, 'host-claim');
  const known = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (/^[0-9a-f]{32}$/.test(known)) return known;
  const made = randomBytes(16).toString('hex');
  await atomicWrite(file, `${made}\n`);
  return made;
}

/**
 * Which discovery records a profile's templates see, when discovery is shared by stacks (a
 * profile with hosts, or with external services): for a service of the stack, this stack's
 * records (`meta.stack`); for an external one, its stack's (any without `stack:`). Records that
 * carry no stack (registered by a service itself) always count. Undefined: every record counts.
 */
export function recordFilter(profile: Pick<Profile, 'name' | 'hosts' | 'services'>): ((r: ServiceInstance) => boolean) | undefined {
  const services = Object.values(profile.services);
  if (Object.keys(profile.hosts).length === 0 && !services.some((s) => s.external)) return undefined;
  return (r) => {
    const stack = r.meta.stack;
    const spec = profile.services[r.service];
    if (stack === undefined || !spec) return true;
    if (spec.external) return spec.external.stack === undefined || stack === spec.external.stack;
    return stack === profile.name;
  };
}
