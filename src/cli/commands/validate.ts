import { inspectProfile } from '../../profile/load.js';
import { ExitCode, type Problem } from '../../errors.js';
import type { Profile } from '../../profile/types.js';
import { profileRef, type CommonOptions } from '../common.js';
import { paint, printProblems, type Output } from '../output.js';

export async function run(opts: CommonOptions, o: Output): Promise<number> {
  const ref = profileRef(opts, o);
  const result = inspectProfile(ref);
  const problems = [...result.problems, ...(result.profile ? await dollarBraceProblems(result.profile) : [])];
  const errors = problems.filter((p) => p.severity !== 'warning');
  const warnings = problems.filter((p) => p.severity === 'warning');
  const ok = errors.length === 0 && result.profile !== undefined;
  if (opts.json) {
    o.json({ ok, profile: result.profile?.name ?? null, errors, warnings });
  } else {
    printProblems(o, problems);
    if (ok) {
      const p = result.profile!;
      const n = Object.values(p.services).filter((s) => s.enable).length;
      o.out(`${paint(o, 'green', '✓')} ${ref}: profile '${p.name}' is valid (${n} service${n === 1 ? '' : 's'}${warnings.length ? `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}` : ''})`);
    } else {
      o.err(`${ref}: ${errors.length} problem${errors.length === 1 ? '' : 's'} found`);
    }
  }
  return ok ? ExitCode.ok : ExitCode.invalidInput;
}

/**
 * Templates that write `${name}` for a name templates know (the seed's form, copied as it is by
 * Handlebars): errors showing the `{{name}}` form. Only those: validate does not need variable
 * values, so the rest of template checking stays with `stack render`. The renderer loads only
 * when the profile has templates.
 */
async function dollarBraceProblems(profile: Profile): Promise<Problem[]> {
  if (!Object.values(profile.services).some((s) => s.templates.length > 0)) return [];
  const { renderStackConfigs } = await import('../../template/render.js');
  return renderStackConfigs(profile, { generateSecrets: false }).problems.filter((p) => p.code === 'dollar_brace');
}
