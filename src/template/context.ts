/**
 * Building the context templates render against (docs/architecture.md, "The seams"):
 *   - the profile's variables at the top level (typed; null when a variable has no value);
 *   - `service.<name>`: `url`, `host`, `address`, `port`, `tags`, `meta`, `instances`, from discovery
 *     records (live, or a snapshot) or, without them, from each service's planned address in the
 *     profile (host = `address`, port = `port`, url = `<scheme>://host:port`, scheme default http);
 *   - `env.<NAME>`: the process environment;
 *   - `domain`: the profile's domain (unless a variable is called that).
 * A service that is named (in the profile, or as a dependency) but absent — disabled, or with no
 * instance in discovery — is null, so `{{#if service.redis}}` is false and an unguarded use is an error.
 */
import type { Problem } from '../errors.js';
import { ALL_HOSTS, type Profile, type ServiceSpec } from '../profile/types.js';
import type { ServiceInstance } from '../discovery/types.js';
import { createProfileLocator, type ProfileLocator } from './locate.js';
import { addKnownSecrets, secretEnvironmentValues, urlPasswords } from '../util/redact.js';
import { FORMAT_SPELLERS } from '../formats/spell.js';
import { createRedactor, readSecrets, stateDirOf } from './secrets.js';
import type { InstanceView, ServiceView, TemplateContext, VariableSource } from './types.js';
import { environmentSource, resolveVariables } from './variables.js';

const NO_INSTANCE = 'no instance in discovery';

/** Names templates use for the context's own parts; a variable cannot take them. */
export const RESERVED_NAMES = ['service', 'env'] as const;

export interface ContextOptions {
  /**
   * Discovery records (live lookups or a snapshot). Without them, services are at their planned
   * addresses from the profile.
   */
  instances?: ServiceInstance[];
  /**
   * Discovery records of the services templates declare `external` (outside the profile), for a
   * render at planned addresses; with `instances`, those are looked in instead.
   */
  external?: ServiceInstance[];
  /**
   * Variable values: a plain record (highest precedence), or sources in increasing precedence
   * (`--vars` file, `--var` flags). `STACK_VAR_*` environment values always come below them.
   */
  vars?: Record<string, unknown> | VariableSource[];
  /** Environment for `env.<NAME>` and `STACK_VAR_*`; default process.env. */
  env?: Record<string, string | undefined>;
  /** Stored secret values; default: read from `<stateDir>/secrets.json`. */
  secrets?: Record<string, string>;
  /** Where `secrets.json` is read from; default `.stack/<stack>` under `cwd` (or the profile's `stateDir`). */
  stateDir?: string;
  /** Generate values for `generate` secrets that have none (default true). */
  generateSecrets?: boolean;
  /** Folder paths in messages are shown relative to; default process.cwd(). */
  cwd?: string;
  /** Position lookups in the profile (built from the profile's files when omitted). */
  locate?: ProfileLocator;
}

export function buildTemplateContext(profile: Profile, opts: ContextOptions = {}): TemplateContext {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  const locate = opts.locate ?? createProfileLocator(profile, cwd);
  const problems: Problem[] = [];

  for (const name of RESERVED_NAMES) {
    if (Object.prototype.hasOwnProperty.call(profile.variables, name)) {
      problems.push({
        code: 'reserved_name',
        severity: 'error',
        ...locate(['variables', name]),
        message: `'${name}' is a reserved name in templates (service.<name>, env.<NAME>): rename the variable`,
      });
    }
  }

  const given =
    opts.vars === undefined ? [] : Array.isArray(opts.vars) ? opts.vars : [{ origin: 'library' as const, values: opts.vars, unknown: 'error' as const }];
  const stateDir = opts.stateDir ?? stateDirOf(profile, cwd);
  const stored = opts.secrets ?? readSecrets(stateDir);
  const resolved = resolveVariables(profile, {
    sources: [environmentSource(profile.variables, env), ...given],
    stored,
    generate: opts.generateSecrets ?? true,
    locate,
  });
  problems.push(...resolved.problems);

  const { views, absent } = serviceViews(profile, opts.instances, opts.external);
  const environment: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (typeof v === 'string') environment[k] = v;

  // The profile's `domain` too (a variable of that name wins: it is the more specific).
  const root: Record<string, unknown> = { domain: profile.domain, ...resolved.values, service: views, env: environment };
  const secretValues = [...resolved.secrets.values(), ...secretEnvironmentValues(environment), ...passwordsIn(resolved.values), ...passwordsIn(views)];
  // Whatever the CLI prints afterwards (errors included) is masked by these values too.
  addKnownSecrets(secretValues, FORMAT_SPELLERS);
  return {
    root,
    secrets: resolved.secrets,
    missing: resolved.missing,
    absent,
    declared: new Map(Object.values(profile.variables).map((v) => [v.name, v.type])),
    problems,
    stateDir,
    generatedSecrets: resolved.generated,
    secretValues,
    redact: createRedactor(secretValues),
  };
}

/** Passwords of URLs anywhere in a tree of values (`postgres://user:pw@host` in a variable, a discovery URL). */
function passwordsIn(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(...urlPasswords(value));
  else if (Array.isArray(value)) for (const v of value) passwordsIn(v, out);
  else if (typeof value === 'object' && value !== null) for (const v of Object.values(value)) passwordsIn(v, out);
  return out;
}

function serviceViews(
  profile: Profile,
  instances: ServiceInstance[] | undefined,
  external: ServiceInstance[] = [],
): { views: Record<string, ServiceView | null>; absent: Map<string, string> } {
  const views: Record<string, ServiceView | null> = {};
  const absent = new Map<string, string>();
  const setAbsent = (name: string, why: string) => {
    views[name] = null;
    absent.set(name, why);
  };

  if (instances) {
    const byService = new Map<string, ServiceInstance[]>();
    for (const inst of instances) byService.set(inst.service, [...(byService.get(inst.service) ?? []), inst]);
    for (const [name, list] of byService) views[name] = viewOf(name, list.map(instanceView));
    for (const svc of Object.values(profile.services)) {
      if (!byService.has(svc.name)) setAbsent(svc.name, svc.enable ? NO_INSTANCE : 'disabled');
    }
  } else {
    for (const svc of Object.values(profile.services)) {
      if (!svc.enable) {
        setAbsent(svc.name, 'disabled');
        continue;
      }
      views[svc.name] = plannedView(svc);
    }
  }
  // An optional dependency on a service the profile does not define: templates see it as absent.
  for (const svc of Object.values(profile.services)) {
    for (const dep of svc.dependencies) if (!Object.prototype.hasOwnProperty.call(views, dep.name)) setAbsent(dep.name, 'not in the profile');
  }
  // A service a template declares `external` (another stack, another host) is resolved through
  // discovery: present with its records, else absent (an unguarded use is then a render error).
  for (const name of externalServices(profile)) {
    if (Object.prototype.hasOwnProperty.call(views, name)) continue;
    const list = instances ? [] : external.filter((i) => i.service === name);
    if (list.length > 0) views[name] = viewOf(name, list.map(instanceView));
    else setAbsent(name, NO_INSTANCE);
  }
  return { views, absent };
}

/** Names templates declare `external`: services outside the profile, resolved through discovery. */
export function externalServices(profile: Profile): string[] {
  const names = new Set<string>();
  for (const svc of Object.values(profile.services))
    for (const t of svc.templates) for (const name of t.external ?? []) if (!profile.services[name]) names.add(name);
  return [...names];
}

/** A service at its planned address from the profile. */
export function plannedView(svc: ServiceSpec): ServiceView {
  const port = svc.port ?? null;
  return viewOf(svc.name, [
    {
      id: `${svc.name}-planned`,
      host: svc.address,
      address: svc.address,
      port,
      url: plannedUrl(svc.address, port, svc.scheme),
      tags: [...svc.tags],
      // Placed on a host (a profile with hosts): its registrations will name it.
      meta: { ...svc.meta, ...(svc.host !== undefined && svc.host !== ALL_HOSTS ? { host: svc.host } : {}), ...overlayMeta(svc) },
    },
  ]);
}

/**
 * A Swarm service's name on the stack's overlay network, as its registrations carry it (one per
 * task, at the node's address and published port: src/engine/instances.ts), so a template can
 * ask for the in-cluster address before any task is registered.
 */
function overlayMeta(svc: ServiceSpec): Record<string, string> {
  if (svc.runtime !== 'swarm') return {};
  return { overlay: svc.name, ...(svc.port !== undefined ? { overlayUrl: plannedUrl(svc.name, svc.port, svc.scheme) } : {}) };
}

/**
 * The context a service's own templates render in: a service about to start is not registered
 * yet, so when discovery has no record of it, it sees itself at its planned address.
 */
export function contextForService(context: TemplateContext, svc: ServiceSpec): TemplateContext {
  const services = context.root.service as Record<string, ServiceView | null> | undefined;
  if (!services || services[svc.name] !== null || context.absent.get(svc.name) !== NO_INSTANCE) return context;
  const absent = new Map(context.absent);
  absent.delete(svc.name);
  return { ...context, root: { ...context.root, service: { ...services, [svc.name]: plannedView(svc) } }, absent };
}

function plannedUrl(host: string, port: number | null, scheme = 'http'): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host; // IPv6 literal
  return port === null ? `${scheme}://${h}` : `${scheme}://${h}:${port}`;
}

function instanceView(inst: ServiceInstance): InstanceView {
  const port = inst.port ?? null;
  return {
    id: inst.id,
    host: inst.address,
    address: inst.address,
    port,
    url: inst.url ?? plannedUrl(inst.address, port),
    tags: [...inst.tags],
    meta: { ...inst.meta },
  };
}

/** A service is its first instance's address, with every instance listed. */
function viewOf(name: string, instances: InstanceView[]): ServiceView {
  const first = instances[0]!;
  return { name, url: first.url, host: first.host, address: first.address, port: first.port, tags: first.tags, meta: first.meta, instances };
}
