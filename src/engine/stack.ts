/**
 * One way in: `upStack`, `downStack` and `stackStatus` own the wiring of a stack — its runtimes,
 * its discovery, its templates, its lock (engine.ts) and the supervisor protocol (supervisor.ts) —
 * and `stack up`, `stack down` and `stack status` are thin layers over them. A library user
 * (`mkServiceCoordination`) calls the same functions, so gets exactly the CLI's behaviour:
 * templates rendered, services registered in discovery, heartbeats, the state file.
 *
 * Everything is created on demand from the profile; a caller may hand in its own runtimes or
 * discovery (tests, embedders), which are then not closed here.
 */
import { errorText } from '../util/error-text.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { DiscoveryEvent, ServiceInstance } from '../discovery/types.js';
import type { Profile } from '../profile/types.js';
import { startStack, type StackController, type StartStackInput, type StartStackOptions } from './engine.js';
import { electsLeader } from '../plan/hosts.js';
import { onHost } from './hosts.js';
import { checkHubPlacement } from './placement.js';
import { givenRuntimes, runtimeSetFor, type GivenRuntimes } from './runtimes.js';
import { leaderRunDir, stateDirOf } from './state.js';
import { watchDownRequests } from './supervisor.js';
import { readStackStatus, type StackStatusView } from './status.js';
import { acrossHosts } from './status-hosts.js';
import { withTimeout } from '../discovery/resync.js';
import { LEADER_KEY, readLeadership, type LeadershipStatusView } from './leadership-state.js';
import { createTemplateHooks } from './templates.js';
import type { EngineEvent, ServiceStatus, StartupReport } from './types.js';

// `stack down` lives apart (down.ts: it loads none of the run); the one way in is still here.
export { downAllHosts, downStack, type DownAllHostsOptions, type DownAllHostsReport, type DownStackOptions } from './down.js';

export interface UpStackOptions extends Omit<StartStackOptions, 'runtimes' | 'discovery' | 'renderConfigs' | 'rerender'> {
  /** Default: created from the profile (the process runtime; Docker imported on first use). */
  runtimes?: GivenRuntimes;
  /** Default: created from the profile's `discovery` and checked first (unreachable: exit 3). */
  discovery?: DiscoveryManager;
  /** Template variables: `--var key=value` flags, and a `--vars` file. */
  vars?: string[];
  varsFile?: string;
  /** Overrides every Docker service's `pull` (`stack up --pull`). */
  pull?: 'missing' | 'always' | 'never';
}

/**
 * Start a stack as `stack up` does. Returns at once: `ready` rejects for problems found before
 * anything starts (invalid templates: exit 2; discovery or Docker unreachable: exit 3; locked).
 */
export function upStack(input: StartStackInput, opts: UpStackOptions = {}): StackController {
  const stateDir = opts.stateDir ?? stateDirOf(input.profile, opts.cwd);
  const startedAt = Date.now();
  const listeners = new Set<(e: EngineEvent) => void>();
  const interrupt = new AbortController();
  let inner: StackController | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const signal = opts.signal ? AbortSignal.any([opts.signal, interrupt.signal]) : interrupt.signal;
  const onEvent = (event: EngineEvent) => {
    opts.onEvent?.(event);
    for (const listener of listeners) listener(event);
  };

  const ready = (async (): Promise<StartupReport> => {
    let local: StartStackInput;
    try {
      local = onHost(input, opts.host); // a profile across hosts: this host's share (exit 2 when it says none)
    } catch (err) {
      resolveDone();
      throw err;
    }
    const wiring = await wire(local, opts, stateDir, onEvent).catch((err: unknown) => {
      resolveDone();
      throw err;
    });
    const { runtimes: _r, discovery: _d, vars: _v, varsFile: _f, pull: _p, ...engineOpts } = opts;
    const run = startStack(local, { ...engineOpts, ...wiring.engine, stateDir, signal, onEvent });
    inner = run;
    const stopWatching = answerDownRequests(local.profile, wiring.engine.discovery, startedAt, onEvent, (timeoutMs) => run.stop(timeoutMs));
    void run.done
      .then(() => stopWatching())
      .then(() => wiring.close())
      .then(resolveDone, resolveDone);
    return run.ready;
  })();
  ready.catch(() => undefined);

  return {
    stack: input.plan.stack,
    stateDir,
    ready,
    done,
    status: (): ServiceStatus[] => inner?.status() ?? [],
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop(stopOpts = {}) {
      if (inner) return inner.stop(stopOpts);
      interrupt.abort('stop'); // still wiring: the run starts interrupted and stops at once
      await ready.catch(() => undefined);
      await (inner as StackController | undefined)?.stop(stopOpts);
      await done;
    },
    async detach() {
      await ready.catch(() => undefined);
      await inner?.detach();
    },
  };
}

interface Wiring {
  engine: Pick<StartStackOptions, 'runtimes' | 'discovery' | 'renderConfigs' | 'rerender'>;
  /** Close what was created here (not what the caller gave). */
  close(): Promise<void>;
}

/** Runtimes, discovery (checked), and the template renderer (every template checked once). */
async function wire({ profile, plan }: StartStackInput, opts: UpStackOptions, stateDir: string, onEvent: (e: EngineEvent) => void): Promise<Wiring> {
  const onWarning = (message: string) => onEvent({ type: 'warning', message });
  const host = plan.host ?? opts.host; // the host this run is (onHost checked it)
  checkHubPlacement(
    profile,
    plan.services.map((s) => s.name),
    host,
  ); // hub-spoke: what cannot run where it is placed, before anything is created
  const runtimes =
    givenRuntimes(opts.runtimes) ??
    runtimeSetFor(profile, { stateDir, onWarning, ...(opts.pull ? { pull: opts.pull } : {}), ...(host !== undefined ? { host } : {}) });
  // What discovery has to say while the stack runs (a backend down, a watch retrying, stale
  // answers, registrations restored) is a warning in the run's events and the supervisor log.
  const onDiscoveryEvent = (e: DiscoveryEvent) =>
    onEvent({ type: 'warning', message: `discovery (${e.backend}): ${e.message}`, ...(e.service ? { service: e.service } : {}) });
  const discovery = opts.discovery ?? (await (await import('../discovery/index.js')).createDiscovery(profile.discovery, { onEvent: onDiscoveryEvent }));
  const close = async () => {
    if (!opts.discovery) await discovery.close();
    if (!opts.runtimes) await runtimes.close(); // services run in their own process groups: closing only lets go of them
  };
  try {
    await discovery.check(); // unreachable discovery: exit 3 before anything starts
    const hooks = await createTemplateHooks(profile, [...plan.services.map((s) => s.name), ...singletonsOf(profile, plan)], {
      stateDir,
      discovery,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.vars ? { vars: opts.vars } : {}),
      ...(opts.varsFile ? { varsFile: opts.varsFile } : {}),
    });
    return { engine: { runtimes, discovery, ...(hooks ? { renderConfigs: hooks.renderConfigs, rerender: hooks.rerender } : {}) }, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * A stack across hosts: this run stops its share when `stack down --all-hosts` asks every host
 * (supervisor.ts, "stopping every host's share"). Returns the function that stops watching.
 */
function answerDownRequests(
  profile: Profile,
  discovery: DiscoveryManager | undefined,
  startedAt: number,
  onEvent: (e: EngineEvent) => void,
  stop: (opts: { timeoutMs?: number }) => Promise<void>,
): () => void {
  if (Object.keys(profile.hosts).length === 0 || !discovery?.canRegister) return () => undefined;
  return watchDownRequests(discovery, profile.name, startedAt, (request) => {
    onEvent({ type: 'warning', message: `\`stack down --all-hosts\` from ${request.by} (at ${request.requestedAt}): stopping this host's share` });
    void stop(request.timeoutMs !== undefined ? { timeoutMs: request.timeoutMs } : {});
  });
}

/** Leader-follower: the singletons this host's supervisor runs whenever it leads (their templates are checked up front too). */
function singletonsOf(profile: Profile, plan: StartStackInput['plan']): string[] {
  if (plan.host === undefined || !electsLeader(profile)) return [];
  const unselected = new Set(plan.skipped.filter((s) => s.reason === 'not selected').map((s) => s.service));
  return Object.values(profile.services)
    .filter((s) => s.singleton && s.enable && !unselected.has(s.name))
    .map((s) => s.name);
}

export interface StackStatusOptions {
  runtimes?: GivenRuntimes;
  cwd?: string;
  /** A profile with `hosts:`: the declared host this machine is (`--host`, `STACK_HOST`). */
  host?: string;
  /** A profile with `hosts:`: where the other hosts' instances are read; default created from the profile. */
  discovery?: DiscoveryManager;
  /** An engine that could not be looked at, … */
  onWarning?: (message: string) => void;
}

/**
 * What `stack status` shows: the state file checked against the runtimes; for a profile with
 * `hosts:`, also every instance on every host, from discovery (`hosts`: status-hosts.ts); for a
 * leader-follower stack, who leads, since when, and its followers (`leadership`: leadership-state.ts).
 */
export async function stackStatus(profile: Profile, opts: StackStatusOptions = {}): Promise<StackStatusView> {
  const stateDir = stateDirOf(profile, opts.cwd);
  const runtimes =
    givenRuntimes(opts.runtimes) ??
    runtimeSetFor(profile, {
      stateDir,
      ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
      ...(opts.host !== undefined ? { host: opts.host } : {}),
    });
  try {
    const local = await readStackStatus({
      stack: profile.name,
      stateDir,
      runtimes,
      ...(electsLeader(profile) ? { leaderDir: leaderRunDir(stateDir) } : {}),
      runtimeNames: [
        ...new Set(
          Object.values(profile.services)
            .filter((s) => s.enable)
            .map((s) => s.runtime),
        ),
      ],
    });
    let view: StackStatusView = local;
    if (Object.keys(profile.hosts).length > 0) {
      const { records, error } = await listDiscovery(profile, opts.discovery);
      const hosts = acrossHosts({
        profile,
        local,
        records,
        ...(error !== undefined ? { discoveryError: error } : {}),
        ...(opts.host !== undefined ? { host: opts.host } : {}),
        now: Date.now(),
      });
      view = { ...local, empty: local.empty && !hosts.instances.some((i) => i.source === 'discovery'), hosts };
    }
    if (!electsLeader(profile)) return view;
    const leadership = await leadershipOf(profile, stateDir);
    return { ...view, empty: view.empty && leadership.leader === null, leadership };
  } finally {
    if (!opts.runtimes) await runtimes.close();
  }
}

/** Everything discovery lists now, or why it could not be read. */
async function listDiscovery(profile: Profile, given: DiscoveryManager | undefined): Promise<{ records?: ServiceInstance[]; error?: string }> {
  let discovery = given;
  try {
    discovery ??= await (await import('../discovery/index.js')).createDiscovery(profile.discovery);
    return { records: await discovery.list() };
  } catch (err) {
    return { error: errorText(err) };
  } finally {
    if (!given) await discovery?.close().catch(() => undefined);
  }
}

const LEADERSHIP_READ_MS = 5000;

/** The leadership of a leader-follower stack: asked of its election and discovery (each read bounded), else this host's last view. */
async function leadershipOf(profile: Profile, stateDir: string): Promise<LeadershipStatusView> {
  const [{ createElection }, { createDiscovery }] = await Promise.all([import('../discovery/election.js'), import('../discovery/index.js')]);
  const bounded = <T>(p: Promise<T>) => withTimeout(p, LEADERSHIP_READ_MS);
  const candidate = { id: `status-${process.pid}`, host: 'status', address: '127.0.0.1' }; // it never campaigns
  const election = await createElection(profile.discovery, { stack: profile.name, candidate }).catch(() => undefined);
  const discovery = await createDiscovery(profile.discovery).catch(() => undefined);
  try {
    return await readLeadership({
      profile,
      stateDir,
      ...(election
        ? { reader: { leader: () => bounded(election.leader()), leaderRecord: async () => (await bounded(election.fencedRead(LEADER_KEY)))?.value } }
        : {}),
      ...(discovery ? { discovery: { lookup: (service: string) => bounded(discovery.lookup(service)) } } : {}),
    });
  } finally {
    await Promise.all([election && bounded(election.close()).catch(() => undefined), discovery && bounded(discovery.close()).catch(() => undefined)]);
  }
}
