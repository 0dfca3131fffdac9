import { inspectProfile } from '../../profile/load.js';
import { ExitCode } from '../../errors.js';
import { dollarBraceProblems } from '../../template/dollar-brace.js';
import { profileRef, type CommonOptions } from '../common.js';
import { paint, printProblems, type Output } from '../output.js';

export async function run(opts: CommonOptions, o: Output): Promise<number> {
  const ref = profileRef(opts, o);
  const result = inspectProfile(ref);
  // `${name}` in templates (the seed's form) would be copied literally: an error here, without loading the template engine.
  const problems = [...result.problems, ...(result.profile ? dollarBraceProblems(result.profile) : [])];
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
      o.out(
        `${paint(o, 'green', '✓')} ${ref}: profile '${p.name}' is valid (${n} service${n === 1 ? '' : 's'}${warnings.length ? `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}` : ''})`,
      );
    } else {
      o.err(`${ref}: ${errors.length} problem${errors.length === 1 ? '' : 's'} found`);
    }
  }
  return ok ? ExitCode.ok : ExitCode.invalidInput;
}
