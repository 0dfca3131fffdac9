/**
 * The normalised profile: what every other part of `stack` works with.
 *
 * The raw, user-written shape is described by the zod schema in `schema.ts` (which also
 * generates the shipped JSON Schema). `normalize.ts` turns a raw profile into this shape:
 * shorthands expanded (`healthEndpoint`, bare dependency names), durations in milliseconds,
 * defaults filled in. Nothing here is optional "because the user may have left it out";
 * optional fields are optional because they are genuinely absent for some services.
 */
import type { DiscoveryConfig } from '../discovery/registry.js';
import type { HealthCheckSpec } from '../health/registry.js';
import type { DockerRuntimeSettings } from '../drivers/runtime/docker.js';
import type { RuntimeName, RuntimeSections } from '../drivers/runtime/registry.js';
import type { TemplateFormat } from '../formats/registry.js';

import type { DependencyType } from '../graph/types.js';

/** How a dependent depends on a service: owned by the graph (below the profile), named here too. */
export { DEPENDENCY_TYPES, type DependencyType } from '../graph/types.js';

export type ServiceKind = 'service' | 'task';
export type CoordinationStrategy = 'hub-spoke' | 'leader-follower' | 'peer-to-peer' | 'mesh';
export type VariableType = 'string' | 'number' | 'boolean' | 'url' | 'secret';
export type RestartPolicyName = 'no' | 'on-failure' | 'always' | 'unless-stopped';

// Driver names and driver-owned shapes are derived from the registries of drivers, one per kind.
export type { DiscoveryBackendName } from '../discovery/registry.js';
export type { RuntimeName } from '../drivers/runtime/registry.js';
/** Output formats of templates; `text`: free text with no structure. */
export type { TemplateFormat } from '../formats/registry.js';
export type { HealthStrategyName } from '../health/registry.js';
/** How to decide that a service is healthy: common settings and the strategy's own keys. */
export type { HealthCheckSpec } from '../health/registry.js';

/** restart: restart the dependent; rerender: re-render its templates (their change mode applies); none. */
export type DependencyReaction = 'restart' | 'rerender' | 'none';

/** What a changed template does to its running service (consul-template / Nomad `change_mode`). */
export type ChangeMode = 'restart' | 'signal' | 'noop' | 'script';

export interface DependencySpec {
  /** Name of the service depended upon. */
  name: string;
  type: DependencyType;
  /** How this dependent judges the dependency's health (overrides the dependency's own check). */
  healthCheck?: HealthCheckSpec;
  /** What this dependent does when the dependency is restarted, replaced or moves (after startup). */
  onDependencyRestart?: DependencyReaction;
  /** Index in the raw list, for error paths (`services.pds.dependencies[1]`). */
  index: number;
}

export interface TemplateSpec {
  /** Output path, relative to the service's config directory (never escapes it). */
  destination: string;
  format: TemplateFormat;
  /** Structured tree whose string leaves are Handlebars templates. */
  data?: unknown;
  /** Free-text Handlebars source (inline, or the contents of `templateFile`). */
  template?: string;
  /** Absolute path of the template file, when `template:` named a file. */
  templateFile?: string;
  /** Also load the rendered file into the service's environment (Nomad's `env = true`). */
  env: boolean;
  /** File mode; secrets force 0600. */
  mode?: number;
  /** (The keys below are filled in by normalize; optional so hand-built specs stay valid.)
   * Services outside the profile this template may name (`service.<name>`), resolved through discovery. */
  external?: string[];
  /** After startup, what a changed file does to its service. */
  changeMode?: ChangeMode;
  /** For `signal`. */
  changeSignal?: string;
  /** For `script`: argv, no shell unless written. */
  changeScript?: string[];
  /** Quiescence: re-render `waitMinMs` after the last change, at most `waitMaxMs` after the first (0: no max). */
  waitMinMs?: number;
  waitMaxMs?: number;
  /** Random delay up to this before a restart or signal. */
  splayMs?: number;
  /** Index in the raw list, for error paths. */
  index: number;
}

export interface PortMapping {
  /** Port inside the container / the port the service listens on. */
  container: number;
  /** Port published on the host; default the same as `container`. */
  host: number;
  /** Host address to publish on; default 127.0.0.1. */
  hostIp: string;
  protocol: 'tcp' | 'udp';
}

export interface VolumeSpec {
  /** Host path (absolute, or relative to the profile's folder) or named volume. */
  source: string;
  target: string;
  readOnly: boolean;
  type: 'bind' | 'volume' | 'tmpfs';
}

export interface RestartPolicy {
  policy: RestartPolicyName;
  /** on-failure: give up after this many restarts (0 = no limit). */
  maxRetries: number;
  /** First backoff delay; doubles per restart up to `maxBackoffMs`. */
  backoffMs: number;
  maxBackoffMs: number;
  /** After startup: restart a service whose health check fails `failuresBeforeRestart` times in a row (defaults true, 3; optional so hand-built specs stay valid). */
  onUnhealthy?: boolean;
  failuresBeforeRestart?: number;
}

export interface ResourceLimits {
  /** CPUs, e.g. 0.5. */
  cpus?: number;
  /** Bytes. */
  memory?: number;
  pids?: number;
}

export interface SecurityOptions {
  readOnlyRootFilesystem: boolean;
  noNewPrivileges: boolean;
  capDrop: string[];
  capAdd: string[];
  user?: string;
  tmpfs: string[];
}

export interface ServiceSpec {
  name: string;
  enable: boolean;
  kind: ServiceKind;
  description?: string;
  runtime: RuntimeName;
  image?: string;
  /** argv. With `shell: true` a single string run by `/bin/sh -c`. */
  command?: string[];
  entrypoint?: string[];
  shell: boolean;
  /** Working directory (process runtime: absolute; relative paths resolve against the profile's folder). */
  workingDir?: string;
  /** Main port the service listens on (registered in discovery, default health-check port). */
  port?: number;
  ports: PortMapping[];
  /** Host the service is reachable at, for discovery and templates; default 127.0.0.1. */
  address: string;
  /** Scheme of its URL in discovery and templates (`postgres` → `postgres://host:port`); default http. */
  scheme?: string;
  /** `host` for host networking; otherwise the stack's network. */
  network?: string;
  tags: string[];
  meta: Record<string, string>;
  environment: Record<string, string>;
  /** Environment variable names whose values are secrets (never printed). */
  secretEnvironment: string[];
  healthCheck?: HealthCheckSpec;
  dependencies: DependencySpec[];
  templates: TemplateSpec[];
  restart: RestartPolicy;
  stopSignal: string;
  stopGracePeriodMs: number;
  volumes: VolumeSpec[];
  resources: ResourceLimits;
  security: SecurityOptions;
  /** Docker: run an init process (tini) as PID 1. */
  init: boolean;
  /** Docker: image's own HEALTHCHECK. */
  pull: 'missing' | 'always' | 'never';
  replicas: number;
  /**
   * The declared host it runs on (`hosts:`), or `all` (mesh: one instance on every host). Absent in
   * a profile without hosts: it runs where `stack up` runs.
   */
  host?: string;
  /** Run by someone else (another stack, another team): never started here, met from discovery. */
  external?: { stack?: string };
  /**
   * leader-follower: one instance in the whole stack, run by the elected leader on its own host
   * (at that host's address), and by the next leader after a failover. Absent: false.
   */
  singleton?: boolean;
  /**
   * Its address was not written: it is the address of the host it runs on (filled in for a named
   * host; for `host: all` and a singleton, the engine fills in the host it runs on).
   */
  addressFromHost?: boolean;
}

/** A machine of a multi-host profile (`hosts:`). */
export interface HostSpec {
  name: string;
  /** The address other hosts reach it at. */
  address: string;
  /** Its Docker engine (`unix:///…`, `tcp://host:port`), for hub-spoke. */
  docker?: string;
}

/** `host: all`: a service that runs on every host (mesh). */
export const ALL_HOSTS = 'all';

export interface VariableSpec {
  name: string;
  type: VariableType;
  required: boolean;
  default?: string | number | boolean;
  description?: string;
  /** `secret` variables: generate a random value once and keep it (dev stacks). */
  generate?: { bytes: number; encoding: 'hex' | 'base64url' };
}

/** The normalised `discovery:` section: common settings and every backend's options (see discovery/registry.ts). */
export type { DiscoveryConfig } from '../discovery/registry.js';

export interface CoordinationConfig {
  strategy: CoordinationStrategy;
  enableHealthChecks: boolean;
  dependencyTimeoutMs: number;
}

/** The profile's `docker:` section (the Docker runtime's settings). */
export type DockerConfig = DockerRuntimeSettings;

/** Where a profile came from; template files resolve against `dir`. */
export interface ProfileSource {
  /** Absolute path of the main profile file, or undefined for a built-in. */
  file?: string;
  /** Built-in profile name, when loaded by name. */
  builtin?: string;
  /** Folder that relative paths (templates, volumes, extends) resolve against. */
  dir: string;
  /** Every file that contributed (the profile and what it extends), child first. */
  files: string[];
}

/** A profile; each runtime with settings has its section (`docker`), see drivers/runtime/registry.ts. */
export interface Profile extends RuntimeSections {
  name: string;
  description?: string;
  domain: string;
  runtime: RuntimeName;
  discovery: DiscoveryConfig;
  coordination: CoordinationConfig;
  variables: Record<string, VariableSpec>;
  services: Record<string, ServiceSpec>;
  /** Declared hosts, by name; empty when the stack runs on one host. */
  hosts: Record<string, HostSpec>;
  /** Folder for state, logs and rendered configs; default `.stack/<name>` under the working directory. */
  stateDir?: string;
  source: ProfileSource;
}
