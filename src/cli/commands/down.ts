/**
 * `stack down`: stop the stack in reverse dependency order, deregister it, leave nothing running.
 * Works for a stack started by another `stack` process, even one that was killed; idempotent
 * (nothing running: says so, exit 0). Exit 1 when something could not be stopped. `--timeout`
 * replaces every service's grace period, also when a supervisor (`up --detach`) does the stopping.
 * The work is the library's `downStack` (engine/stack.ts).
 */
import { ExitCode, UsageError } from '../../errors.js';
import { loadProfile } from '../../profile/load.js';
import { parseDuration } from '../../util/duration.js';
import { profileRef, type CommonOptions } from '../common.js';
import { paint, type Output } from '../output.js';
import { createProgress } from '../progress.js';

interface DownOptions extends CommonOptions {
  dryRun?: boolean;
  timeout?: string;
}

export async function run(opts: DownOptions, o: Output): Promise<number> {
  const timeoutMs = opts.timeout === undefined ? undefined : parseDuration(opts.timeout);
  if (timeoutMs === undefined && opts.timeout !== undefined)
    throw new UsageError(`--timeout: '${opts.timeout}' is not a duration (seconds, or 500ms, 30s, 2m)`);
  const profile = loadProfile(profileRef(opts, o));
  const { downStack } = await import('../../engine/stack.js');
  const progress = createProgress(o, { json: Boolean(opts.json), services: [] });
  const report = await downStack(profile, {
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    dryRun: Boolean(opts.dryRun),
    onEvent: opts.json || o.tty ? () => undefined : (e) => progress.event(e),
    onWarning: (message) => {
      if (!opts.json) o.err(paint(o, 'yellow', `warning: ${message}`));
    },
  });
  const failed = report.services.filter((s) => s.error);
  if (opts.json) {
    o.json(report);
    return failed.length > 0 ? ExitCode.stackFailed : ExitCode.ok;
  }
  if (report.nothingRunning) {
    o.out(`stack '${profile.name}': nothing is running`);
    return ExitCode.ok;
  }
  if (report.owner) o.out(`asked the running \`stack up\` (pid ${report.owner.pid}) to stop${report.owner.stopped ? '; it did' : ''}`);
  const verb = opts.dryRun ? 'would stop' : 'stopped';
  for (const s of report.services) {
    const what = s.pid !== undefined ? `pid ${s.pid}` : s.id.slice(0, 12);
    o.out(s.error ? paint(o, 'red', `could not stop ${s.service} (${what}): ${s.error}`) : `${verb} ${s.service} (${what})`);
  }
  if (!opts.dryRun && failed.length === 0) o.out(paint(o, 'green', `stack '${profile.name}' is down`));
  return failed.length > 0 ? ExitCode.stackFailed : ExitCode.ok;
}
