/**
 * `stack up`: start the stack, health-gated, as parallel as the graph allows.
 *
 * Foreground by default: after startup it keeps monitoring health and applying restart policies
 * until Ctrl-C (or SIGTERM, or `stack down` from elsewhere), then stops the stack in reverse order
 * and exits 130. `--detach` returns once everything is healthy and leaves the services running
 * (they are in their own process groups, logging to files); nobody then heartbeats discovery, so
 * registrations are made without a TTL and `stack down` removes them.
 *
 * On a stack that already runs (detached, or left by an `up` that died), `up` converges it like
 * `docker compose up`: unchanged services are kept (shown `healthy — unchanged`), changed ones
 * recreated in dependency order (their dependents kept unless they changed too, as Compose does
 * by default), services gone from the profile stopped (engine/converge.ts). Only a live
 * `stack up` of the same stack makes it refuse (the lock).
 *
 * Exit codes: 0 up; 1 a service failed or was blocked, or another `stack up` runs the stack;
 * 2 invalid input; 3 Docker or discovery unreachable; 130 interrupted.
 */
import { ExitCode, UsageError } from '../../errors.js';
import type { StartupReport } from '../../engine/types.js';
import type { CommonOptions } from '../common.js';
import { loadAndPlan } from '../load-plan.js';
import { paint, type Output } from '../output.js';
import { createProgress } from '../progress.js';
import { run as plan } from './plan.js';

interface UpOptions extends CommonOptions {
  detach?: boolean;
  dryRun?: boolean;
  service?: string[];
  onFailure?: 'rollback' | 'leave';
  var?: string[];
  vars?: string;
  pull?: 'missing' | 'always' | 'never';
}

export async function run(opts: UpOptions, o: Output): Promise<number> {
  if (opts.dryRun) return plan(opts, o);
  const { profile, graph, plan: thePlan } = loadAndPlan(opts, o);
  const unknown = (opts.service ?? []).filter((s) => !graph.services.has(s));
  if (unknown.length > 0) throw new UsageError(`unknown service${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`);

  const { startStack } = await import('../../engine/engine.js');
  const { createRuntimeSet } = await import('../../engine/runtimes.js');
  const { stateDirOf } = await import('../../engine/state.js');
  const stateDir = stateDirOf(profile);
  const runtimes = createRuntimeSet({ stateDir, docker: profile.docker, ...(opts.pull ? { pull: opts.pull } : {}) });
  const { createDiscovery } = await import('../../discovery/index.js');
  const discovery = await createDiscovery(profile.discovery);
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupt.signal.aborted) {
      // A second Ctrl-C: the user will not wait for grace periods. Services keep running in their
      // own process groups; `stack down` finds them (our lock becomes stale when we exit).
      o.err(`${signal} again: exiting now; what still runs is left to \`stack down\``);
      process.exit(ExitCode.interrupted);
    }
    if (!opts.json) o.err(`\n${signal}: stopping the stack (dependents first)… (again to exit at once)`);
    interrupt.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await discovery.check(); // unreachable discovery: exit 3 before anything starts
    const progress = createProgress(o, { json: Boolean(opts.json), services: [...thePlan.services.map((s) => s.name), ...thePlan.blocked.map((b) => b.service)] });
    const { createTemplateRenderer } = await import('../../engine/templates.js');
    const renderConfigs = await createTemplateRenderer(
      profile,
      thePlan.services.map((s) => s.name),
      { stateDir, ...(opts.var ? { vars: opts.var } : {}), ...(opts.vars ? { varsFile: opts.vars } : {}) },
    );
    const controller = startStack(
      { profile, graph, plan: thePlan },
      {
        discovery,
        runtimes,
        stateDir,
        signal: interrupt.signal,
        onEvent: progress.event,
        onFailure: opts.onFailure ?? 'rollback',
        supervise: !opts.detach,
        ...(opts.detach ? { registrationTtlMs: 0 } : {}),
        ...(renderConfigs ? { renderConfigs } : {}),
      },
    );
    const report = await controller.ready;
    progress.finish();
    if (!opts.json) summarize(o, report, profile.name, opts.onFailure ?? 'rollback');
    if (report.outcome === 'interrupted') return ExitCode.interrupted;
    if (report.outcome === 'failed') return ExitCode.stackFailed;
    if (opts.detach) {
      await controller.detach();
      if (!opts.json) o.out(`detached: \`stack status\` shows it, \`stack down\` stops it`);
      return ExitCode.ok;
    }
    if (!opts.json) o.out(paint(o, 'gray', 'watching health and applying restart policies; Ctrl-C stops the stack'));
    await controller.done;
    return interrupt.signal.aborted ? ExitCode.interrupted : ExitCode.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await discovery.close();
    await runtimes.close(); // a detached stack's services keep running: closing only lets go of them
  }
}

function summarize(o: Output, report: StartupReport, stack: string, policy: string): void {
  const secs = (report.elapsedMs / 1000).toFixed(2);
  if (report.outcome === 'up') {
    const kept = report.services.filter((s) => s.unchanged).length;
    const count = `${report.services.length} service${report.services.length === 1 ? '' : 's'}`;
    o.out(paint(o, 'green', `stack '${stack}' is up: ${count} in ${secs}s${kept > 0 ? ` (${kept} unchanged)` : ''}`));
    return;
  }
  if (report.outcome === 'interrupted') {
    o.err(`stack '${stack}': interrupted; what had started was stopped`);
    return;
  }
  for (const f of report.failed) o.err(paint(o, 'red', `failed: ${f.service} — ${f.reason}`));
  for (const b of report.blocked) o.err(paint(o, 'red', `blocked: ${b.service} — ${b.reason}`));
  o.err(`stack '${stack}' failed after ${secs}s; ${policy === 'rollback' ? 'what had started was stopped again (--on-failure rollback)' : 'the rest was left running (--on-failure leave); `stack down` stops it'}`);
}
