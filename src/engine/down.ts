/**
 * `stack down` as the library does it (one way in: stack.ts re-exports these): stop a stack from
 * any process, also one a supervisor or a dead `up` left; across hosts, ask every host's `stack up`
 * to stop its share. Kept apart from the start-up wiring so `down` loads none of the engine's run.
 */
import { UsageError } from '../errors.js';
import { errorText } from '../util/error-text.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { Profile } from '../profile/types.js';
import { buildGraph } from '../graph/graph.js';
import { checkShare } from './placement.js';
import { givenRuntimes, runtimeSetFor, type GivenRuntimes } from './runtimes.js';
import { leaderRunDir, removeStateFile, stateDirOf } from './state.js';
import { electsLeader } from '../plan/hosts.js';
import { requestDownAllHosts, type AllHostsOptions, type AllHostsReport } from './down-hosts.js';
import { stopStack, type StopReport } from './stop.js';
import type { EngineEvent } from './types.js';

export interface DownStackOptions {
  /** Grace period for every service, overriding each one's own; reaches a supervisor too. */
  timeoutMs?: number;
  dryRun?: boolean;
  onEvent?: (event: EngineEvent) => void;
  /** Discovery could not be opened (registrations are left to expire), a runtime stopped a survivor, … */
  onWarning?: (message: string) => void;
  runtimes?: GivenRuntimes;
  /** Default: created from the profile; `false`: leave registrations alone. */
  discovery?: DiscoveryManager | false;
  cwd?: string;
  /**
   * A profile with `hosts:`: stop this host's share (`stack down --host NAME`). Refused for a name
   * the profile does not declare, or when the state folder was written for another host.
   */
  host?: string;
}

/** Stop a stack as `stack down` does, from any process: also one a supervisor or a dead `up` left. */
export async function downStack(profile: Profile, opts: DownStackOptions = {}): Promise<StopReport> {
  const stateDir = stateDirOf(profile, opts.cwd);
  if (opts.host !== undefined) await checkShare(profile, stateDir, opts.host);
  const runtimes =
    givenRuntimes(opts.runtimes) ??
    runtimeSetFor(profile, {
      stateDir,
      ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
      ...(opts.host !== undefined ? { host: opts.host } : {}),
    });
  // Opened once a running owner (if any) has been asked to stop, while it stops: stopStack needs it only afterwards.
  let opened: Promise<DiscoveryManager | undefined> | undefined;
  const discovery = opts.discovery === undefined ? () => (opened ??= openDiscovery(profile, opts.onWarning)) : opts.discovery || undefined;
  try {
    const report = await stopStack({
      stack: profile.name,
      stateDir,
      runtimes,
      runtimeNames: [...new Set(Object.values(profile.services).map((s) => s.runtime))],
      graph: buildGraph(profile).graph,
      ...(discovery ? { discovery } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      dryRun: Boolean(opts.dryRun),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    // Leader-follower: singletons a killed leader left were found and stopped with the rest (one pid
    // folder); what its leader's share recorded goes too. Their registration is not removed here:
    // under the singleton's one id it may be the next leader's by now (it expires, or is fenced).
    if (electsLeader(profile) && !opts.dryRun) await removeStateFile(leaderRunDir(stateDir)).catch(() => undefined);
    return report;
  } finally {
    if (!opts.runtimes) await runtimes.close();
    if (opts.discovery === undefined) await (await opened)?.close();
  }
}

async function openDiscovery(profile: Profile, onWarning?: (message: string) => void): Promise<DiscoveryManager | undefined> {
  try {
    const { createDiscovery } = await import('../discovery/index.js');
    return await createDiscovery(profile.discovery);
  } catch (err) {
    onWarning?.(`discovery unavailable, registrations are left to expire: ${errorText(err)}`);
    return undefined;
  }
}

export interface DownAllHostsOptions extends Omit<DownStackOptions, 'discovery'>, Pick<AllHostsOptions, 'waitMs' | 'onRequest' | 'onProgress'> {
  /** Where the request is made and the registrations watched; default created from the profile and checked (unreachable: exit 3). */
  discovery?: DiscoveryManager;
}

export interface DownAllHostsReport extends AllHostsReport {
  /** What this machine's state folder still held afterwards, stopped here (absent: nothing). */
  local?: StopReport;
}

/**
 * `stack down --all-hosts`: ask every host's `stack up` to stop its share through discovery, wait
 * (bounded) until the stack has no registration left, then stop whatever this machine's state
 * folder still holds (down-hosts.ts).
 */
export async function downAllHosts(profile: Profile, opts: DownAllHostsOptions = {}): Promise<DownAllHostsReport> {
  if (Object.keys(profile.hosts).length === 0) {
    throw new UsageError(`--all-hosts: profile '${profile.name}' declares no hosts (hosts:); \`stack down\` stops it`, { path: '--all-hosts' });
  }
  const discovery = opts.discovery ?? (await (await import('../discovery/index.js')).createDiscovery(profile.discovery));
  try {
    if (!opts.discovery) await discovery.check(); // unreachable: exit 3, nothing asked
    const report = await requestDownAllHosts(profile, {
      discovery,
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.dryRun ? { dryRun: true } : {}),
      ...(opts.waitMs !== undefined ? { waitMs: opts.waitMs } : {}),
      ...(opts.onRequest ? { onRequest: opts.onRequest } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    if (opts.dryRun) return report;
    const { waitMs: _w, onRequest: _r, onProgress: _p, ...downOpts } = opts;
    const local = await downStack(profile, { ...downOpts, discovery });
    return { ...report, ...(local.nothingRunning ? {} : { local }) };
  } finally {
    if (!opts.discovery) await discovery.close();
  }
}
