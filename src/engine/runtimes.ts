/**
 * Runtimes by name, created on first use (runtime/create.ts) from their definitions
 * (drivers/runtime/registry.ts). A runtime's client library (dockerode behind Docker) is loaded
 * only when a service of the run uses it, so a process-only stack never loads it. An unknown name
 * is an input error, never another runtime.
 */
import { RUNTIMES, type RuntimeHosts, type RuntimeSections } from '../drivers/runtime/registry.js';
import { createRuntime } from '../runtime/create.js';
import type { Profile, RuntimeName } from '../profile/types.js';
import type { Runtime } from '../runtime/types.js';

export interface RuntimeSet {
  get(name: RuntimeName): Promise<Runtime>;
  /** The runtimes created so far. */
  created(): Runtime[];
  close(): Promise<void>;
}

/** The state folder, and the profile's runtime sections (`docker: profile.docker`): `runtimeSetFor` fills them from a profile. */
export interface RuntimeSetOptions extends Partial<RuntimeSections> {
  /** The stack's state folder: where the process runtime keeps pid files and logs. */
  stateDir: string;
  /** Overrides every Docker service's `pull` (`stack up --pull`). */
  pull?: 'missing' | 'always' | 'never';
  /** Warnings of the runtimes (a daemonised survivor found and stopped, …). */
  onWarning?: (message: string) => void;
  /** The profile's hosts (`hosts:`), and the one this process runs on. */
  hosts?: RuntimeHosts;
}

/** What `runtimeSetFor` takes besides the profile. */
export interface ProfileRuntimeOptions extends Pick<RuntimeSetOptions, 'stateDir' | 'pull' | 'onWarning'> {
  /** The declared host this process runs on (`--host`, `STACK_HOST`), for a profile with `hosts:`. */
  host?: string;
}

/**
 * The runtimes of a profile: every runtime's section (`docker:`, `swarm:`, … as the registry
 * lists them) and its hosts, so no caller wires sections by hand.
 */
export function runtimeSetFor(profile: Profile, opts: ProfileRuntimeOptions): RuntimeSet {
  const sections: Record<string, unknown> = {};
  for (const r of RUNTIMES) if (r.settings) sections[r.name] = (profile as unknown as Record<string, unknown>)[r.name];
  const { host, ...rest } = opts;
  const hosts = runtimeHostsOf(profile, host);
  return createRuntimeSet({ ...(sections as Partial<RuntimeSections>), ...rest, ...(hosts ? { hosts } : {}) });
}

/** A profile's hosts as the runtimes see them; undefined for a stack on one host. */
export function runtimeHostsOf(profile: Pick<Profile, 'hosts' | 'coordination'>, local?: string): RuntimeHosts | undefined {
  if (Object.keys(profile.hosts).length === 0) return undefined;
  return { hosts: profile.hosts, hub: profile.coordination.strategy === 'hub-spoke', ...(local !== undefined ? { local } : {}) };
}

export function createRuntimeSet(opts: RuntimeSetOptions): RuntimeSet {
  const made = new Map<RuntimeName, Promise<Runtime>>();
  const resolved: Runtime[] = [];
  const sections = opts as unknown as Partial<Record<string, object>>;
  const create = async (name: RuntimeName): Promise<Runtime> => {
    // An unknown name rejects: no silent fallback.
    return createRuntime(name, {
      stateDir: opts.stateDir,
      settings: sections[name] ?? {},
      ...(opts.pull !== undefined ? { pull: opts.pull } : {}),
      ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
      ...(opts.hosts ? { hosts: opts.hosts } : {}),
    });
  };
  return {
    get(name) {
      let runtime = made.get(name);
      if (!runtime) {
        runtime = create(name).then((r) => {
          resolved.push(r);
          return r;
        });
        made.set(name, runtime);
      }
      return runtime;
    },
    created: () => [...resolved],
    async close() {
      const all = await Promise.allSettled(made.values());
      await Promise.allSettled(all.flatMap((r) => (r.status === 'fulfilled' ? [r.value.close()] : [])));
    },
  };
}

/** A fixed set of runtimes (tests, library users with their own). */
export function fixedRuntimeSet(runtimes: Partial<Record<RuntimeName, Runtime>>): RuntimeSet {
  return {
    async get(name) {
      const runtime = runtimes[name];
      if (!runtime) throw new Error(`no '${name}' runtime was given`);
      return runtime;
    },
    created: () => Object.values(runtimes).filter((r): r is Runtime => r !== undefined),
    async close() {
      // Not ours: the caller closes them.
    },
  };
}

/** What a caller may hand in instead of runtimes created from the profile: a set, or runtimes by name. */
export type GivenRuntimes = RuntimeSet | Partial<Record<RuntimeName, Runtime>>;

export function givenRuntimes(given: GivenRuntimes | undefined): RuntimeSet | undefined {
  if (!given) return undefined;
  if ('get' in given && typeof given.get === 'function') return given;
  return fixedRuntimeSet(given as Partial<Record<RuntimeName, Runtime>>);
}
