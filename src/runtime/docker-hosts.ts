/**
 * Docker across hosts (a profile with `hosts:`): which engine runs each service, behind the one
 * `docker` runtime the engine knows, so the engine itself is unchanged.
 *
 * - hub-spoke: one `stack up` (the hub) drives every host's engine. A service placed on host H
 *   runs on `hosts.H.docker` (unix://, tcp:// or ssh://); on the default engine (the profile's
 *   `docker.host`, else DOCKER_HOST, else the local socket) when H has none, which is right only
 *   when the hub runs on H (`--host H`): anything else is refused before anything starts.
 * - peer-to-peer and mesh: each host runs its own share on its own engine (`hosts.<this
 *   host>.docker`, else the default one), and never looks at another host's.
 *
 * Every handle remembers its host (`handle.host`), so stop, inspect, wait and logs go to the engine
 * that runs it, from any process: the state file carries it, and `discover` (after a `kill -9`)
 * tags what each engine lists with that engine's host. Preparing (images, networks) happens on
 * each engine the run uses; tearing down, on each engine the stack may use.
 */
import { InvalidInputError, type Problem } from '../errors.js';
import { errorText } from '../util/error-text.js';
import type { RuntimeHosts } from '../drivers/runtime/registry.js';
import { ALL_HOSTS, type ServiceSpec } from '../profile/types.js';
import type { Runtime, ServiceHandle } from './types.js';

/** The default engine's key: the profile's `docker.host`, DOCKER_HOST or the local socket. */
const DEFAULT_ENGINE = '';

export interface DockerHostsOptions {
  hosts: RuntimeHosts;
  /** The runtime of one engine: `url` is a host's `docker:` address, undefined for the default engine. */
  engineRuntime: (url: string | undefined) => Runtime;
  /** An engine that could not be looked at (its containers were not listed). */
  onWarning?: (message: string) => void;
}

interface Engine {
  key: string;
  runtime: Runtime;
  /** The hosts whose services run on it, in declaration order. */
  hosts: string[];
}

export function createDockerHostsRuntime(opts: DockerHostsOptions): Runtime {
  const { hosts: layout } = opts;
  const names = Object.keys(layout.hosts);
  const made = new Map<string, Engine>();

  /** The engine a host's services run on. */
  const keyOf = (host: string | undefined): string => {
    const owner = layout.hub ? host : layout.local;
    return (owner !== undefined ? layout.hosts[owner]?.docker : undefined) ?? DEFAULT_ENGINE;
  };
  const engine = (key: string): Engine => {
    let found = made.get(key);
    if (!found) {
      found = { key, runtime: opts.engineRuntime(key === DEFAULT_ENGINE ? undefined : key), hosts: names.filter((h) => keyOf(h) === key) };
      made.set(key, found);
    }
    return found;
  };
  const of = (handle: ServiceHandle): Runtime => engine(keyOf(handle.host)).runtime;
  /** Every engine the stack may use: each host's (hub), or this host's own. */
  const scanned = (): Engine[] => [...new Set(layout.hub ? names.map(keyOf) : [keyOf(layout.local)])].map(engine);
  /** The host a handle an engine found belongs to: this host when it shares the engine, else the first one on it. */
  const hostOn = (e: Engine): string | undefined =>
    layout.local !== undefined && e.hosts.includes(layout.local) ? layout.local : (e.hosts[0] ?? layout.local);
  const where = (e: Engine): string => (e.key === DEFAULT_ENGINE ? 'the default Docker engine' : `the Docker engine at ${e.key}`);

  const runtime: Runtime = {
    name: 'docker',
    appliesRestartPolicy: true,

    async prepare(stack, services, prepOpts) {
      const own = services.filter((s) => s.runtime === 'docker');
      const problems = layout.hub ? own.flatMap((s) => placementProblem(s, layout)) : [];
      if (problems.length > 0) throw new InvalidInputError(problems, 'cannot place containers on their hosts');
      const groups = new Map<string, ServiceSpec[]>();
      for (const s of own) groups.set(keyOf(s.host), [...(groups.get(keyOf(s.host)) ?? []), s]);
      // Every engine at once: one that is away fails `up` (exit 3) before anything starts.
      await Promise.all([...groups].map(([key, group]) => engine(key).runtime.prepare(stack, group, prepOpts)));
    },

    async start(req) {
      // Each host's share runs under its own name (a `host: all` service, a leader's singleton):
      // the label lets another host sharing this engine leave it alone (`discover`).
      const named = req.service.host !== undefined && req.service.host !== ALL_HOSTS;
      const host = layout.hub || named ? req.service.host : layout.local;
      const handle = await engine(keyOf(req.service.host)).runtime.start(
        host !== req.service.host && host !== undefined ? { ...req, service: { ...req.service, host } } : req,
      );
      return { ...handle, ...(host !== undefined ? { host } : {}) };
    },

    wait: (handle) => of(handle).wait(handle),
    stop: (handle, stopOpts) => of(handle).stop(handle, stopOpts),
    signal: async (handle, signal) => of(handle).signal?.(handle, signal),
    inspect: (handle) => of(handle).inspect(handle),
    logs: (handle, logOpts) => of(handle).logs(handle, logOpts),
    endpoint: (handle, port) => of(handle).endpoint(handle, port),

    async discover(stack) {
      const found: ServiceHandle[] = [];
      await Promise.all(
        scanned().map(async (e) => {
          try {
            const host = hostOn(e);
            for (const h of await e.runtime.discover(stack)) {
              // Another host's share on the same engine (labelled with its host) is not this host's to stop.
              if (!layout.hub && layout.local !== undefined && h.host !== undefined && h.host !== layout.local) continue;
              found.push(h.host !== undefined ? h : host !== undefined ? { ...h, host } : h);
            }
          } catch (err) {
            // One engine away must not hide the others' containers from `down` and `status`.
            opts.onWarning?.(`containers of stack '${stack}' on ${where(e)} (host ${e.hosts.join(', ') || '?'}) were not looked for: ${errorText(err)}`);
          }
        }),
      );
      return found.sort((a, b) => a.service.localeCompare(b.service) || a.replica - b.replica || (a.host ?? '').localeCompare(b.host ?? ''));
    },

    async teardown(stack) {
      const outcomes = await Promise.allSettled(scanned().map((e) => e.runtime.teardown(stack)));
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
      if (failed) throw failed.reason;
    },

    async close() {
      await Promise.allSettled([...made.values()].map((e) => e.runtime.close()));
      made.clear();
    },
  };
  return runtime;
}

/** hub-spoke: a service on a host without `docker:` runs on the default engine, which is right only on the hub's own host. */
export function placementProblem(service: ServiceSpec, layout: RuntimeHosts): Problem[] {
  const host = service.host;
  if (host === undefined || layout.hosts[host]?.docker !== undefined || host === layout.local) return [];
  const hub = layout.local === undefined ? 'the hub does not say which host it runs on' : `the hub runs on host '${layout.local}'`;
  return [
    {
      code: 'no_docker_engine',
      path: `hosts.${host}.docker`,
      message: `service '${service.name}' runs on host '${host}', which has no docker: engine address, and ${hub}: give hosts.${host}.docker (unix://, tcp:// or ssh://), or run the hub there with --host ${host} (STACK_HOST)`,
    },
  ];
}
