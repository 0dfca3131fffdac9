/**
 * atproto-stacks as a library. The CLI is a thin layer over these functions.
 *
 * Naming follows the ATproto stacks documentation's builders: mkDeploymentProfile,
 * mkDependency, mkDependencyGraph, mkHealthCheck have TypeScript counterparts here.
 */
export * from './errors.js';
export type * from './profile/types.js';
export type * from './graph/types.js';
export { loadProfile, inspectProfile, inspectProfileObject, resolveProfileRef, type LoadOptions, type LoadResult } from './profile/load.js';
export { builtinProfileNames, builtinDescription } from './profile/builtin.js';
export { schemas } from './profile/schema.js';
export { buildGraph } from './graph/graph.js';
export { planStack, type PlanOptions } from './graph/plan.js';
export { renderGraph, type GraphFormat } from './graph/render.js';
export { validateProfile, mkDeploymentProfile, mkDependency, mkDependencyGraph, mkHealthCheck } from './profile/api.js';
