/**
 * Which declared host this machine is, for a profile with `hosts:`: `--host NAME`, else the
 * `STACK_HOST` variable. A name the profile does not declare is a usage error (exit 2); so are two
 * different names. A profile without hosts has none (`--host` is then refused, `STACK_HOST` ignored).
 */
import { UsageError } from '../errors.js';
import type { Profile } from '../profile/types.js';
import { didYouMean } from '../util/suggest.js';

export const HOST_ENV = 'STACK_HOST';

export function thisHost(profile: Pick<Profile, 'name' | 'hosts'>, flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const names = Object.keys(profile.hosts);
  const fromEnv = env[HOST_ENV] || undefined;
  if (names.length === 0) {
    if (flag !== undefined)
      throw new UsageError(`--host ${flag}: profile '${profile.name}' declares no hosts (hosts:), so it runs on one host`, { path: '--host' });
    return undefined;
  }
  if (flag !== undefined && fromEnv !== undefined && flag !== fromEnv) {
    throw new UsageError(`--host ${flag}: this machine is host '${fromEnv}' (${HOST_ENV}); run it on ${flag}, or unset ${HOST_ENV}`, { path: '--host' });
  }
  const host = flag ?? fromEnv;
  if (host !== undefined && !profile.hosts[host]) {
    const where = flag !== undefined ? '--host' : HOST_ENV;
    throw new UsageError(`${where} ${host}: not a host of profile '${profile.name}' (${names.join(', ')})${didYouMean(host, names)}`, { path: where });
  }
  return host;
}
