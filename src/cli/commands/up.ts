/**
 * `stack up`: start the stack, health-gated, as parallel as the graph allows.
 *
 * Foreground by default: after startup it keeps monitoring health, applying restart policies and
 * heartbeating discovery registrations until Ctrl-C (or SIGTERM, or `stack down` from
 * elsewhere), then stops the stack in reverse order and exits 130.
 *
 * `--detach` runs that same foreground `up` as a background supervisor, like process-compose's
 * detached mode or a Compose daemon (engine/supervisor.ts): this process starts it in its own
 * session, shows its progress (read back from `<stateDir>/supervisor.log`), and exits once the
 * stack is up — 0, the supervisor staying behind — or once it failed and the supervisor rolled
 * back (per `--on-failure`) and exited: its exit code. Ctrl-C here stops the supervisor (SIGTERM:
 * it stops what it started) and exits 130. `stack down` stops it the same way; `kill -9` of it
 * leaves the services running, their registrations expire after one TTL, and `stack down` still
 * cleans up. The supervisor is this command again, without `--detach`, with `--json` and
 * `STACK_SUPERVISOR=1`, which makes it read its `--var` values from its stdin (never its argv),
 * mark its lock `detached`, answer RELIEVE_SIGNAL, and print its startup report as one JSON line
 * for us (the protocol: engine/supervisor.ts). The wiring of a run (runtimes, discovery,
 * templates) is the library's `upStack` (engine/stack.ts), as for every library user.
 *
 * On a stack that already runs (detached, or left by an `up` that died), `up` converges it like
 * `docker compose up`: unchanged services are kept (shown `healthy — unchanged`), changed ones
 * recreated in dependency order (their dependents kept unless they changed too, as Compose does
 * by default), services gone from the profile stopped (engine/converge.ts). A detached supervisor
 * is relieved first (engine/lock.ts: it lets go, leaving the services running); only a live
 * foreground `stack up` of the same stack makes it refuse (the lock).
 *
 * Exit codes: 0 up; 1 a service failed or was blocked, or another `stack up` runs the stack;
 * 2 invalid input; 3 Docker or discovery unreachable; 130 interrupted.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StartupReport } from '../../engine/types.js';
import { ExitCode, UsageError } from '../../errors.js';
import type { CommonOptions } from '../common.js';
import { loadAndPlan, type Planned } from '../load-plan.js';
import { paint, type Output } from '../output.js';
import { createProgress } from '../progress.js';
import { showPlan } from './plan.js';

interface UpOptions extends CommonOptions {
  host?: string;
  detach?: boolean;
  dryRun?: boolean;
  service?: string[];
  onFailure?: 'rollback' | 'leave';
  var?: string[];
  vars?: string;
  pull?: 'missing' | 'always' | 'never';
  ui?: boolean;
}

const STACK_BIN = fileURLToPath(new URL('../../../bin/stack.js', import.meta.url));

export async function run(opts: UpOptions, o: Output): Promise<number> {
  if (opts.dryRun) return showPlan(opts, o, true);
  const planned = loadAndPlan(opts, o, true);
  const unknown = (opts.service ?? []).filter((s) => !planned.graph.services.has(s));
  if (unknown.length > 0) throw new UsageError(`unknown service${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`);
  if (opts.detach && opts.ui)
    throw new UsageError('--ui serves the page while this `stack up` runs; with --detach, run `stack ui` once it is up', { path: '--ui' });
  if (opts.detach) return detach(opts, o, planned);
  const { takeSupervisorMark, readSupervisorInput } = await import('../../engine/supervisor.js');
  const supervisor = takeSupervisorMark(); // services inherit our environment: they are not supervisors
  // A supervisor gets its `--var` values on stdin, never in its argv (`ps` shows argv to everyone).
  const vars = supervisor ? (await readSupervisorInput()).vars : (opts.var ?? []);
  return foreground({ ...opts, var: vars }, o, planned, supervisor);
}

async function foreground(opts: UpOptions, o: Output, { profile, graph, plan: thePlan }: Planned, supervisor: boolean): Promise<number> {
  const { upStack } = await import('../../engine/stack.js');
  const { answerSignals, reportLine } = await import('../../engine/supervisor.js');
  const { stateDirOf } = await import('../../engine/state.js');
  const interrupt = new AbortController();
  const progress = createProgress(o, {
    json: Boolean(opts.json),
    services: [...thePlan.services.map((s) => s.name), ...thePlan.blocked.map((b) => b.service)],
  });
  const controller = upStack(
    { profile, graph, plan: thePlan },
    {
      signal: interrupt.signal,
      onEvent: (e) => progress.event(e),
      onFailure: opts.onFailure ?? 'rollback',
      detached: supervisor,
      ...(opts.var && opts.var.length > 0 ? { vars: opts.var } : {}),
      ...(opts.vars ? { varsFile: opts.vars } : {}),
      ...(opts.pull ? { pull: opts.pull } : {}),
    },
  );
  let ui: Awaited<ReturnType<typeof serveOwnUi>> | undefined;
  // A later `up` relieves a supervisor: let go of the stack (services keep running) and exit.
  // Not before startup is over: a half-started stack is not handed over, the new `up` waits.
  let isUp = false;
  let relieved = false;
  const stopAnswering = answerSignals(stateDirOf(profile), {
    onStop(signal, request) {
      if (interrupt.signal.aborted) {
        // A second Ctrl-C: the user will not wait for grace periods. Services keep running in their
        // own process groups; `stack down` finds them (our lock becomes stale when we exit).
        o.err(`${signal} again: exiting now; what still runs is left to \`stack down\``);
        process.exit(ExitCode.interrupted);
      }
      if (!opts.json) o.err(`\n${signal}: stopping the stack (dependents first)… (again to exit at once)`);
      // `stack down --timeout`: the grace period it asked for, for every service.
      if (request.timeoutMs !== undefined) void controller.stop({ timeoutMs: request.timeoutMs });
      interrupt.abort(signal);
    },
    ...(supervisor
      ? {
          onRelieve() {
            relieved = true;
            if (isUp) void controller.detach();
          },
        }
      : {}),
  });
  try {
    if (opts.ui)
      ui = await serveOwnUi(opts, o, profile, controller).catch(async (err: unknown) => {
        await controller.stop(); // no page (its port is taken?): nothing started is left behind
        throw err;
      });
    const report = await controller.ready;
    progress.finish();
    if (supervisor) o.out(reportLine(report));
    if (!opts.json) summarize(o, report, profile.name, opts.onFailure ?? 'rollback');
    if (report.outcome === 'interrupted') return ExitCode.interrupted;
    if (report.outcome === 'failed') return ExitCode.stackFailed;
    isUp = true;
    if (relieved) await controller.detach();
    if (!opts.json) o.out(paint(o, 'gray', 'watching health and applying restart policies; Ctrl-C stops the stack'));
    await controller.done;
    return interrupt.signal.aborted ? ExitCode.interrupted : ExitCode.ok;
  } finally {
    stopAnswering();
    await controller.done; // discovery and runtimes closed
    await ui?.close();
  }
}

/** `up --ui`: the page of `stack ui`, fed by this engine's own events; its stop action stops this run. */
async function serveOwnUi(opts: UpOptions, o: Output, profile: Planned['profile'], controller: import('../../engine/engine.js').StackController) {
  const { serveUi } = await import('../../ui/index.js');
  const ui = await serveUi({
    profile,
    stateDir: controller.stateDir,
    cwd: process.cwd(),
    ...(opts.var && opts.var.length > 0 ? { vars: opts.var } : {}),
    ...(opts.vars ? { varsFile: opts.vars } : {}),
    events: (listener) => controller.subscribe(listener),
    stopOwnEngine: () => controller.stop(),
    onWarning: (m) => o.err(`warning: ${m}`),
  });
  // stdout holds only events with --json.
  if (opts.json) o.err(`stack ui: ${ui.url}`);
  else o.out(`stack ui: ${ui.url}`);
  return ui;
}

/** `up --detach`: start the supervisor, show its progress until the stack is up or it has ended. */
async function detach(opts: UpOptions, o: Output, { ref, profile, plan: thePlan }: Planned): Promise<number> {
  const { stateDirOf } = await import('../../engine/state.js');
  const { parseSupervisorLine, startSupervisor, supervisorArgs } = await import('../../engine/supervisor.js');
  const supervisor = await startSupervisor({
    argv: [
      process.execPath,
      STACK_BIN,
      ...supervisorArgs({
        profile: profile.source.file ?? profile.source.builtin ?? ref,
        onFailure: opts.onFailure ?? 'rollback',
        services: opts.service ?? [],
        ...(thePlan.host !== undefined ? { host: thePlan.host } : {}),
        ...(opts.vars ? { varsFile: path.resolve(opts.vars) } : {}),
        ...(opts.pull ? { pull: opts.pull } : {}),
      }),
    ],
    cwd: process.cwd(),
    env: process.env,
    stateDir: stateDirOf(profile),
    input: { vars: opts.var ?? [] },
  });
  const progress = createProgress(o, {
    json: Boolean(opts.json),
    services: [...thePlan.services.map((s) => s.name), ...thePlan.blocked.map((b) => b.service)],
  });
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      o.err(`${signal} again: exiting now; the supervisor (pid ${supervisor.pid}) goes on stopping the stack`);
      process.exit(ExitCode.interrupted);
    }
    interrupted = true;
    if (!opts.json) o.err(`\n${signal}: stopping the stack (dependents first)… (again to exit at once)`);
    supervisor.kill('SIGTERM'); // it is in its own session: our terminal's Ctrl-C does not reach it
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let report: StartupReport | undefined;
  try {
    const ended = await supervisor.follow((line) => {
      const parsed = parseSupervisorLine(line);
      if (!parsed) {
        o.err(line); // its error messages (invalid templates, a locked stack, …)
        return false;
      }
      if (parsed.type === 'report') {
        report = parsed.report;
        return report.outcome === 'up' && !interrupted;
      }
      if (opts.json) o.out(line);
      else progress.event(parsed);
      return false;
    });
    progress.finish();
    if (report && !opts.json) summarize(o, report, profile.name, opts.onFailure ?? 'rollback');
    if (ended === 'released') {
      supervisor.release();
      // The last `--json` line says who runs the stack now.
      if (opts.json)
        o.out(
          JSON.stringify({
            time: new Date().toISOString(),
            type: 'stack',
            stack: profile.name,
            phase: 'detached',
            elapsedMs: report?.elapsedMs ?? 0,
            supervisor: supervisor.pid,
          }),
        );
      else
        o.out(
          `detached: supervised by pid ${supervisor.pid}; \`stack status\` shows it, \`stack down\` stops it (log: ${path.relative(process.cwd(), supervisor.logFile)})`,
        );
      return ExitCode.ok;
    }
    if (interrupted) return ExitCode.interrupted;
    if (ended > ExitCode.unreachable && ended !== ExitCode.interrupted) {
      o.err(`stack: the supervisor (pid ${supervisor.pid}) ended unexpectedly (exit ${ended}); \`stack down\` stops what it left`);
      return ExitCode.stackFailed;
    }
    return ended;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
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
  o.err(
    `stack '${stack}' failed after ${secs}s; ${policy === 'rollback' ? 'what had started was stopped again (--on-failure rollback)' : 'the rest was left running (--on-failure leave); `stack down` stops it'}`,
  );
}
