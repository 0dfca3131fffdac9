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
import type { DiscoveryEvent } from '../discovery/types.js';
import type { Profile, RuntimeName } from '../profile/types.js';
import type { Runtime } from '../runtime/types.js';
import { buildGraph } from '../graph/graph.js';
import { startStack, type StackController, type StartStackInput, type StartStackOptions } from './engine.js';
import { onHost } from './hosts.js';
import { createRuntimeSet, fixedRuntimeSet, type RuntimeSet } from './runtimes.js';
import { stateDirOf } from './state.js';
import { readStackStatus, type StackStatusView } from './status.js';
import { stopStack, type StopReport } from './stop.js';
import { createTemplateHooks } from './templates.js';
import type { EngineEvent, ServiceStatus, StartupReport } from './types.js';

type GivenRuntimes = RuntimeSet | Partial<Record<RuntimeName, Runtime>>;

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
    inner = startStack(local, { ...engineOpts, ...wiring.engine, stateDir, signal, onEvent });
    void inner.done.then(() => wiring.close()).then(resolveDone, resolveDone);
    return inner.ready;
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
  const runtimes =
    givenRuntimes(opts.runtimes) ??
    createRuntimeSet({ stateDir, docker: profile.docker, swarm: profile.swarm, onWarning, ...(opts.pull ? { pull: opts.pull } : {}) });
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
    const hooks = await createTemplateHooks(
      profile,
      plan.services.map((s) => s.name),
      {
        stateDir,
        discovery,
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        ...(opts.vars ? { vars: opts.vars } : {}),
        ...(opts.varsFile ? { varsFile: opts.varsFile } : {}),
      },
    );
    return { engine: { runtimes, discovery, ...(hooks ? { renderConfigs: hooks.renderConfigs, rerender: hooks.rerender } : {}) }, close };
  } catch (err) {
    await close();
    throw err;
  }
}

function givenRuntimes(given: GivenRuntimes | undefined): RuntimeSet | undefined {
  if (!given) return undefined;
  if ('get' in given && typeof given.get === 'function') return given;
  return fixedRuntimeSet(given as Partial<Record<RuntimeName, Runtime>>);
}

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
}

/** Stop a stack as `stack down` does, from any process: also one a supervisor or a dead `up` left. */
export async function downStack(profile: Profile, opts: DownStackOptions = {}): Promise<StopReport> {
  const stateDir = stateDirOf(profile, opts.cwd);
  const runtimes =
    givenRuntimes(opts.runtimes) ??
    createRuntimeSet({ stateDir, docker: profile.docker, swarm: profile.swarm, ...(opts.onWarning ? { onWarning: opts.onWarning } : {}) });
  const discovery = opts.discovery === undefined ? await openDiscovery(profile, opts.onWarning) : opts.discovery || undefined;
  try {
    return await stopStack({
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
  } finally {
    if (!opts.runtimes) await runtimes.close();
    if (opts.discovery === undefined) await discovery?.close();
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

/** What `stack status` shows: the state file checked against the runtimes. */
export async function stackStatus(profile: Profile, opts: { runtimes?: GivenRuntimes; cwd?: string } = {}): Promise<StackStatusView> {
  const stateDir = stateDirOf(profile, opts.cwd);
  const runtimes = givenRuntimes(opts.runtimes) ?? createRuntimeSet({ stateDir, docker: profile.docker, swarm: profile.swarm });
  try {
    return await readStackStatus({
      stack: profile.name,
      stateDir,
      runtimes,
      runtimeNames: [
        ...new Set(
          Object.values(profile.services)
            .filter((s) => s.enable)
            .map((s) => s.runtime),
        ),
      ],
    });
  } finally {
    if (!opts.runtimes) await runtimes.close();
  }
}
