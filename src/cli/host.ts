/**
 * Which declared host this machine is, for a profile with `hosts:`: `--host NAME`, else the
 * `STACK_HOST` variable (which a profile without hosts ignores), checked as `stack up` checks it
 * (plan/hosts.ts: a name the profile does not declare is exit 2). `refuseOther`: a command that
 * acts on this machine's share (`stack down --host`) refuses a flag naming another host than
 * `STACK_HOST` says this machine is.
 */
import { UsageError } from '../errors.js';
import { resolveHost } from '../plan/hosts.js';
import type { Profile } from '../profile/types.js';

export const HOST_ENV = 'STACK_HOST';

export function thisHost(
  profile: Pick<Profile, 'name' | 'hosts' | 'coordination'>,
  flag: string | undefined,
  opts: { refuseOther?: boolean } = {},
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const fromEnv = Object.keys(profile.hosts).length > 0 ? env[HOST_ENV] || undefined : undefined;
  if (opts.refuseOther && flag !== undefined && fromEnv !== undefined && flag !== fromEnv) {
    throw new UsageError(`--host ${flag}: this machine is host '${fromEnv}' (${HOST_ENV}); run it on ${flag}, or unset ${HOST_ENV}`, { path: '--host' });
  }
  return resolveHost(profile, flag ?? fromEnv);
}
