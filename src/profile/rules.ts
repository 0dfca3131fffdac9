/**
 * Cross-field rules, run on the normalised profile after the schema passed. Each rule is a
 * small function returning every problem it finds; `checkProfile` runs them all.
 */
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { buildGraph } from '../graph/graph.js';
import { HEALTH_STRATEGIES } from '../health/registry.js';
import { RUNTIMES, runtimeDefinition } from '../drivers/runtime/registry.js';
import { durationProblem } from '../util/duration.js';
import { isPlainObject } from './merge.js';
import { dnsLabelProblem } from '../util/names.js';
import type { RawProblem } from './issues.js';
import { isLoopbackHost } from '../health/loopback.js';
import { HOST_RULES } from './rules-hosts.js';
import type { RawProfile } from './schema.js';
import { DEPENDENCY_TYPES, type DependencySpec, type DependencyType, type HealthCheckSpec, type Profile, type ServiceSpec } from './types.js';

type Rule = (profile: Profile, raw: RawProfile) => RawProblem[];
type Path = (string | number)[];

const svcPath = (s: ServiceSpec, ...rest: (string | number)[]) => ['services', s.name, ...rest];
/** The services this profile runs (an external one is run elsewhere). */
const enabled = (p: Profile) => Object.values(p.services).filter((s) => s.enable && !s.external);

/**
 * Rules on the raw (merged, interpolated) value: names and the graph. They run even when the
 * schema found problems elsewhere, so one `validate` reports a typo'd key, a bad name and a
 * cycle together. They read the raw value defensively: the schema reports wrong types.
 */
export function checkRawProfile(raw: unknown, defaultName: string): RawProblem[] {
  const out: RawProblem[] = [];
  const obj = isPlainObject(raw) ? raw : {};
  const name = typeof obj.name === 'string' ? obj.name : defaultName;
  const stackProblem = dnsLabelProblem(name);
  if (stackProblem) {
    out.push({
      code: 'invalid_name',
      path: obj.name !== undefined ? ['name'] : [],
      message: `stack name '${name}' ${stackProblem}; names must be DNS labels (a-z, 0-9, -)`,
    });
  }
  const services = isPlainObject(obj.services) ? obj.services : {};
  const lenient: Record<string, { name: string; dependencies: DependencySpec[] }> = {};
  for (const [svcName, svc] of Object.entries(services)) {
    const problem = dnsLabelProblem(svcName);
    if (problem) {
      out.push({
        code: 'invalid_name',
        path: ['services', svcName],
        atKey: true,
        message: `service name '${svcName}' ${problem}; names must be DNS labels (a-z, 0-9, -)`,
      });
    }
    const s = isPlainObject(svc) ? svc : {};
    if (Array.isArray(s.tags)) {
      s.tags.forEach((tag, i) => {
        const p = typeof tag === 'string' ? dnsLabelProblem(tag) : undefined;
        if (p) out.push({ code: 'invalid_name', path: ['services', svcName, 'tags', i], message: `tag '${String(tag)}' ${p}; tags must be DNS labels` });
      });
    }
    const deps: DependencySpec[] = [];
    (Array.isArray(s.dependencies) ? s.dependencies : []).forEach((d, index) => {
      if (typeof d === 'string') deps.push({ name: d, type: 'required', index });
      else if (isPlainObject(d) && typeof d.name === 'string') {
        // A dependency whose type is invalid is reported by the schema; judging it here would guess.
        if (d.type !== undefined && !DEPENDENCY_TYPES.includes(d.type as DependencyType)) return;
        deps.push({ name: d.name, type: (d.type as DependencyType | undefined) ?? 'required', index });
      }
    });
    lenient[svcName] = { name: svcName, dependencies: deps };
  }
  // concat, not push(...): a hostile profile can hold more problems than a call has arguments
  return out.concat(buildGraph({ services: lenient }).problems, rawValues(raw), durations(obj), environmentNames(services));
}

/**
 * Values no field can honour, wherever they are: NaN and infinities (YAML's `.nan`, `.inf`) and
 * strings holding a NUL byte (argv, environment and paths cannot carry one).
 */
function rawValues(raw: unknown): RawProblem[] {
  const out: RawProblem[] = [];
  const at: Path = []; // one shared path, copied only for a problem
  const visit = (v: unknown): void => {
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) out.push({ code: 'invalid_number', path: [...at], message: `${String(v)} is not a usable number` });
    } else if (typeof v === 'string') {
      if (v.includes('\0')) out.push({ code: 'nul_byte', path: [...at], message: 'contains a NUL byte, which no argument, variable or path can carry' });
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        at.push(i);
        visit(v[i]);
        at.pop();
      }
    } else if (isPlainObject(v)) {
      for (const [k, x] of Object.entries(v)) {
        at.push(k);
        if (k.includes('\0')) out.push({ code: 'nul_byte', path: [...at], atKey: true, message: 'the key contains a NUL byte' });
        visit(x);
        at.pop();
      }
    }
  };
  visit(raw); // depth is bounded by the parsers (MAX_DEPTH)
  return out;
}

/** Every duration must fit a Node timer; intervals, timeouts and ttls must also be above zero. */
function durations(profile: Record<string, unknown>): RawProblem[] {
  const out: RawProblem[] = [];
  const check = (owner: unknown, at: Path, key: string, positive: boolean) => {
    if (!isPlainObject(owner) || owner[key] === undefined) return;
    const problem = durationProblem(owner[key], { positive });
    if (problem) out.push({ code: 'invalid_duration', path: [...at, key], message: problem });
  };
  const healthCheck = (hc: unknown, at: Path) => {
    check(hc, at, 'interval', true);
    check(hc, at, 'timeout', true);
    check(hc, at, 'startPeriod', false);
  };
  check(profile.discovery, ['discovery'], 'ttl', true);
  check(profile.discovery, ['discovery'], 'heartbeatInterval', true);
  check(profile.coordination, ['coordination'], 'dependencyTimeout', true);
  const services = isPlainObject(profile.services) ? profile.services : {};
  for (const [name, svc] of Object.entries(services)) {
    if (!isPlainObject(svc)) continue;
    const at = ['services', name];
    check(svc, at, 'stopGracePeriod', false);
    if (isPlainObject(svc.restart)) {
      check(svc.restart, [...at, 'restart'], 'backoff', false);
      check(svc.restart, [...at, 'restart'], 'maxBackoff', false);
    }
    healthCheck(svc.healthCheck, [...at, 'healthCheck']);
    if (Array.isArray(svc.dependencies))
      svc.dependencies.forEach((d, i) => isPlainObject(d) && healthCheck(d.healthCheck, [...at, 'dependencies', i, 'healthCheck']));
  }
  return out;
}

/** An environment name with `=` sets another variable (`PATH=/tmp/evil:…`); newlines and empty names break env files. */
function environmentNames(services: Record<string, unknown>): RawProblem[] {
  const out: RawProblem[] = [];
  const bad = (name: string) => name === '' || /[=\0\r\n]/.test(name);
  const message = (name: string) => `environment name ${JSON.stringify(name)} must be non-empty and hold no '=', newline or NUL`;
  for (const [svcName, svc] of Object.entries(services)) {
    if (!isPlainObject(svc)) continue;
    if (isPlainObject(svc.environment)) {
      for (const name of Object.keys(svc.environment)) {
        if (bad(name)) out.push({ code: 'invalid_env_name', path: ['services', svcName, 'environment', name], atKey: true, message: message(name) });
      }
    }
    if (Array.isArray(svc.secretEnvironment)) {
      svc.secretEnvironment.forEach((name, i) => {
        if (typeof name === 'string' && bad(name))
          out.push({ code: 'invalid_env_name', path: ['services', svcName, 'secretEnvironment', i], message: message(name) });
      });
    }
  }
  return out;
}

const runnable: Rule = (profile) => {
  const out: RawProblem[] = [];
  for (const svc of enabled(profile)) {
    if (svc.runtime === 'docker' && !svc.image) {
      out.push({ code: 'missing_image', path: svcPath(svc), message: 'runs on docker but has no image' });
    }
    if (svc.runtime === 'process' && !svc.command) {
      out.push({ code: 'missing_command', path: svcPath(svc), message: 'runs as a process but has no command' });
    }
    for (const key of ['command', 'entrypoint'] as const) {
      const argv = svc[key];
      if (!argv) continue;
      if (argv.length === 0 || argv[0]!.trim() === '') {
        out.push({ code: 'empty_command', path: svcPath(svc, key), message: 'names no program: the first word is empty' });
        continue;
      }
      // Neither runtime splits words: a single string with spaces is one program name. Only a
      // command given `shell: true` runs through /bin/sh (an entrypoint never does).
      if (argv.length === 1 && /\s/.test(argv[0]!) && !(svc.shell && key === 'command')) {
        out.push({
          code: 'command_needs_argv',
          path: svcPath(svc, key),
          message: `is a single string with spaces: write it as an argv list ([node, index.js])${key === 'command' ? ', or set shell: true to run it through /bin/sh' : ''}`,
        });
      }
    }
  }
  return out;
};

/** Signals the host knows; `stop` would fail on any other name. */
const stopSignal: Rule = (profile) =>
  enabled(profile)
    .filter((svc) => !Object.prototype.hasOwnProperty.call(osConstants.signals, svc.stopSignal))
    .map((svc) => ({
      code: 'invalid_signal',
      path: svcPath(svc, 'stopSignal'),
      message: `'${svc.stopSignal}' is not a signal of this system (for example SIGTERM, SIGINT, SIGQUIT)`,
    }));

/** A service's address is what it registers in discovery and where its health is probed: a host name or an IP. */
const addresses: Rule = (profile) => {
  const out: RawProblem[] = [];
  for (const svc of Object.values(profile.services)) {
    if (net.isIP(svc.address) === 0 && !isHostName(svc.address)) {
      out.push({ code: 'invalid_address', path: svcPath(svc, 'address'), message: `${JSON.stringify(svc.address)} is not a host name or an IP address` });
    }
  }
  return out;
};

function isHostName(text: string): boolean {
  return text.length <= 253 && /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/.test(text);
}

/** `hostAddresses`: the addresses of the profile's declared hosts, which probes may reach too. */
function checkHealth(hc: HealthCheckSpec, at: (string | number)[], hostAddresses: ReadonlySet<string>): RawProblem[] {
  const out: RawProblem[] = [];
  const needsPort = HEALTH_STRATEGIES.find((d) => d.name === hc.strategy)?.capabilities.needsPort ?? false;
  if (needsPort && hc.port === undefined) {
    out.push({ code: 'missing_port', path: at, message: `${hc.strategy} health check needs a port (set healthCheck.port or the service's port)` });
  }
  if (hc.strategy === 'command') {
    if (!hc.command) out.push({ code: 'missing_command', path: at, message: 'command health check needs a command' });
    else if (hc.command.length === 1 && /\s/.test(hc.command[0]!) && !hc.shell) {
      out.push({ code: 'command_needs_argv', path: [...at, 'command'], message: 'is a single string with spaces: write an argv list, or set shell: true' });
    }
  }
  if (hc.host !== undefined && needsPort && !isLoopbackHost(hc.host) && !hostAddresses.has(hc.host)) {
    out.push({
      code: 'remote_health_host',
      path: [...at, 'host'],
      message: `'${hc.host}' is neither a loopback address nor a declared host's: health probes only reach loopback (127.0.0.1, ::1, localhost) and the addresses under hosts:`,
    });
  }
  if (hc.strategy === 'file' && !hc.path) out.push({ code: 'missing_path', path: at, message: 'file health check needs a path' });
  if (hc.strategy === 'systemd' && !hc.unit) out.push({ code: 'missing_unit', path: at, message: 'systemd health check needs a unit' });
  return out;
}

const health: Rule = (profile) => {
  const out: RawProblem[] = [];
  const hostAddresses = new Set(Object.values(profile.hosts).map((h) => h.address));
  for (const svc of enabled(profile)) {
    if (svc.healthCheck) {
      out.push(...checkHealth(svc.healthCheck, svcPath(svc, 'healthCheck'), hostAddresses));
      if (svc.healthCheck.strategy === 'docker' && svc.runtime !== 'docker') {
        out.push({ code: 'invalid_health', path: svcPath(svc, 'healthCheck', 'strategy'), message: "the 'docker' strategy needs runtime: docker" });
      }
    }
    for (const dep of svc.dependencies) {
      if (!dep.healthCheck) continue;
      const target = profile.services[dep.name];
      const hc = dep.healthCheck.port === undefined && target?.port !== undefined ? { ...dep.healthCheck, port: target.port } : dep.healthCheck;
      out.push(...checkHealth(hc, svcPath(svc, 'dependencies', dep.index, 'healthCheck'), hostAddresses));
    }
  }
  return out;
};

const templates: Rule = (profile) => {
  const out: RawProblem[] = [];
  for (const svc of Object.values(profile.services)) {
    const seen = new Set<string>();
    for (const t of svc.templates) {
      const at = svcPath(svc, 'templates', t.index);
      const hasData = t.data !== undefined;
      const hasText = t.template !== undefined;
      if (hasData === hasText) out.push({ code: 'invalid_template', path: at, message: 'needs exactly one of `data` (structured) or `template` (free text)' });
      if (hasData && t.format === 'text')
        out.push({ code: 'invalid_template', path: [...at, 'format'], message: 'structured `data` needs a format: json, yaml, toml, env or ini' });
      const normal = path.posix.normalize(t.destination.replace(/\\/g, '/'));
      if (path.isAbsolute(t.destination) || normal.startsWith('../') || normal === '..' || normal === '.') {
        out.push({
          code: 'invalid_destination',
          path: [...at, 'destination'],
          message: `'${t.destination}' must be a relative path inside the service's config folder`,
        });
      }
      if (seen.has(normal))
        out.push({ code: 'duplicate_destination', path: [...at, 'destination'], message: `'${t.destination}' is written by another template of this service` });
      seen.add(normal);
      if (t.env && t.format !== 'env') out.push({ code: 'invalid_template', path: [...at, 'env'], message: 'env: true needs format: env' });
      if (t.changeMode === 'script' && !t.changeScript)
        out.push({ code: 'invalid_template', path: [...at, 'changeMode'], message: 'changeMode: script needs changeScript (an argv)' });
    }
  }
  return out;
};

const ports: Rule = (profile) => {
  const out: RawProblem[] = [];
  // Published ports by port/protocol, then address: a wildcard address takes the port on all of them.
  const owners = new Map<string, { ip: string; svc: string }[]>();
  const wildcard = (ip: string) => ip === '0.0.0.0' || ip === '::';
  for (const svc of enabled(profile)) {
    svc.ports.forEach((p, i) => {
      const at = svcPath(svc, 'ports', i);
      const bad = [p.host, p.container].find((n) => !Number.isInteger(n) || n < 1 || n > 65535);
      if (bad !== undefined) {
        out.push({ code: 'invalid_port', path: at, message: `port ${String(bad)} is not between 1 and 65535` });
        return;
      }
      if (net.isIP(p.hostIp) === 0) {
        out.push({ code: 'invalid_port', path: at, message: `'${p.hostIp}' is not an IP address` });
        return;
      }
      const key = `${p.host}/${p.protocol}`;
      const list = owners.get(key) ?? [];
      const other = list.find((o) => o.ip === p.hostIp || wildcard(o.ip) || wildcard(p.hostIp));
      if (other)
        out.push({
          code: 'port_conflict',
          path: at,
          message: `host port ${p.host}/${p.protocol} on ${p.hostIp} is already published by '${other.svc}' (on ${other.ip})`,
        });
      else owners.set(key, [...list, { ip: p.hostIp, svc: svc.name }]);
    });
  }
  return out;
};

const volumes: Rule = (profile) => {
  const out: RawProblem[] = [];
  for (const svc of enabled(profile)) {
    svc.volumes.forEach((v, i) => {
      if (!v.target.startsWith('/'))
        out.push({ code: 'invalid_volume', path: svcPath(svc, 'volumes', i), message: `target '${v.target}' must be an absolute path in the container` });
    });
  }
  return out;
};

const variables: Rule = (profile) => {
  const out: RawProblem[] = [];
  for (const v of Object.values(profile.variables)) {
    const at = ['variables', v.name];
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(v.name))
      out.push({ code: 'invalid_name', path: at, atKey: true, message: `variable name '${v.name}' must be an identifier (letters, digits, _)` });
    if (v.default === undefined) continue;
    const expected = v.type === 'number' ? 'number' : v.type === 'boolean' ? 'boolean' : 'string';
    if (typeof v.default !== expected)
      out.push({ code: 'invalid_type', path: [...at, 'default'], message: `default of a ${v.type} variable must be a ${expected}` });
    if (v.type === 'url' && typeof v.default === 'string' && !isNetworkUrl(v.default)) {
      out.push({ code: 'invalid_format', path: [...at, 'default'], message: `'${v.default}' is not a URL with a host (such as https://example.com)` });
    }
    if (v.type === 'secret')
      out.push({
        code: 'secret_default',
        path: [...at, 'default'],
        severity: 'warning',
        message: 'a secret with a default in the profile is not secret; prefer generate: {} or --var/--vars',
      });
  }
  return out;
};

/** A URL naming a host: `javascript:`, `data:` or `mailto:` values are not addresses of anything. */
function isNetworkUrl(text: string): boolean {
  if (!URL.canParse(text) || /[\s]/.test(text)) return false;
  const url = new URL(text);
  return url.host !== '' && !/^(javascript|data|vbscript|file|blob):$/i.test(url.protocol);
}

/** A required dependency on a disabled service can never be met: `up` would wait for it forever. */
const disabledDependencies: Rule = (profile) => {
  const out: RawProblem[] = [];
  for (const svc of enabled(profile)) {
    for (const dep of svc.dependencies) {
      const target = profile.services[dep.name];
      if (target && !target.enable && (dep.type === 'required' || dep.type === 'circular')) {
        out.push({
          code: 'disabled_dependency',
          path: svcPath(svc, 'dependencies', dep.index),
          message: `requires '${dep.name}', which is disabled (enable: false): enable it, or make the dependency optional or soft`,
        });
      }
    }
  }
  return out;
};

/** Settings only runtimes that run images read: on a process service they do nothing, which deserves a word. */
const DOCKER_ONLY = ['image', 'ports', 'volumes', 'network', 'resources', 'security', 'init', 'pull'] as const;

/**
 * The keys of `healthCheck` each strategy owns (its definition's `options` in src/health/drivers/;
 * listed here because reading them from the definitions needs zod, which a valid profile never
 * loads; test/profile/rules.test.ts checks the two agree). Strategies that need a port also read
 * `host` and `port`; every strategy reads strategy, interval, timeout, retries and startPeriod.
 */
export const HEALTH_OWN_KEYS: Record<string, readonly string[]> = {
  http: ['endpoint', 'scheme', 'expectedStatus'],
  tcp: [],
  command: ['command', 'shell'],
  file: ['path'],
  systemd: ['unit'],
  docker: [],
};
const HEALTH_COMMON = new Set(['strategy', 'interval', 'timeout', 'retries', 'startPeriod']);

function healthReads(strategy: string): readonly string[] | undefined {
  const def = HEALTH_STRATEGIES.find((d) => d.name === strategy);
  const own = HEALTH_OWN_KEYS[strategy];
  if (!def || !own) return undefined; // unknown to this table: judge nothing
  return def.capabilities.needsPort ? [...own, 'host', 'port'] : own;
}

function ineffectiveHealth(hc: unknown, at: Path): RawProblem[] {
  if (!isPlainObject(hc) || typeof hc.strategy !== 'string') return [];
  const reads = healthReads(hc.strategy);
  if (!reads) return [];
  return Object.keys(hc)
    .filter((key) => !HEALTH_COMMON.has(key) && !reads.includes(key))
    .map((key) => ({
      code: 'ineffective_field',
      severity: 'warning' as const,
      path: [...at, key],
      atKey: true,
      message: `'${key}' has no effect on a ${String(hc.strategy)} health check`,
    }));
}

const ineffective: Rule = (profile, raw) => {
  const out: RawProblem[] = [];
  for (const svc of enabled(profile)) {
    const written = raw.services[svc.name] as Record<string, unknown> | undefined;
    // Container settings mean nothing to a runtime that runs no images (the runtime registry says which).
    if (RUNTIMES.find((r) => r.name === svc.runtime)?.capabilities.images === false) {
      for (const key of DOCKER_ONLY) {
        if (written?.[key] === undefined) continue;
        out.push({
          code: 'ineffective_field',
          severity: 'warning',
          path: svcPath(svc, key),
          atKey: true,
          message: `'${key}' has no effect on a ${svc.runtime} service (only runtimes that run images read it)`,
        });
      }
    }
    out.push(...ineffectiveHealth(written?.healthCheck, svcPath(svc, 'healthCheck')));
    const deps = Array.isArray(written?.dependencies) ? written.dependencies : [];
    deps.forEach((d, i) => isPlainObject(d) && out.push(...ineffectiveHealth(d.healthCheck, svcPath(svc, 'dependencies', i, 'healthCheck'))));
  }
  return out;
};

const coordination: Rule = (profile) => {
  const out: RawProblem[] = [];
  const d = profile.discovery;
  if (d.heartbeatIntervalMs >= d.ttlMs) {
    out.push({
      code: 'invalid_ttl',
      path: ['discovery', 'heartbeatInterval'],
      message: `heartbeat interval (${d.heartbeatIntervalMs} ms) must be shorter than the registration ttl (${d.ttlMs} ms)`,
    });
  }
  return out;
};

/** Each runtime's own rules on the services it runs (drivers/runtime/registry.ts: `serviceProblems`). */
const runtimeRules: Rule = (profile) =>
  enabled(profile).flatMap((svc) =>
    (runtimeDefinition(svc.runtime).serviceProblems?.(svc, (profile as unknown as Record<string, object>)[svc.runtime] ?? {}) ?? []).map((p) => ({
      ...p,
      path: p.path?.split('.') ?? [],
    })),
  );

export const RULES: readonly Rule[] = [
  runnable,
  stopSignal,
  addresses,
  health,
  templates,
  ports,
  volumes,
  variables,
  disabledDependencies,
  ineffective,
  coordination,
  runtimeRules,
  ...HOST_RULES,
];

export function checkProfile(profile: Profile, raw: RawProfile): RawProblem[] {
  return RULES.flatMap((rule) => rule(profile, raw));
}
