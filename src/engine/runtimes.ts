/**
 * Runtimes by name, created on first use. The Docker runtime (and dockerode behind it) is
 * imported only when a service of the run uses it, so a process-only stack never loads it.
 */
import type { Profile, RuntimeName } from '../profile/types.js';
import type { Runtime } from '../runtime/types.js';

export interface RuntimeSet {
  get(name: RuntimeName): Promise<Runtime>;
  /** The runtimes created so far. */
  created(): Runtime[];
  close(): Promise<void>;
}

export interface RuntimeSetOptions {
  /** The stack's state folder: where the process runtime keeps pid files and logs. */
  stateDir: string;
  docker?: Profile['docker'];
  /** Overrides every Docker service's `pull` (`stack up --pull`). */
  pull?: 'missing' | 'always' | 'never';
}

export function createRuntimeSet(opts: RuntimeSetOptions): RuntimeSet {
  const made = new Map<RuntimeName, Promise<Runtime>>();
  const resolved: Runtime[] = [];
  const create = async (name: RuntimeName): Promise<Runtime> => {
    if (name === 'process') {
      const { createProcessRuntime } = await import('../runtime/process.js');
      return createProcessRuntime({ stateDirFor: () => opts.stateDir });
    }
    const { createDockerRuntime } = await import('../runtime/docker.js');
    const d = opts.docker ?? {};
    return createDockerRuntime({
      ...(d.host !== undefined ? { host: d.host } : {}),
      ...(d.tlsVerify !== undefined ? { tlsVerify: d.tlsVerify } : {}),
      ...(d.certPath !== undefined ? { certPath: d.certPath } : {}),
      ...(d.network !== undefined ? { network: d.network } : {}),
      ...(opts.pull !== undefined ? { pull: opts.pull } : {}),
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
