/**
 * `stack down`: stop the stack in reverse dependency order, deregister it, leave nothing running.
 * Works for a stack started by another `stack` process, even one that was killed; idempotent
 * (nothing running: says so, exit 0). Exit 1 when something could not be stopped. `--timeout`
 * replaces every service's grace period, also when a supervisor (`up --detach`) does the stopping.
 * The work is the library's `downStack` (engine/stack.ts).
 *
 * A stack across hosts (`hosts:`): `--host NAME` (or `STACK_HOST`) stops this host's share, the
 * one its state folder holds; `--all-hosts` asks the `stack up` of every host to stop its share
 * through discovery, waits until the stack has no registration left (exit 1 if some remain when
 * the wait ends), then stops what this machine's state folder still holds (`downAllHosts`).
 */
import { ExitCode, UsageError } from '../../errors.js';
import type { RegistrationView } from '../../engine/down-hosts.js';
import { loadProfile } from '../../profile/load.js';
import { parseDuration } from '../../util/duration.js';
import type { DownAllHostsOptions, DownAllHostsReport } from '../../engine/down.js';
import type { StopReport } from '../../engine/stop.js';
import { profileRef, type CommonOptions } from '../common.js';
import { thisHost } from '../host.js';
import { clean, paint, type Output } from '../output.js';
import { createProgress } from '../progress.js';

interface DownOptions extends CommonOptions {
  dryRun?: boolean;
  timeout?: string;
  host?: string;
  allHosts?: boolean;
}

export async function run(opts: DownOptions, o: Output): Promise<number> {
  const timeoutMs = opts.timeout === undefined ? undefined : parseDuration(opts.timeout);
  if (timeoutMs === undefined && opts.timeout !== undefined)
    throw new UsageError(`--timeout: '${opts.timeout}' is not a duration (seconds, or 500ms, 30s, 2m)`);
  if (opts.allHosts && opts.host !== undefined)
    throw new UsageError('--host stops one host’s share, --all-hosts every host’s: give one of them', { path: '--host' });
  // The engine's modules load while the profile is read and checked.
  const engine = import('../../engine/down.js');
  engine.catch(() => undefined);
  const profile = loadProfile(profileRef(opts, o));
  const host = thisHost(profile, opts.host, { refuseOther: true });
  const progress = createProgress(o, { json: Boolean(opts.json), services: [] });
  const common = {
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(host !== undefined ? { host } : {}),
    dryRun: Boolean(opts.dryRun),
    onEvent: opts.json || o.tty ? () => undefined : (e: Parameters<typeof progress.event>[0]) => progress.event(e),
    onWarning: (message: string) => {
      if (!opts.json) o.err(paint(o, 'yellow', `warning: ${message}`));
    },
  };
  const { downStack, downAllHosts } = await engine;
  if (opts.allHosts) return allHosts(opts, o, profile.name, await downAllHosts(profile, withProgress(opts, o, profile.name, common)));
  const report = await downStack(profile, common);
  if (opts.json) {
    o.json(report);
    return report.services.some((s) => s.error) ? ExitCode.stackFailed : ExitCode.ok;
  }
  return printStopReport(o, report, profile.name, Boolean(opts.dryRun));
}

function printStopReport(o: Output, report: StopReport, stack: string, dryRun: boolean): number {
  const failed = report.services.filter((s) => s.error);
  if (report.nothingRunning) {
    o.out(`stack '${stack}': nothing is running`);
    return ExitCode.ok;
  }
  if (report.owner) o.out(`asked the running \`stack up\` (pid ${report.owner.pid}) to stop${report.owner.stopped ? '; it did' : ''}`);
  const verb = dryRun ? 'would stop' : 'stopped';
  for (const s of report.services) {
    const what = s.pid !== undefined ? `pid ${s.pid}` : s.id.slice(0, 12);
    o.out(s.error ? paint(o, 'red', `could not stop ${s.service} (${what}): ${s.error}`) : `${verb} ${s.service} (${what})`);
  }
  if (!dryRun && failed.length === 0) o.out(paint(o, 'green', `stack '${stack}' is down`));
  return failed.length > 0 ? ExitCode.stackFailed : ExitCode.ok;
}

/** Where each registration is, by host: `a: api, db; b: web`. */
function byHost(list: RegistrationView[]): string {
  const hosts = new Map<string, string[]>();
  for (const r of list) hosts.set(r.host, [...(hosts.get(r.host) ?? []), r.service]);
  return [...hosts].map(([h, services]) => `${clean(h)}: ${services.map(clean).join(', ')}`).join('; ');
}

function withProgress<T extends object>(opts: DownOptions, o: Output, stack: string, common: T): T & Pick<DownAllHostsOptions, 'onRequest' | 'onProgress'> {
  if (opts.json || opts.dryRun) return common;
  return {
    ...common,
    onRequest: (registered) =>
      o.out(
        `asked every host's \`stack up\` to stop stack '${stack}' (through discovery)${registered.length > 0 ? `: ${registered.length} registered (${byHost(registered)})` : ''}`,
      ),
    onProgress: (remaining, elapsedMs) => {
      const secs = (elapsedMs / 1000).toFixed(1);
      if (remaining.length === 0) o.out(`${secs}s: no registration left`);
      else o.out(`${secs}s: waiting for ${remaining.length} registration${remaining.length === 1 ? '' : 's'} to go (${byHost(remaining)})`);
    },
  };
}

function allHosts(opts: DownOptions, o: Output, stack: string, report: DownAllHostsReport): number {
  const failed = report.remaining.length > 0 && !report.dryRun;
  const localFailed = report.local?.services.some((s) => s.error) ?? false;
  if (opts.json) {
    o.json(report);
    return failed || localFailed ? ExitCode.stackFailed : ExitCode.ok;
  }
  if (report.dryRun) {
    if (report.registered.length === 0) o.out(`stack '${stack}': nothing is registered on any host`);
    else o.out(`would ask every host to stop stack '${stack}': ${report.registered.length} registered (${byHost(report.registered)})`);
    return ExitCode.ok;
  }
  if (report.withdrawError) o.err(paint(o, 'yellow', `warning: the request could not be removed (it expires on its own): ${report.withdrawError}`));
  if (report.local) {
    o.out(`and here, what this machine's state folder still held:`);
    printStopReport(o, report.local, stack, false);
  }
  if (failed) {
    o.err(
      paint(
        o,
        'red',
        `still registered when the wait ended: ${byHost(report.remaining)} — is \`stack up\` running on those hosts? \`stack down --host NAME\` there stops them`,
      ),
    );
    return ExitCode.stackFailed;
  }
  o.out(paint(o, 'green', `every host's share of stack '${stack}' is down`));
  return localFailed ? ExitCode.stackFailed : ExitCode.ok;
}
