/** Library helpers: validate, and the counterparts of the ATproto stacks builders (mk*). */
import { InvalidInputError, type Problem } from '../errors.js';
import { buildGraph } from '../graph/graph.js';
import type { DependencyGraph } from '../graph/types.js';
import { inspectProfile, inspectProfileObject, type LoadOptions } from './load.js';
import { normalizeHealthCheck } from './normalize.js';
import { schemas, type RawHealthCheck, type RawProfile } from './schema.js';
import { formatPath } from './source.js';
import type { DependencySpec, DependencyType, HealthCheckSpec, Profile, ServiceSpec } from './types.js';

export interface ValidationReport {
  ok: boolean;
  profile?: Profile;
  errors: Problem[];
  warnings: Problem[];
}

/** Validate a profile (name, path, or object): every problem at once, never throwing for bad input. */
export function validateProfile(ref: string | RawProfile, opts: LoadOptions = {}): ValidationReport {
  const result = typeof ref === 'string' ? inspectProfile(ref, opts) : inspectProfileObject(ref, opts);
  const errors = result.problems.filter((p) => p.severity !== 'warning');
  const warnings = result.problems.filter((p) => p.severity === 'warning');
  return { ok: errors.length === 0 && !!result.profile, ...(result.profile ? { profile: result.profile } : {}), errors, warnings };
}

/** Build a validated, normalised profile from an object; throws InvalidInputError listing every problem. */
export function mkDeploymentProfile(raw: RawProfile, opts: LoadOptions & { name?: string } = {}): Profile {
  const result = inspectProfileObject(raw, opts);
  if (!result.profile) throw new InvalidInputError(result.problems, 'invalid profile');
  return result.profile;
}

export function mkDependency(name: string, type: DependencyType = 'required', healthCheck?: HealthCheckSpec): DependencySpec {
  return { name, type, index: 0, ...(healthCheck ? { healthCheck } : {}) };
}

/** The dependency graph of a profile; throws InvalidInputError on unknown dependencies or bad cycles. */
export function mkDependencyGraph(profile: Pick<Profile, 'services'>): DependencyGraph<ServiceSpec> {
  const { graph, problems } = buildGraph(profile);
  const errors = problems.filter((p) => p.severity !== 'warning');
  if (errors.length > 0) {
    throw new InvalidInputError(errors.map((p) => ({ ...p, path: formatPath(p.path) })));
  }
  return graph;
}

export function mkHealthCheck(raw: RawHealthCheck, servicePort?: number): HealthCheckSpec {
  const parsed = schemas().healthCheckSchema.safeParse(raw);
  if (!parsed.success) {
    throw new InvalidInputError(parsed.error.issues.map((i) => ({ code: i.code, path: i.path.join('.'), message: i.message })));
  }
  return normalizeHealthCheck(parsed.data, servicePort);
}
