/**
 * The seed's API names (the ATproto stacks documentation's builders), as thin wrappers over what
 * the library already does. Each is one call into the real implementation, documented here so a
 * reader of the seed finds its counterpart; new code may use either name.
 *
 *   mkServiceDiscovery            → createDiscoveryClient (no argument: the stack's STACK_DISCOVERY)
 *   generateDiscoveryConfig       → what a started service is told about discovery (STACK_DISCOVERY)
 *   mkConfigTemplate              → a checked, normalised template spec (as a profile's `templates:` item)
 *   mkConfigurationTemplating     → buildTemplateContext, with render functions bound to it
 *   processTemplateWithDiscovery  → renderTemplate against a live discovery manager's instances
 *   generateStackConfigs          → renderStackConfigs (every service's configs; nothing written)
 */
import { InvalidInputError, type Problem } from '../errors.js';
import { clientSettings, discoveryEnvironmentFor } from '../discovery/client-env.js';
import { createDiscoveryClient, type CreateDiscoveryOptions, type DiscoveryClient, type DiscoveryManager } from '../discovery/index.js';
import { redactDiscoveryConfig, type DiscoveryConfig } from '../discovery/registry.js';
import { schemas } from '../profile/schema.js';
import type { Profile, TemplateSpec } from '../profile/types.js';
import { stateDirOf } from '../profile/paths.js';
import { buildTemplateContext, contextForService, type ContextOptions } from './context.js';
import { formatFromDestination } from '../formats/registry.js';
import { renderStackConfigs, renderTemplate, type RenderStackOptions, type TemplateOutput } from './render.js';
import type { RenderResult, TemplateContext } from './types.js';

/**
 * A discovery client (register / deregister / lookup / watch by role, heartbeats built in).
 * Without a config it reads the environment `stack` gives every service it starts, so inside a
 * stack `await mkServiceDiscovery()` needs nothing else.
 */
export function mkServiceDiscovery(config?: Partial<DiscoveryConfig> | DiscoveryManager, opts: CreateDiscoveryOptions = {}): Promise<DiscoveryClient> {
  return createDiscoveryClient(config, opts);
}

export interface GeneratedDiscoveryConfig {
  /** The settings a service's client gets (paths absolute, only the configured backends), secrets masked. */
  settings: DiscoveryConfig;
  /** The variable a started service gets: `{ STACK_DISCOVERY: <JSON, or the path of a 0600 file when there are secrets> }`. */
  environment: Record<string, string>;
}

/**
 * The discovery settings a service of this profile is given, as `stack up` gives them. Writes the
 * 0600 settings file into the stack's state folder when the settings hold a secret.
 */
export function generateDiscoveryConfig(profile: Profile, opts: { stateDir?: string; cwd?: string } = {}): GeneratedDiscoveryConfig {
  const cwd = opts.cwd ?? process.cwd();
  const stateDir = opts.stateDir ?? stateDirOf(profile, cwd);
  return {
    settings: redactDiscoveryConfig(clientSettings(profile.discovery, cwd)),
    environment: discoveryEnvironmentFor(profile.discovery, { stateDir, cwd }),
  };
}

/** A template as written in a profile's `templates:` list. */
export interface ConfigTemplateInput {
  destination: string;
  format?: TemplateSpec['format'];
  data?: unknown;
  /** Handlebars text (always text here: unlike a profile, no file is read). */
  template?: string;
  env?: boolean;
  mode?: number | string;
}

/** A checked, normalised template spec; throws InvalidInputError naming each bad field. */
export function mkConfigTemplate(input: ConfigTemplateInput): TemplateSpec {
  const parsed = schemas().templateSchema.safeParse(input);
  if (!parsed.success) {
    throw new InvalidInputError(
      parsed.error.issues.map((i) => ({ code: i.code, path: i.path.join('.'), message: i.message })),
      'invalid template',
    );
  }
  const raw = parsed.data;
  const spec: TemplateSpec = { destination: raw.destination, format: raw.format ?? formatFromDestination(raw.destination), env: raw.env ?? false, index: 0 };
  if (raw.data !== undefined) spec.data = raw.data;
  if (raw.template !== undefined) spec.template = raw.template;
  if (raw.mode !== undefined) spec.mode = typeof raw.mode === 'number' ? raw.mode : parseInt(raw.mode, 8);
  if (spec.data === undefined && spec.template === undefined) {
    throw new InvalidInputError(
      [{ code: 'empty_template', path: 'template', message: 'a template needs `data` (a structured tree) or `template` (free text)' }],
      'invalid template',
    );
  }
  return spec;
}

/** A profile's template context with rendering bound to it. */
export interface ConfigurationTemplating {
  context: TemplateContext;
  /** Render one template; `service` gives it that service's view of itself. Throws on problems. */
  render(template: TemplateSpec | ConfigTemplateInput, service?: string): string;
  /** Every enabled service's configs (nothing written). */
  renderAll(): RenderResult;
}

/** Build the template context of a profile (variables, services, environment) and bind rendering to it. */
export function mkConfigurationTemplating(profile: Profile, opts: ContextOptions = {}): ConfigurationTemplating {
  const context = buildTemplateContext(profile, opts);
  return {
    context,
    render: (template, service) => renderOrThrow(template, service ? serviceContext(profile, context, service) : context, service, opts.cwd),
    renderAll: () => renderStackConfigs(profile, { ...opts, context }),
  };
}

/**
 * Render a template against what a live discovery manager knows now: `service.<name>` are the
 * registered instances (not the profile's planned addresses). Throws InvalidInputError listing
 * every problem (an unknown variable, an absent service used unguarded, …).
 */
export async function processTemplateWithDiscovery(
  template: TemplateSpec | ConfigTemplateInput | string,
  profile: Profile,
  discovery: DiscoveryManager | DiscoveryClient,
  opts: Omit<ContextOptions, 'instances'> & { service?: string } = {},
): Promise<string> {
  const manager = 'manager' in discovery ? discovery.manager : discovery;
  const instances = await manager.list();
  const context = buildTemplateContext(profile, { ...opts, instances });
  const spec = typeof template === 'string' ? { destination: 'out.txt', format: 'text' as const, template } : template;
  const own = opts.service ? serviceContext(profile, context, opts.service) : context;
  return renderOrThrow(spec, own, opts.service, opts.cwd);
}

/** Render every enabled service's config files (nothing is written; see writeRenderedConfigs). */
export function generateStackConfigs(profile: Profile, opts: RenderStackOptions = {}): RenderResult & { context: TemplateContext } {
  return renderStackConfigs(profile, opts);
}

function serviceContext(profile: Profile, context: TemplateContext, service: string): TemplateContext {
  const svc = profile.services[service];
  return svc ? contextForService(context, svc) : context;
}

function renderOrThrow(template: TemplateSpec | ConfigTemplateInput, context: TemplateContext, service: string | undefined, cwd: string | undefined): string {
  const spec = 'index' in template ? template : mkConfigTemplate(template);
  const out: TemplateOutput = renderTemplate(spec, context, { ...(service ? { service } : {}), ...(cwd ? { cwd } : {}) });
  const problems: Problem[] = [...context.problems.filter((p) => p.severity !== 'warning'), ...out.problems.filter((p) => p.severity !== 'warning')];
  if (problems.length > 0) throw new InvalidInputError(problems, 'cannot render the template');
  return out.content;
}
