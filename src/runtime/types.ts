/**
 * Runtime seam: how a service is started and stopped (local process or Docker container).
 * The engine only speaks this interface; health checks never see runtime types, they get an
 * endpoint (`HealthTarget`) derived from a handle.
 */
import type { RuntimeName, ServiceSpec } from '../profile/types.js';

/**
 * A config file rendered for a service before it starts: written under the state folder
 * (`hostPath`), or, for a runtime that declares `capabilities.configsInMemory` (Swarm: configs and
 * secrets live in the cluster), handed over as `content` and never written on this machine.
 */
export interface RenderedFile {
  /** Absolute path on the host; absent when the file was rendered in memory only. */
  hostPath?: string;
  /** The rendered bytes, when they were not written (`configsInMemory`). */
  content?: Buffer;
  /** Path relative to the service's config directory (the template's `destination`). */
  destination: string;
  mode: number;
}

export interface StartRequest {
  stack: string;
  service: ServiceSpec;
  /** Replica index, 0-based. */
  replica: number;
  /** Final environment: the service's own, plus discovery injections and `env: true` templates. */
  environment: Record<string, string>;
  files: RenderedFile[];
  /** Host folder holding the service's rendered configs. */
  configDir: string;
  /** Host folder for logs and runtime state of this stack (`.stack/<stack>/`). */
  stateDir: string;
  /** Folder relative paths resolve against (the profile's folder). */
  profileDir: string;
}

/** What identifies a started service instance; persisted in the state file so another process can find it. */
export interface ServiceHandle {
  runtime: RuntimeName;
  stack: string;
  service: string;
  replica: number;
  /** Process id (process runtime) or container id (docker). */
  id: string;
  pid?: number;
  /** Process group id (process runtime). */
  pgid?: number;
  containerName?: string;
  startedAt: string;
  /** Where the service's output goes (process runtime). */
  logFile?: string;
  /**
   * docker: where each published container port is reachable on the host, keyed by container
   * port (`"3000"`). Kept in the handle so `endpoint()` works in a process that did not start it.
   */
  publishedPorts?: Record<string, { host: string; port: number }>;
  /**
   * A stack across hosts: the declared host whose engine runs the instance (docker: the engine it
   * was created on), so stop, inspect and logs reach it from any process, after a `kill -9` too.
   */
  host?: string;
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

export interface InstanceStatus {
  running: boolean;
  exit?: ExitInfo;
  /** docker: the container's own HEALTHCHECK status. */
  health?: 'starting' | 'healthy' | 'unhealthy' | 'none';
  /** A runtime that runs a service as tasks on several machines (swarm): each task, current and past. */
  tasks?: InstanceTask[];
}

/** One task of a service a cluster runs (swarm): where it runs and how it does. */
export interface InstanceTask {
  /** The replica's slot (1…N). */
  slot: number;
  /** The machine's name. */
  node: string;
  /** The cluster's word for it: running, starting, failed, shutdown, … */
  state: string;
  /** What the cluster wants it to be: running for a current task. */
  desired: string;
  health: 'healthy' | 'starting' | 'unhealthy' | 'none';
  error?: string;
}

/**
 * One instance of a service where the runtime placed it (swarm: a running task on its node),
 * registered in discovery on its own (src/engine/instances.ts).
 */
export interface Placement {
  /** Stable while the instance keeps its place (swarm: the task's slot): its registration id is `<stack>-<service>-<key>`. */
  key: string;
  /** Where clients reach it (swarm: the node's address, where host-mode ports are published). */
  address: string;
  /** Where the service's `port` is reachable at `address` (swarm: the published host port). */
  port?: number;
  /** Where clients reach it, as a URL (scheme from the service, default http), when there is a port. */
  url?: string;
  /** What else a template may want (swarm: `node`, `slot`, `task`, `taskAddress`, `overlay`, `overlayUrl`). */
  meta: Record<string, string>;
}

export interface StopOptions {
  signal: string;
  gracePeriodMs: number;
}

export interface LogOptions {
  follow: boolean;
  tail?: number;
  signal?: AbortSignal;
}

export interface Runtime {
  readonly name: RuntimeName;
  /**
   * True when the runtime applies `service.restart` itself (docker: the engine's RestartPolicy).
   * The engine then does not restart instances; `wait` resolves only when one has stopped for good.
   */
  readonly appliesRestartPolicy?: boolean;
  /**
   * Reach the engine ahead of the first request (a client library's import, a connection), so a
   * later request does not wait for it: `down` calls it while the stack's owner stops its services.
   * Never fails (a later request reports what is wrong).
   */
  connect?(): Promise<void>;
  /** Once before any start: check the engine is reachable (UnreachableError), create networks, pull images. */
  prepare(stack: string, services: ServiceSpec[], opts: { signal?: AbortSignal }): Promise<void>;
  start(req: StartRequest): Promise<ServiceHandle>;
  /** Resolves when the instance exits (for the restart policy and run-to-completion tasks). */
  wait(handle: ServiceHandle): Promise<ExitInfo>;
  stop(handle: ServiceHandle, opts: StopOptions): Promise<void>;
  /** Send a signal to a running instance (a template's `changeMode: signal`); without it the engine signals a process service's group. */
  signal?(handle: ServiceHandle, signal: string): Promise<void>;
  inspect(handle: ServiceHandle): Promise<InstanceStatus>;
  logs(handle: ServiceHandle, opts: LogOptions): AsyncIterable<string>;
  /** Instances of a stack that exist now, found without our own state (Docker labels; pid files). */
  discover(stack: string): Promise<ServiceHandle[]>;
  /**
   * A runtime that places a service's instances itself (swarm: tasks on nodes): where each runs
   * now. The engine then registers one record per instance and follows them as they move
   * (src/engine/instances.ts); without it, the service is registered at its `address:`. `service`
   * gives the port and scheme; without it (`down` of a service the profile no longer has) only
   * keys and addresses are meaningful.
   */
  placements?(handle: ServiceHandle, service?: ServiceSpec): Promise<Placement[]>;
  /** Remove what `prepare` created (networks), after every instance is stopped. */
  teardown(stack: string): Promise<void>;
  /** Host and port a health check should probe to reach `port` of this instance (loopback). */
  endpoint(handle: ServiceHandle, port: number): { host: string; port: number };
  close(): Promise<void>;
}
