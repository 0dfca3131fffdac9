import { stringify } from 'yaml';
import { redactDiscoveryConfig } from '../../discovery/registry.js';
import { ExitCode } from '../../errors.js';
import { builtinDescription, builtinProfileNames } from '../../profile/builtin.js';
import { loadProfile } from '../../profile/load.js';
import type { Profile } from '../../profile/types.js';
import { MASK, redactDeep } from '../../util/redact.js';
import { pad, paint, type Output } from '../output.js';

export async function list(opts: { json?: boolean }, o: Output): Promise<number> {
  const profiles = builtinProfileNames().map((name) => ({ name, description: builtinDescription(name) }));
  if (opts.json) o.json(profiles);
  else {
    const width = Math.max(...profiles.map((p) => p.name.length)) + 2;
    for (const p of profiles) o.out(`${paint(o, 'bold', pad(p.name, width))}${p.description}`);
    o.out('');
    o.out(paint(o, 'gray', 'stack profiles show NAME prints one, fully merged; stack up --profile NAME runs it'));
  }
  return ExitCode.ok;
}

export async function show(opts: { json?: boolean }, o: Output, args: string[]): Promise<number> {
  const profile = loadProfile(args[0] ?? '');
  const shown = redact(profile);
  if (opts.json) o.json(shown);
  else if (o.write) o.write(stringify(shown, { lineWidth: 0 }));
  else o.out(stringify(shown, { lineWidth: 0 }).trimEnd());
  return ExitCode.ok;
}

/**
 * What `show` prints: the normalised profile with secret values masked — secret variables' defaults,
 * secret environment entries, each discovery backend's declared secret options, and passwords in
 * any URL anywhere (`DATABASE_URL`, `natsUrl`, `etcdEndpoints`, …), whichever key holds them.
 */
function redact(profile: Profile): unknown {
  const services = Object.fromEntries(
    Object.entries(profile.services).map(([name, s]) => [
      name,
      { ...s, environment: Object.fromEntries(Object.entries(s.environment).map(([k, v]) => [k, s.secretEnvironment.includes(k) ? MASK : v])) },
    ]),
  );
  // Which discovery options are secret is each backend's own declaration (discovery/registry.ts).
  const discovery = redactDiscoveryConfig(profile.discovery);
  const variables = Object.fromEntries(
    Object.entries(profile.variables).map(([k, v]) => [k, v.type === 'secret' && v.default !== undefined ? { ...v, default: MASK } : v]),
  );
  return redactDeep({ ...profile, discovery, variables, services });
}
