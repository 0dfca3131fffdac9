/**
 * The plan: a pure function of the graph. Start waves (longest-path layering over the graph
 * condensed by circular groups), blocked and skipped services, and the critical chain.
 * The engine does not run waves — it starts each service the moment its gates open — but the
 * waves say what can run in parallel, and the critical chain bounds how fast `up` can be.
 */
import { describeHealthCheck } from '../health/registry.js';
import { isLoopbackHost } from '../health/loopback.js';
import { ALL_HOSTS, type Profile, type ServiceSpec } from '../profile/types.js';
import { runtimeDefinition } from '../drivers/runtime/registry.js';
import { placementOf, resolveHost, runsPerHost, type Placement, type Share } from './hosts.js';
import type { Plan, PlannedService, RemoteDependency, StackGraph } from './types.js';

export interface PlanOptions {
  /** Limit the run to these services and what they depend on. */
  services?: string[];
  /**
   * The host this run is (a profile with `hosts:`): peer-to-peer and mesh start only the services
   * placed on it (and `host: all` ones); the others are waited for in discovery (`plan.remote`).
   */
  host?: string;
  /**
   * Leader-follower: which share of the host this run is (plan/hosts.ts, `Share`). Default `host`:
   * the services placed on it, singletons waited for on the leader's host; `leader`: the singletons.
   */
  share?: Share;
}

type PlanProfile = Pick<Profile, 'name'> & Partial<Pick<Profile, 'hosts' | 'coordination'>>;

/** Where its check probes: a service placed on a host is probed at its address there (runtime/target.ts). */
function probedAt(svc: ServiceSpec, hc: NonNullable<ServiceSpec['healthCheck']>): NonNullable<ServiceSpec['healthCheck']> {
  if (svc.host === undefined || hc.host !== undefined) return hc;
  if (svc.host === ALL_HOSTS && svc.addressFromHost && isLoopbackHost(svc.address)) return { ...hc, host: "each host's address" }; // not filled in yet
  return isLoopbackHost(svc.address) ? hc : { ...hc, host: svc.address };
}

export function planStack(profile: PlanProfile, graph: StackGraph, opts: PlanOptions = {}): Plan {
  const skipped: Plan['skipped'] = [];
  const blocked: Plan['blocked'] = [];
  const selected = selection(graph, opts.services);
  const where = placements(profile, graph, opts.host, opts.share);
  for (const svc of graph.services.values()) {
    const at = where.get(svc.name)!;
    if (!svc.enable) skipped.push({ service: svc.name, reason: 'disabled (enable: false)' });
    else if (!selected.has(svc.name)) skipped.push({ service: svc.name, reason: 'not selected' });
    else if (at.kind === 'external') skipped.push({ service: svc.name, reason: `external: run by ${at.stack ? `stack '${at.stack}'` : 'another stack'}` });
    else if (at.kind === 'host') skipped.push({ service: svc.name, reason: `runs on host '${at.host}'` });
    else if (at.kind === 'leader') skipped.push({ service: svc.name, reason: "a singleton: runs on the leader's host" });
  }
  // Services of the stack on every host: a blocked one blocks its dependents on any host.
  const active = new Set([...graph.services.values()].filter((s) => s.enable && selected.has(s.name) && !s.external).map((s) => s.name));

  // Blocked: a required or circular dependency is disabled, or blocked itself (to a fixed point,
  // walking dependents breadth-first so deep chains stay iterative).
  const blockedSet = new Map<string, string>();
  const queue: string[] = [];
  for (const name of active) {
    for (const e of graph.dependenciesOf(name)) {
      const dep = graph.services.get(e.to);
      if ((e.type === 'required' || e.type === 'circular') && dep && !dep.enable && !blockedSet.has(name)) {
        blockedSet.set(name, `requires '${e.to}', which is disabled`);
        queue.push(name);
      }
    }
  }
  while (queue.length > 0) {
    const name = queue.shift()!;
    const spreads = [...graph.dependentsOf(name)];
    const group = graph.groupOf(name);
    if (group !== undefined) for (const m of graph.groups[group] ?? []) spreads.push({ from: m, to: name, type: 'circular', gate: 'healthy', index: -1 });
    for (const e of spreads) {
      if (!active.has(e.from) || blockedSet.has(e.from)) continue;
      if (e.type !== 'required' && e.type !== 'circular') continue;
      blockedSet.set(e.from, `requires '${name}', which is blocked`);
      queue.push(e.from);
    }
  }
  const here = (n: string) => where.get(n)?.kind === 'here';
  for (const [service, reason] of blockedSet) if (here(service)) blocked.push({ service, reason });
  const runnable = [...active].filter((n) => !blockedSet.has(n) && here(n));
  const runnableSet = new Set(runnable);

  // Condense circular groups into one unit, then layer by longest path (Kahn's algorithm).
  const unitOf = (n: string) => {
    const g = graph.groupOf(n);
    return g === undefined ? n : `#group${g}`;
  };
  const members = new Map<string, string[]>();
  for (const n of runnable) {
    const u = unitOf(n);
    members.set(u, [...(members.get(u) ?? []), n]);
  }
  const unitDeps = new Map<string, Set<string>>();
  const unitDependents = new Map<string, Set<string>>();
  for (const u of members.keys()) {
    unitDeps.set(u, new Set());
    unitDependents.set(u, new Set());
  }
  for (const e of graph.edges) {
    if (!runnableSet.has(e.from) || !runnableSet.has(e.to)) continue;
    const a = unitOf(e.from);
    const b = unitOf(e.to);
    if (a === b) continue;
    unitDeps.get(a)!.add(b);
    unitDependents.get(b)!.add(a);
  }
  const wave = new Map<string, number>();
  const longest = new Map<string, number>(); // services on the longest chain ending at a unit
  const via = new Map<string, string>();
  const remaining = new Map([...unitDeps].map(([u, d]) => [u, d.size]));
  const ready = [...remaining].filter(([, n]) => n === 0).map(([u]) => u);
  for (const u of ready) {
    wave.set(u, 0);
    longest.set(u, members.get(u)!.length);
  }
  for (let i = 0; i < ready.length; i++) {
    const u = ready[i]!;
    for (const d of unitDependents.get(u)!) {
      wave.set(d, Math.max(wave.get(d) ?? 0, wave.get(u)! + 1));
      const chain = longest.get(u)! + members.get(d)!.length;
      if (chain > (longest.get(d) ?? 0)) {
        longest.set(d, chain);
        via.set(d, u);
      }
      const left = remaining.get(d)! - 1;
      remaining.set(d, left);
      if (left === 0) ready.push(d);
    }
  }
  // Units left over sit on a cycle that validation reports; plan what can be planned.
  const order: string[][] = [];
  for (const [u, w] of wave) {
    while (order.length <= w) order.push([]);
    order[w]!.push(...members.get(u)!);
  }
  for (const w of order) w.sort();

  let end: string | undefined;
  for (const [u, n] of longest) if (end === undefined || n > (longest.get(end) ?? 0)) end = u;
  const criticalChain: string[] = [];
  for (let u = end; u !== undefined; u = via.get(u)) criticalChain.unshift(...[...members.get(u)!].sort());

  const services: PlannedService[] = [];
  for (const name of runnable) {
    const svc = graph.services.get(name)!;
    const hc = svc.healthCheck;
    const group = graph.groupOf(name);
    services.push({
      name,
      kind: svc.kind,
      runtime: svc.runtime,
      wave: wave.get(unitOf(name)) ?? -1,
      ...runsOf(svc),
      ...(svc.port !== undefined ? { port: svc.port } : {}),
      ...(hc ? { health: describeHealthCheck(probedAt(svc, hc)) } : svc.kind === 'task' ? { health: 'exit 0' } : {}),
      ...(group !== undefined ? { group } : {}),
      ...(svc.host !== undefined ? { host: svc.host } : {}),
      ...(svc.singleton && profile.coordination?.strategy === 'leader-follower' ? { singleton: true as const } : {}),
    });
  }
  services.sort((a, b) => a.wave - b.wave || a.name.localeCompare(b.name));
  const host = opts.host;
  const remote = remoteDependencies(graph, runnableSet, where);
  return {
    stack: profile.name,
    ...(host !== undefined ? { host } : {}),
    ...(opts.share === 'leader' && host !== undefined ? { share: 'leader' as const } : {}),
    order,
    edges: graph.edges.filter((e) => runnableSet.has(e.from)),
    // Across hosts, a group's members on this host start together; the others start on theirs.
    groups: graph.groups.map((g) => g.filter((m) => runnableSet.has(m))).filter((g) => g.length > 0),
    services,
    blocked,
    skipped,
    ...(remote.length > 0 ? { remote } : {}),
    criticalChain,
  };
}

/** Where every service runs, seen from this run (checking the host's name). */
function placements(profile: PlanProfile, graph: StackGraph, given: string | undefined, share: Share | undefined): Map<string, Placement> {
  const withHosts =
    profile.hosts !== undefined && profile.coordination !== undefined ? { ...profile, hosts: profile.hosts, coordination: profile.coordination } : undefined;
  const host = withHosts && given !== undefined ? resolveHost(withHosts, given) : given;
  const perHost = withHosts ? runsPerHost(withHosts) : false;
  return new Map([...graph.services.values()].map((s) => [s.name, placementOf(s, host, perHost, share)]));
}

/**
 * What this run waits for elsewhere: every service on another host, or external, that a service of
 * the run depends on (directly, or as a member of a circular group it depends on).
 */
function remoteDependencies(graph: StackGraph, run: ReadonlySet<string>, where: ReadonlyMap<string, Placement>): RemoteDependency[] {
  const dependents = new Map<string, Set<string>>();
  for (const name of run) {
    for (const e of graph.dependenciesOf(name)) {
      const group = graph.groupOf(e.to);
      const targets = group === undefined || e.gate === 'started' || graph.groupOf(name) === group ? [e.to] : (graph.groups[group] ?? [e.to]);
      for (const t of targets) {
        if (run.has(t) || where.get(t)?.kind === 'here' || !graph.services.get(t)?.enable) continue;
        dependents.set(t, (dependents.get(t) ?? new Set()).add(name));
      }
    }
  }
  return [...dependents]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([service, from]) => {
      const at = where.get(service)!;
      return {
        service,
        ...(at.kind === 'host' ? { host: at.host } : {}),
        ...(at.kind === 'leader' ? { leader: true } : {}),
        ...(at.kind === 'external' ? { external: true, ...(at.stack !== undefined ? { stack: at.stack } : {}) } : {}),
        dependents: [...from].sort(),
      };
    });
}

/** What the service's runtime says it runs (an image, a program). */
function runsOf(svc: ServiceSpec): { runs?: string } {
  const runs = runtimeDefinition(svc.runtime).describeRun(svc);
  return runs ? { runs } : {};
}

/** The named services and everything they (transitively) depend on; all when none are named. */
function selection(graph: StackGraph, names: string[] | undefined): Set<string> {
  if (!names || names.length === 0) return new Set(graph.services.keys());
  const out = new Set<string>();
  const stack = [...names];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (out.has(n)) continue;
    out.add(n);
    for (const e of graph.dependenciesOf(n)) stack.push(e.to);
    const g = graph.groupOf(n);
    if (g !== undefined) stack.push(...(graph.groups[g] ?? []));
  }
  return out;
}
