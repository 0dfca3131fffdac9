/**
 * atproto-stacks as a library: the entry points listed in README.md's "Library API" section, and
 * nothing else (test/api.test.ts checks the list). The CLI is a thin layer over these functions;
 * internal helpers are reached through their own modules, not from here.
 *
 * Naming follows the ATproto stacks documentation's builders: mkDeploymentProfile,
 * mkDependency, mkDependencyGraph, mkHealthCheck have TypeScript counterparts here.
 */

// Errors: every failure is a StackError with a `code`, an exit code and, for input, located problems.
/** Exit codes of the CLI, also carried by every StackError. */
export { ExitCode } from './errors.js';
/** The base error: `code`, `exitCode`, optional `path` and `problems`. */
export { StackError } from './errors.js';
/** The subclasses, one per exit code or failure kind. */
export { InvalidInputError, UsageError, UnreachableError, StackFailedError, InterruptedError, UnsupportedError, FileSystemError } from './errors.js';
/** The exit code the CLI would use for any thrown value. */
export { exitCodeOf } from './errors.js';
/** A problem (or its location) as the CLI prints it: `file:line:column path: message`. */
export { formatProblem, formatLocation, type Problem, type SourceLocation } from './errors.js';

// Profiles: load, validate and build them.
export type * from './profile/types.js';
/** Load and validate a profile by name (built-in) or path; throws InvalidInputError listing every problem. */
export { loadProfile, type LoadOptions, type LoadResult } from './profile/load.js';
/** Like loadProfile, but returns the problems and warnings instead of throwing. */
export { inspectProfile, inspectProfileObject } from './profile/load.js';
/** Where a profile reference (built-in name or path) points. */
export { resolveProfileRef } from './profile/load.js';
/** The built-in profiles' names and one-line descriptions. */
export { builtinProfileNames, builtinDescription } from './profile/builtin.js';
/** `stack validate` as a function: a report of every problem and warning. */
export { validateProfile } from './profile/api.js';
/** Builders named after the ATproto stacks documentation's: a profile, a dependency, a graph, a health check. */
export { mkDeploymentProfile, mkDependency, mkDependencyGraph, mkHealthCheck } from './profile/api.js';
/** The folder holding a stack's state (state file, lock, secrets, rendered configs). */
export { stateDirOf } from './profile/paths.js';

// Graph and plan: what would start, in which order, and why.
export type * from './graph/types.js';
export type * from './plan/types.js';
/** The typed dependency graph of a profile (with the problems found building it). */
export { buildGraph } from './graph/graph.js';
/** The start plan: order, circular groups, blocked and skipped services, the critical chain. */
export { planStack, type PlanOptions } from './plan/plan.js';
/** The graph as text, Mermaid or DOT (`stack graph`). */
export { renderGraph, type GraphFormat } from './plan/render.js';

// Running a stack: exactly what `stack up`, `stack down` and `stack status` do.
export type * from './engine/types.js';
/** Start a stack as `stack up` does; returns a controller (ready, done, stop, subscribe). */
export { upStack, type UpStackOptions, type StackController, type StartStackInput } from './engine/index.js';
/** Stop a stack as `stack down` does, also one started by another process. */
export { downStack, type DownStackOptions, type StopReport } from './engine/index.js';
/** Stop every host's share of a stack across hosts as `stack down --all-hosts` does (through discovery). */
export { downAllHosts, type DownAllHostsOptions, type DownAllHostsReport } from './engine/index.js';
/** A stack's recorded state as `stack status` shows it (across hosts: every host's instances). */
export { stackStatus, type StackStatusView, type HostInstanceView } from './engine/index.js';
/** One profile's up/down/status bound together (the ATproto stacks builder). */
export { mkServiceCoordination, type ServiceCoordination } from './engine/index.js';
/** "May this service start yet?" for a graph, from recorded states (the ATproto stacks builder). */
export { mkDependencyManagement, type DependencyManagement } from './engine/index.js';

// Runtimes, for upStack's `runtimes` option (the profile's own are used by default).
export type * from './runtime/types.js';
/** Local processes. */
export { createProcessRuntime, type ProcessRuntimeOptions } from './runtime/process.js';
/** Docker containers (dockerode loads on first use). */
export { createDockerRuntime } from './runtime/docker.js';
/** An in-memory runtime whose services follow a script: for tests of code that drives stacks. */
export { createMemoryRuntime, type MemoryRuntime, type MemoryRuntimeOptions, type MemoryScript } from './runtime/memory.js';

// Discovery: how services register themselves and find each other.
export type * from './discovery/types.js';
/** The client services use: register/deregister/lookup/watch by role, heartbeats built in. */
export { createDiscoveryClient, type DiscoveryClient, type DiscoveryClientRegisterOptions, type SelfRegistration } from './discovery/index.js';
/** A manager over the configured backends (lookup with fallback and cache, merged watches). */
export { createDiscovery, type CreateDiscoveryOptions, type DiscoveryManager } from './discovery/index.js';
/** One backend by name. */
export { createBackend, type CreateBackendOptions } from './discovery/index.js';
/** Discovery settings: the defaults, with overrides, and the backend names. */
export { discoveryConfig, DEFAULT_DISCOVERY_CONFIG, DISCOVERY_BACKEND_NAMES, type DiscoveryBackendName, type DiscoveryConfig } from './discovery/index.js';
/** Registration conflicts and unknown registrations. */
export { CollisionError, NotRegisteredError } from './discovery/index.js';

// Templates: render a stack's configuration files as `stack up` and `stack render` do.
export type { RenderedConfig, RenderResult, TemplateContext, ServiceView, InstanceView } from './template/index.js';
/** Every service's configs of a stack. */
export { renderStackConfigs, type RenderStackOptions } from './template/index.js';
/** One service's configs: written to its config folder, or kept in memory (for runtimes that must not put secrets on disk). */
export { renderServiceConfigs, renderServiceConfigsInMemory } from './template/index.js';
/** One template against a context. */
export { renderTemplate, type RenderTemplateOptions, type TemplateOutput } from './template/index.js';
/** The context templates see (hostname, services, env, variables). */
export { buildTemplateContext, type ContextOptions } from './template/index.js';
/** Write rendered configs (0600 when they hold a secret), or compare them with what is on disk. */
export { writeRenderedConfigs, checkRenderedConfigs, type WrittenConfig, type CheckOptions, type ConfigDifference } from './template/index.js';

// Health: wait for a service to be ready, or watch it.
/** Probe until healthy (fast at first, then at the check's interval); throws HealthCheckFailedError. */
export { waitUntilHealthy, HealthCheckFailedError, type WaitOptions } from './health/index.js';
/** Probe periodically and report changes. */
export { monitorHealth, type MonitorOptions } from './health/index.js';
/** The target of a check (host, port, container…) for a service. */
export { healthTargetFor, type HealthTargetContext } from './runtime/target.js';
/** Health strategy names, and the check and result types. */
export { HEALTH_STRATEGY_NAMES, type HealthCheckSpec, type HealthStrategyName, type HealthTarget, type ProbeResult } from './health/index.js';

// The seed's API names (ATproto stacks documentation), as thin documented wrappers (template/seed.ts).
/** A discovery client (register, lookup, watch, heartbeats); with no settings it reads STACK_DISCOVERY. */
export { mkServiceDiscovery } from './template/seed.js';
/** The discovery settings a service needs (what STACK_DISCOVERY carries), from a profile. */
export { generateDiscoveryConfig, type GeneratedDiscoveryConfig } from './template/seed.js';
/** A template spec (destination, format, data or text) checked like a profile's. */
export { mkConfigTemplate, type ConfigTemplateInput } from './template/seed.js';
/** A profile's templates bound to a context: render them all, or one service's. */
export { mkConfigurationTemplating, type ConfigurationTemplating } from './template/seed.js';
/** Render one template against a live discovery manager. */
export { processTemplateWithDiscovery } from './template/seed.js';
/** Render every service's configs of a stack, writing nothing (`stack render` as a function). */
export { generateStackConfigs } from './template/seed.js';
