/** Load a profile and plan it: what `plan`, `graph`, `up --dry-run` and `up` start from. */
import { buildGraph } from '../graph/graph.js';
import { resolveHost } from '../plan/hosts.js';
import { planStack } from '../plan/plan.js';
import type { Plan, StackGraph } from '../plan/types.js';
import { loadProfile } from '../profile/load.js';
import type { Profile } from '../profile/types.js';
import { profileRef, type CommonOptions } from './common.js';
import type { Output } from './output.js';

export interface Planned {
  ref: string;
  profile: Profile;
  graph: StackGraph;
  plan: Plan;
}

export interface PlanCliOptions extends CommonOptions {
  service?: string[];
  /** `--host`: the host this is, in a profile with hosts (default `STACK_HOST`). */
  host?: string;
}

/**
 * `needsHost`: `stack up` must know which host it is in a profile whose hosts each run their own
 * share (exit 2 otherwise); `stack plan` may show the whole stack.
 */
export function loadAndPlan(opts: PlanCliOptions, o: Output, needsHost = false): Planned {
  const ref = profileRef(opts, o);
  const services = opts.service && opts.service.length > 0 ? opts.service : undefined;
  const profile = loadProfile(ref, services ? { services } : {});
  const { graph } = buildGraph(profile); // problems were reported by loadProfile
  const host = resolveHost(profile, hostOf(opts, profile), { required: needsHost });
  const plan = planStack(profile, graph, { ...(services ? { services } : {}), ...(host !== undefined ? { host } : {}) });
  return { ref, profile, graph, plan };
}

/** `--host`, else `STACK_HOST` (which a profile without hosts ignores: it may be set for the machine). */
function hostOf(opts: PlanCliOptions, profile: Profile): string | undefined {
  if (opts.host !== undefined) return opts.host;
  const env = process.env.STACK_HOST;
  return env && Object.keys(profile.hosts).length > 0 ? env : undefined;
}
