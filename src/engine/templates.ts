/**
 * The bridge from the engine's render hook to the template renderer (src/template).
 *
 * Everything is checked before anything starts: one render of every service's templates against
 * the services' planned addresses reports every missing variable and template error at once
 * (InvalidInputError, exit 2), and generates `generate` secrets once (saved to the state folder,
 * so every service, and later runs, get the same value). Then each service renders again just
 * before it starts, against the instances registered by then (its dependencies among them), so a
 * failed optional dependency is absent in its templates.
 */
import { InvalidInputError, type Problem } from '../errors.js';
import type { Profile } from '../profile/types.js';
import type { RenderConfigs } from './engine.js';

export interface TemplateRendererOptions {
  /** `--var key=value` flags. */
  vars?: string[];
  /** `--vars FILE`. */
  varsFile?: string;
  stateDir: string;
  cwd?: string;
}

/** The render hook for `startStack`, or undefined when no service of the run has templates. */
export async function createTemplateRenderer(profile: Profile, services: string[], opts: TemplateRendererOptions): Promise<RenderConfigs | undefined> {
  const withTemplates = services.filter((name) => (profile.services[name]?.templates.length ?? 0) > 0);
  if (withTemplates.length === 0) return undefined;
  const cwd = opts.cwd ?? process.cwd();
  const [{ buildTemplateContext }, { renderServiceConfigs, renderStackConfigs }, { flagSource, varsFileSource }, { saveSecrets }] = await Promise.all([
    import('../template/context.js'),
    import('../template/render.js'),
    import('../template/variables.js'),
    import('../template/secrets.js'),
  ]);
  const problems: Problem[] = [];
  const secretNames = new Set(Object.values(profile.variables).filter((v) => v.type === 'secret').map((v) => v.name));
  const sources = [...(opts.varsFile ? [varsFileSource(opts.varsFile, cwd, problems)] : []), flagSource(opts.vars ?? [], problems, secretNames)];

  const base = buildTemplateContext(profile, { vars: sources, stateDir: opts.stateDir, cwd });
  problems.push(...renderStackConfigs(profile, { services: withTemplates, context: base, cwd }).problems);
  const errors = problems.filter((p) => p.severity !== 'warning');
  if (errors.length > 0) throw new InvalidInputError(problems, `cannot render the configs of stack '${profile.name}'; nothing was started`);
  await saveSecrets(opts.stateDir, { ...base.generatedSecrets });
  const secrets = Object.fromEntries(base.secrets);

  return async (service, context) => {
    if (service.templates.length === 0) return { files: [], environment: {} };
    const live = buildTemplateContext(profile, { instances: context.instances, vars: sources, stateDir: opts.stateDir, cwd, secrets, generateSecrets: false });
    return renderServiceConfigs(profile, service.name, live, context.configDir);
  };
}
