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
import { readFile } from 'node:fs/promises';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import { InvalidInputError, type Problem } from '../errors.js';
import type { Profile, ServiceSpec, TemplateSpec } from '../profile/types.js';
import { servicesNamedBy } from '../template/watch.js';
import { runtimeDefinition } from '../drivers/runtime/registry.js';
import type { RenderConfigs } from './engine.js';
import { recordFilter } from './hosts.js';

export interface TemplateRendererOptions {
  /** `--var key=value` flags. */
  vars?: string[];
  /** `--vars FILE`. */
  varsFile?: string;
  stateDir: string;
  cwd?: string;
  /** Where the records of `external` services come from (the check render and each start). */
  discovery?: DiscoveryManager;
}

/**
 * After startup: render one template again against these records; write it only if its content
 * changed. For a runtime that takes configs in memory (`capabilities.configsInMemory`) nothing is
 * written: the content is compared with the last one rendered, and the runtime gets the new one.
 */
export type RerenderTemplate = (service: ServiceSpec, template: TemplateSpec, records: ServiceInstance[], configDir: string) => Promise<RerenderOutcome>;

export interface RerenderOutcome {
  changed: boolean;
  /** The file's path (where it would be, for a runtime that takes configs in memory). */
  path: string;
}

export interface TemplateHooks {
  renderConfigs: RenderConfigs;
  rerender: RerenderTemplate;
}

/** The render hook for `startStack`, or undefined when no service of the run has templates. */
export async function createTemplateRenderer(profile: Profile, services: string[], opts: TemplateRendererOptions): Promise<RenderConfigs | undefined> {
  return (await createTemplateHooks(profile, services, opts))?.renderConfigs;
}

/** The render hook, and the re-render hook the supervisor uses after startup. */
export async function createTemplateHooks(profile: Profile, services: string[], opts: TemplateRendererOptions): Promise<TemplateHooks | undefined> {
  const withTemplates = services.filter((name) => (profile.services[name]?.templates.length ?? 0) > 0);
  if (withTemplates.length === 0) return undefined;
  const cwd = opts.cwd ?? process.cwd();
  const [
    { buildTemplateContext, contextForService, externalServices },
    { renderServiceConfigs, renderServiceConfigsInMemory, renderStackConfigs, renderTemplate },
    { flagSource, varsFileSource },
    { saveSecrets },
    { writeFileInside, pathInside },
  ] = await Promise.all([
    import('../template/context.js'),
    import('../template/render.js'),
    import('../template/variables.js'),
    import('../template/secrets.js'),
    import('../template/write.js'),
  ]);
  // Services outside the profile that templates name are looked up in discovery (absent when it cannot).
  const externals = externalServices(profile);
  const lookupExternals = async (): Promise<ServiceInstance[]> => {
    const discovery = opts.discovery;
    if (!discovery || externals.length === 0) return [];
    const lists = await Promise.all(externals.map((name) => discovery.lookup(name).catch(() => [] as ServiceInstance[])));
    return lists.flat();
  };
  const problems: Problem[] = [];
  const secretNames = new Set(
    Object.values(profile.variables)
      .filter((v) => v.type === 'secret')
      .map((v) => v.name),
  );
  const sources = [...(opts.varsFile ? [varsFileSource(opts.varsFile, cwd, problems)] : []), flagSource(opts.vars ?? [], problems, secretNames)];

  const known = Object.keys(profile.services);
  const counts = recordFilter(profile) ?? (() => true);
  const lookupNamed = async (service: ServiceSpec): Promise<ServiceInstance[]> => {
    const discovery = opts.discovery;
    if (!discovery?.backends.some((b) => b.capabilities.lookup)) return [];
    const names = [...new Set(service.templates.flatMap((t) => servicesNamedBy(t, known)))];
    const lists = await Promise.all(names.map((name) => discovery.lookup(name).catch(() => [] as ServiceInstance[])));
    return lists.flat().filter(counts);
  };
  const base = buildTemplateContext(profile, { vars: sources, stateDir: opts.stateDir, cwd, external: await lookupExternals() });
  problems.push(...renderStackConfigs(profile, { services: withTemplates, context: base, cwd }).problems);
  const errors = problems.filter((p) => p.severity !== 'warning');
  if (errors.length > 0) throw new InvalidInputError(problems, `cannot render the configs of stack '${profile.name}'; nothing was started`);
  await saveSecrets(opts.stateDir, { ...base.generatedSecrets });
  const secrets = Object.fromEntries(base.secrets);

  const liveContext = (instances: ServiceInstance[]) =>
    buildTemplateContext(profile, { instances, vars: sources, stateDir: opts.stateDir, cwd, secrets, generateSecrets: false });

  // Runtimes that take configs in memory (Swarm) get the content, never a file on this machine;
  // the last content of each file is kept to tell whether a re-render changed it.
  const inMemory = (service: ServiceSpec) => runtimeDefinition(service.runtime).capabilities.configsInMemory === true;
  const lastContent = new Map<string, string>();
  const keyOf = (service: string, destination: string) => `${service}/${destination}`;

  const renderConfigs: RenderConfigs = async (service, context) => {
    if (service.templates.length === 0) return { files: [], environment: {} };
    // Discovery's records of the services its templates name (other hosts' instances among them),
    // then this run's own: the same records the supervisor re-renders against after startup.
    const byKey = new Map<string, ServiceInstance>();
    for (const r of await lookupNamed(service)) byKey.set(`${r.service}/${r.id}`, r);
    for (const r of context.instances) byKey.set(`${r.service}/${r.id}`, r);
    const live = liveContext([...byKey.values()]);
    if (!inMemory(service)) return renderServiceConfigs(profile, service.name, live, context.configDir);
    const rendered = await renderServiceConfigsInMemory(profile, service.name, live);
    for (const f of rendered.files) lastContent.set(keyOf(service.name, f.destination), f.content.toString('utf8'));
    return rendered;
  };

  const rerender: RerenderTemplate = async (service, template, records, configDir) => {
    const context = contextForService(liveContext(records), service);
    const out = renderTemplate(template, context, { service: service.name, cwd });
    if (out.problems.some((p) => p.severity !== 'warning'))
      throw new InvalidInputError(out.problems, `cannot render ${template.destination} of '${service.name}'`);
    const target = pathInside(configDir, template.destination);
    if (inMemory(service)) {
      // Unknown before (a service this process did not start): changed; the runtime converges by content anyway.
      const key = keyOf(service.name, template.destination);
      const changed = lastContent.get(key) !== out.content;
      lastContent.set(key, out.content);
      return { changed, path: target };
    }
    const before = await readFile(target, 'utf8').catch(() => undefined);
    if (before === out.content) return { changed: false, path: target };
    await writeFileInside(configDir, template.destination, out.content, out.secret ? 0o600 : (template.mode ?? 0o644));
    return { changed: true, path: target };
  };

  return { renderConfigs, rerender };
}
