import { ExitCode, UsageError } from '../../errors.js';
import type { Gate } from '../../graph/types.js';
import { formatDuration } from '../../util/duration.js';
import type { CommonOptions } from '../common.js';
import { loadAndPlan } from '../load-plan.js';
import { pad, paint, type Output } from '../output.js';

const GATE_TEXT: Record<Gate, string> = { healthy: 'healthy', settled: 'healthy or failed', started: 'started' };

export async function run(opts: CommonOptions & { service?: string[] }, o: Output): Promise<number> {
  const { profile, graph, plan } = loadAndPlan(opts, o);
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
  o.out(
    paint(
      o,
      'bold',
      `Plan for stack '${plan.stack}': ${count} service${count === 1 ? '' : 's'} in ${plan.order.length} wave${plan.order.length === 1 ? '' : 's'}`,
    ),
  );
  if (!profile.coordination.enableHealthChecks) o.out(paint(o, 'yellow', 'health checks are off: "healthy" means "started"'));
  o.out(`every wait is bounded by dependencyTimeout (${formatDuration(profile.coordination.dependencyTimeoutMs)})`);
  // Every strategy runs the same on one host: gates open on local events. Across hosts (later),
  // leader-follower and peer-to-peer answer the same gate questions from discovery records.
  if (profile.coordination.strategy !== 'hub-spoke')
    o.out(paint(o, 'gray', `coordination: ${profile.coordination.strategy} (on one host, gates open on local events)`));
  const byName = new Map(plan.services.map((s) => [s.name, s]));
  const width = Math.max(8, ...plan.services.map((s) => s.name.length)) + 2;
  plan.order.forEach((wave, i) => {
    o.out('');
    o.out(paint(o, 'bold', `wave ${i + 1}`));
    for (const name of wave) {
      const s = byName.get(name)!;
      const what = [s.kind === 'task' ? 'task' : s.runtime, s.runs].filter(Boolean).join(' ');
      const gates = graph
        .dependenciesOf(name)
        .filter((e) => byName.has(e.to))
        .map((e) => `${e.to} ${paint(o, 'gray', `(${e.type}: ${GATE_TEXT[e.gate]})`)}`);
      o.out(`  ${pad(name, width)}${what}${s.health ? paint(o, 'gray', `  health: ${s.health}`) : ''}`);
      if (s.group !== undefined) o.out(`  ${pad('', width)}${paint(o, 'blue', `starts with its circular group: ${plan.groups[s.group]?.join(', ') ?? ''}`)}`);
      if (gates.length > 0) o.out(`  ${pad('', width)}after ${gates.join(', ')}`);
    }
  });
  if (plan.criticalChain.length > 1) {
    o.out('');
    o.out(`critical chain (${plan.criticalChain.length} services): ${plan.criticalChain.join(' → ')}`);
  }
  for (const b of plan.blocked) o.out(paint(o, 'red', `blocked: ${b.service} — ${b.reason}`));
  for (const s of plan.skipped) o.out(paint(o, 'gray', `skipped: ${s.service} — ${s.reason}`));
  return ExitCode.ok;
}
