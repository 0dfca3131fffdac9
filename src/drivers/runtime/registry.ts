/**
 * Every runtime, one line each. The profile's `runtime:` enums, each runtime's settings section
 * (`docker:`), what `stack plan` says a service runs, and the runtime a service gets when it names
 * none are derived from this list. Adding a runtime: its definition in `src/drivers/runtime/<name>.ts`
 * (copy `process.ts`), its implementation of `Runtime` in `src/runtime/<name>.ts` exporting
 * `fromProfile` (found by its name, see `src/runtime/create.ts`), one line here, and one line in
 * `test/runtime/` running the runtime suite (docs/architecture.md).
 *
 * This folder holds declarations only and imports nothing but util/ and errors.ts: the profile
 * schema is built from it, and the implementations (which run the profile's services) sit above
 * the profile. Importing it is cheap (`stack validate` does).
 */
import { InvalidInputError, type Problem } from '../../errors.js';
import type { OptionSchemas, UnionToIntersection } from '../../util/driver.js';
import { dockerRuntime } from './docker.js';
import { processRuntime } from './process.js';
import { swarmRuntime } from './swarm.js';

/** When a runtime with images pulls them (a service's `pull`, or `stack up --pull` for all). */
export type PullPolicy = 'missing' | 'always' | 'never';

/** What a definition reads of a service to say what it runs (a ServiceSpec in normal use). */
export interface RunnableService {
  image?: string | undefined;
  command?: string[] | undefined;
}

/** What a runtime's own service rules read of a service (a ServiceSpec in normal use). */
export interface CheckedService extends RunnableService {
  name: string;
  network?: string | undefined;
  healthCheck?: { strategy: string; scheme?: string | undefined; expectedStatus?: unknown; host?: string | undefined } | undefined;
}

/** What a runtime's factory gets. */
export interface RuntimeCreateContext<Settings> {
  /** The stack's state folder (pid files, logs). */
  stateDir: string;
  /** The profile's section named after the runtime (`docker:`), or empty. */
  settings: Partial<Settings>;
  /** Overrides every service's `pull` (`stack up --pull`), for runtimes with images. */
  pull?: PullPolicy;
  /** Something the runtime did that the user should hear of (a daemonised survivor stopped): a warning event. */
  onWarning?: (message: string) => void;
  /** The profile spans hosts (`hosts:`): where each service's host is, and which host this process runs on. */
  hosts?: RuntimeHosts;
}

/**
 * A stack across hosts, as a runtime sees it: the declared hosts (their addresses, and the
 * address of each one's Docker engine when it has one), and how they are driven.
 */
export interface RuntimeHosts {
  /** Every declared host, by name. */
  hosts: Readonly<Record<string, { address: string; docker?: string }>>;
  /** One process drives every host's services (hub-spoke); otherwise each host drives its own share. */
  hub: boolean;
  /** The declared host this process runs on (`--host`, `STACK_HOST`), when known. */
  local?: string;
}

/**
 * A runtime's definition. `Settings` is its section of the profile (the top-level key named after
 * the runtime, e.g. `docker: { host: … }`); a runtime without settings has no section.
 */
export interface RuntimeDefinition<Name extends string = string, Settings extends object = object> {
  readonly name: Name;
  /** One line, for documentation. */
  readonly description: string;
  readonly capabilities: {
    /** Runs images (so a service with `image:` and no `runtime:` gets the first such runtime). */
    readonly images: boolean;
    /** Services run on this host in their `workingDir` (health checks' relative paths resolve there). */
    readonly hostWorkingDir: boolean;
    /**
     * Runs a service's `replicas: N` itself (Swarm: one service with N tasks, placed and
     * rescheduled by the cluster), so the engine starts one instance and no replicas beside it.
     */
    readonly replicas?: boolean;
    /**
     * Takes rendered templates as content (`RenderedFile.content`) instead of files: the engine
     * never writes them on this machine (Swarm turns them into cluster configs and secrets, so a
     * secret never touches this machine's disk). Re-renders after startup follow the same path.
     */
    readonly configsInMemory?: boolean;
  };
  /** The zod schema of each key of the runtime's profile section; absent: no section. */
  readonly settings?: OptionSchemas<Settings>;
  /**
   * The runtime's own rules on a service it runs, checked by `stack validate` with the profile's
   * other rules (paths dotted from the profile's root). Optional; declared here, so free of
   * client libraries and of the implementation.
   */
  serviceProblems?(service: CheckedService, settings: Partial<Settings>): Problem[];
  /** What `stack plan` prints as what a service runs (an image, a program). */
  describeRun(service: RunnableService): string | undefined;
}

export const RUNTIMES = [dockerRuntime, processRuntime, swarmRuntime] as const;

type AnyRuntime = (typeof RUNTIMES)[number];
export type RuntimeName = AnyRuntime['name'];
export const RUNTIME_NAMES = RUNTIMES.map((r) => r.name) as readonly RuntimeName[] as readonly [RuntimeName, ...RuntimeName[]];
/** The runtime of a profile that names none. */
export const DEFAULT_RUNTIME: RuntimeName = 'docker';

type SettingsOf<D> = D extends RuntimeDefinition<string, infer S> ? S : never;
/** The profile's runtime sections: one key per runtime that has settings (`docker`). */
export type RuntimeSections = UnionToIntersection<
  AnyRuntime extends infer D ? (D extends RuntimeDefinition<infer N, infer S> ? (keyof S extends never ? never : { [K in N]: S }) : never) : never
>;
export type RuntimeSettings<N extends RuntimeName> = SettingsOf<Extract<AnyRuntime, { name: N }>>;

/** The definition of a runtime; an unknown name is an input error, never a silent fallback. */
export function runtimeDefinition(name: string): RuntimeDefinition<string, object> {
  const found = RUNTIMES.find((r) => r.name === name) as RuntimeDefinition<string, object> | undefined;
  if (!found) {
    throw new InvalidInputError([{ code: 'unknown_runtime', path: 'runtime', message: `unknown runtime '${name}' (known: ${RUNTIME_NAMES.join(', ')})` }]);
  }
  return found;
}

/** The runtime a service gets when neither it nor the profile names one. */
export function defaultRuntimeFor(service: { image?: string | undefined }): RuntimeName {
  const wanted = service.image !== undefined;
  return (RUNTIMES.find((r) => r.capabilities.images === wanted) ?? RUNTIMES[0]).name;
}
