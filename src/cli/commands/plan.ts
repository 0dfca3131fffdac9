import { ExitCode, UsageError } from '../../errors.js';
import type { Gate } from '../../graph/types.js';
import { formatDuration } from '../../util/duration.js';
import type { Plan, RemoteDependency } from '../../plan/types.js';
import type { Profile } from '../../profile/types.js';
import { loadAndPlan, type PlanCliOptions } from '../load-plan.js';
import { pad, paint, type Output } from '../output.js';

const GATE_TEXT: Record<Gate, string> = { healthy: 'healthy', settled: 'healthy or failed', started: 'started' };

export async function run(opts: PlanCliOptions, o: Output): Promise<number> {
  return showPlan(opts, o, false);
}

/** `stack plan`, and `stack up --dry-run` (`needsHost`: as `up`, a profile across hosts must be told which host this is). */
export async function showPlan(opts: PlanCliOptions, o: Output, needsHost: boolean): Promise<number> {
  const { profile, graph, plan } = loadAndPlan(opts, o, needsHost);
  const unknown = (opts.service ?? []).filter((s) => !graph.services.has(s));
  if (unknown.length > 0) throw new UsageError(`unknown service${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`);
  if (opts.json) {
    o.json({
      ...plan,
      edges: plan.edges.map(({ from, to, type, gate }) => ({ from, to, type, gate })),
      dependencyTimeoutMs: profile.coordination.dependencyTimeoutMs,
      healthChecks: profile.coordination.enableHealthChecks,
      coordination: profile.coordination.strategy,
    });
    return ExitCode.ok;
  }
  const count = plan.services.length;
  const on = plan.host !== undefined ? ` on host '${plan.host}'` : '';
  o.out(
    paint(
      o,
      'bold',
      `Plan for stack '${plan.stack}'${on}: ${count} service${count === 1 ? '' : 's'} in ${plan.order.length} wave${plan.order.length === 1 ? '' : 's'}`,
    ),
  );
  if (!profile.coordination.enableHealthChecks) o.out(paint(o, 'yellow', 'health checks are off: "healthy" means "started"'));
  o.out(`every wait is bounded by dependencyTimeout (${formatDuration(profile.coordination.dependencyTimeoutMs)})`);
  o.out(paint(o, 'gray', coordinationLine(profile, plan)));
  const byName = new Map(plan.services.map((s) => [s.name, s]));
  const remote = new Map((plan.remote ?? []).map((r) => [r.service, r]));
  const whereIs = (service: string) => {
    const r = remote.get(service);
    if (r) return `, ${elsewhere(r)}`;
    const spec = graph.services.get(service);
    if (plan.host === undefined || spec?.host !== 'all') return '';
    return spec.kind === 'task' ? ', here' : ', here or on another host'; // a host: all task prepares this host
  };
  const width = Math.max(8, ...plan.services.map((s) => s.name.length)) + 2;
  plan.order.forEach((wave, i) => {
    o.out('');
    o.out(paint(o, 'bold', `wave ${i + 1}`));
    for (const name of wave) {
      const s = byName.get(name)!;
      const what = [s.kind === 'task' ? 'task' : s.runtime, s.runs].filter(Boolean).join(' ');
      const gates = graph
        .dependenciesOf(name)
        .filter((e) => byName.has(e.to) || remote.has(e.to))
        .map((e) => `${e.to} ${paint(o, 'gray', `(${e.type}: ${GATE_TEXT[e.gate]}${whereIs(e.to)})`)}`);
      const placed = s.singleton
        ? paint(o, 'gray', "  singleton: on the leader's host")
        : s.host !== undefined && plan.host === undefined
          ? paint(o, 'gray', `  on ${s.host === 'all' ? 'every host' : `host '${s.host}'`}`)
          : '';
      o.out(`  ${pad(name, width)}${what}${s.health ? paint(o, 'gray', `  health: ${s.health}`) : ''}${placed}`);
      if (s.group !== undefined) o.out(`  ${pad('', width)}${paint(o, 'blue', `starts with its circular group: ${plan.groups[s.group]?.join(', ') ?? ''}`)}`);
      if (gates.length > 0) o.out(`  ${pad('', width)}after ${gates.join(', ')}`);
    }
  });
  if (plan.criticalChain.length > 1) {
    o.out('');
    o.out(`critical chain (${plan.criticalChain.length} services): ${plan.criticalChain.join(' → ')}`);
  }
  if (remote.size > 0) {
    o.out('');
    o.out(paint(o, 'bold', 'waits for, in discovery (a passing record, within dependencyTimeout)'));
    for (const r of remote.values()) o.out(`  ${r.service} ${paint(o, 'gray', `(${elsewhere(r)})`)} ← ${r.dependents.join(', ')}`);
  }
  for (const b of plan.blocked) o.out(paint(o, 'red', `blocked: ${b.service} — ${b.reason}`));
  for (const s of plan.skipped) o.out(paint(o, 'gray', `skipped: ${s.service} — ${s.reason}`));
  return ExitCode.ok;
}

/** Where a remote dependency runs, for the plan. */
function elsewhere(r: RemoteDependency): string {
  if (r.external) return `external${r.stack ? `, stack '${r.stack}'` : ', any stack'}`;
  if (r.leader) return "a singleton, on the leader's host";
  return `on host '${r.host ?? '?'}'`;
}

/** What the strategy means for this plan. */
function coordinationLine(profile: Profile, plan: Plan): string {
  const strategy = profile.coordination.strategy;
  const hosts = Object.keys(profile.hosts);
  if (hosts.length === 0) return `coordination: ${strategy} (on one host, gates open on local events)`;
  const across = `across hosts ${hosts.join(', ')}`;
  if (strategy === 'hub-spoke')
    return `coordination: hub-spoke ${across}: this run (the hub${plan.host !== undefined ? `, on '${plan.host}'` : ''}) starts every service, on each host's engine`;
  if (strategy === 'leader-follower')
    return `coordination: leader-follower ${across}: ${plan.host === undefined ? 'each host starts its own share' : 'this host starts its own share'}; the supervisors elect a leader, which alone runs the singletons, on its own host; gates on the others open from discovery records`;
  if (plan.host === undefined)
    return `coordination: ${strategy} ${across}: each host starts its own share (\`stack plan --host NAME\` shows one), and meets the others in discovery`;
  return `coordination: ${strategy} ${across}: this host starts its own share${strategy === 'mesh' ? ' (and every host: all service)' : ''}; gates on the others open from discovery records`;
}
