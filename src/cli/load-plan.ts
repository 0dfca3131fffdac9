/** Load a profile and plan it: what `plan`, `graph`, `up --dry-run` and `up` start from. */
import { buildGraph } from '../graph/graph.js';
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

export function loadAndPlan(opts: CommonOptions & { service?: string[] }, o: Output): Planned {
  const ref = profileRef(opts, o);
  const services = opts.service && opts.service.length > 0 ? opts.service : undefined;
  const profile = loadProfile(ref, services ? { services } : {});
  const { graph } = buildGraph(profile); // problems were reported by loadProfile
  const plan = planStack(profile, graph, services ? { services } : {});
  return { ref, profile, graph, plan };
}
