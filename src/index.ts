/**
 * atproto-stacks as a library. The CLI is a thin layer over these functions.
 *
 * Naming follows the ATproto stacks documentation's builders: mkDeploymentProfile,
 * mkDependency, mkDependencyGraph, mkHealthCheck have TypeScript counterparts here.
 */
export * from './errors.js';
export type * from './profile/types.js';
export type * from './graph/types.js';
export type * from './plan/types.js';
export { loadProfile, inspectProfile, inspectProfileObject, resolveProfileRef, type LoadOptions, type LoadResult } from './profile/load.js';
export { builtinProfileNames, builtinDescription } from './profile/builtin.js';
export { schemas } from './profile/schema.js';
export { buildGraph } from './graph/graph.js';
export { planStack, type PlanOptions } from './plan/plan.js';
export { renderGraph, type GraphFormat } from './plan/render.js';
export { validateProfile, mkDeploymentProfile, mkDependency, mkDependencyGraph, mkHealthCheck } from './profile/api.js';
export { stateDirOf } from './profile/paths.js';

// Discovery: backends, the manager, and the library API services use (register/lookup/watch).
export * from './discovery/index.js';
// Templates: render one template, a service's configs, or a whole stack's.
export * from './template/index.js';
// Health checks: strategies and the fast-probing wait.
export * from './health/index.js';
// Runtimes: local processes and Docker (dockerode loads on first use).
export { createProcessRuntime, type ProcessRuntimeOptions } from './runtime/process.js';
export { createDockerRuntime } from './runtime/docker.js';
export { healthTargetFor, type HealthTargetContext } from './runtime/target.js';
export { createMemoryRuntime, type MemoryRuntime, type MemoryRuntimeOptions, type MemoryScript } from './runtime/memory.js';
export type * from './runtime/types.js';
// The engine: start a plan health-gated, stop it, observe events.
export {
  mkServiceCoordination,
  mkDependencyManagement,
  upStack,
  downStack,
  stackStatus,
  startStack,
  stopStack,
  readStackStatus,
  type ServiceCoordination,
  type DependencyManagement,
  type StackController,
  type StartStackInput,
  type StartStackOptions,
  type UpStackOptions,
  type DownStackOptions,
  type StopReport,
  type StackStatusView,
} from './engine/index.js';

// The seed's API names (ATproto stacks documentation), as thin documented wrappers: see template/seed.ts.
export {
  mkServiceDiscovery,
  generateDiscoveryConfig,
  mkConfigTemplate,
  mkConfigurationTemplating,
  processTemplateWithDiscovery,
  generateStackConfigs,
  type ConfigTemplateInput,
  type ConfigurationTemplating,
  type GeneratedDiscoveryConfig,
} from './template/seed.js';
