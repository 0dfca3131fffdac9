/**
 * Where a stack across hosts runs, checked before anything is done.
 *
 * hub-spoke (a profile with `hosts:` and `coordination.strategy: hub-spoke`): one `stack up`, the
 * hub, starts every service itself. A container runs on its host's Docker engine
 * (`hosts.<name>.docker`, runtime/docker-hosts.ts); a service that runs on this machine (a
 * process) can only be placed on the hub's own host. What cannot be placed is refused before
 * anything starts, every problem at once (exit 2).
 */
import { runtimeDefinition } from '../drivers/runtime/registry.js';
import { InvalidInputError, UsageError, type Problem } from '../errors.js';
import type { Profile } from '../profile/types.js';
import { didYouMean } from '../util/suggest.js';
import { placementProblem } from '../runtime/docker-hosts.js';
import { runtimeHostsOf } from './runtimes.js';
import { readStateFile } from './state.js';

/** Problems of placing `services` (names) from the hub running on `host` (undefined: not said). */
export function hubPlacementProblems(profile: Profile, services: readonly string[], host: string | undefined): Problem[] {
  const layout = runtimeHostsOf(profile, host);
  if (!layout?.hub) return [];
  const problems: Problem[] = [];
  if (host !== undefined && !layout.hosts[host]) {
    problems.push({ code: 'unknown_host', path: '--host', message: `'${host}' is not a host of this profile (${Object.keys(layout.hosts).join(', ')})` });
  }
  for (const name of services) {
    const spec = profile.services[name];
    if (!spec || spec.host === undefined) continue;
    if (spec.runtime === 'docker') {
      problems.push(...placementProblem(spec, layout));
    } else if (runtimeDefinition(spec.runtime).capabilities.hostWorkingDir && spec.host !== host) {
      const hub = host === undefined ? 'the hub does not say which host it runs on (--host, STACK_HOST)' : `the hub runs on host '${host}'`;
      problems.push({
        code: 'not_on_hub',
        path: `services.${name}.host`,
        message: `'${name}' (runtime ${spec.runtime}) runs on the machine of the \`stack up\` that starts it, and ${hub}, not on '${spec.host}': in hub-spoke only containers run on other hosts; place it on the hub's host, or make it a docker service`,
      });
    }
  }
  return problems;
}

/** Throw every placement problem at once (exit 2). */
export function checkHubPlacement(profile: Profile, services: readonly string[], host: string | undefined): void {
  const problems = hubPlacementProblems(profile, services, host);
  if (problems.length > 0) throw new InvalidInputError(problems, 'hub-spoke: services cannot be placed on their hosts');
}

/**
 * `stack down --host NAME`: NAME must be a declared host, and the state folder here must not hold
 * another host's share (its state file says which host wrote it). Exit 2 otherwise.
 */
export async function checkShare(profile: Profile, stateDir: string, host: string): Promise<void> {
  const names = Object.keys(profile.hosts);
  if (names.length === 0)
    throw new UsageError(`--host ${host}: profile '${profile.name}' declares no hosts (hosts:), so it runs on one host`, { path: '--host' });
  if (!profile.hosts[host]) {
    throw new UsageError(`--host ${host}: not a host of profile '${profile.name}' (${names.join(', ')})${didYouMean(host, names)}`, { path: '--host' });
  }
  const written = (await readStateFile(stateDir, profile.name))?.host;
  if (written !== undefined && written !== host) {
    throw new UsageError(
      `--host ${host}: the state folder ${stateDir} holds host '${written}'s share, not '${host}'s; run \`stack down\` on ${host}, or \`stack down --all-hosts\``,
      {
        path: '--host',
      },
    );
  }
}
