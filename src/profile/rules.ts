/**
 * Cross-field rules, run on the normalised profile after the schema passed. Each rule is a
 * small function returning every problem it finds; `checkProfile` runs them all.
 */
import path from 'node:path';
import { buildGraph } from '../graph/graph.js';
import { isPlainObject } from './merge.js';
import { dnsLabelProblem } from '../util/names.js';
import type { RawProblem } from './issues.js';
import type { RawProfile } from './schema.js';
import { DEPENDENCY_TYPES, type DependencySpec, type DependencyType, type HealthCheckSpec, type Profile, type ServiceSpec } from './types.js';

type Rule = (profile: Profile, raw: RawProfile) => RawProblem[];

const svcPath = (s: ServiceSpec, ...rest: (string | number)[]) => ['services', s.name, ...rest];
const enabled = (p: Profile) => Object.values(p.services).filter((s) => s.enable);

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
    out.push({ code: 'invalid_name', path: obj.name !== undefined ? ['name'] : [], message: `stack name '${name}' ${stackProblem}; names must be DNS labels (a-z, 0-9, -)` });
  }
  const services = isPlainObject(obj.services) ? obj.services : {};
  const lenient: Record<string, { name: string; dependencies: DependencySpec[] }> = {};
  for (const [svcName, svc] of Object.entries(services)) {
    const problem = dnsLabelProblem(svcName);
    if (problem) {
      out.push({ code: 'invalid_name', path: ['services', svcName], atKey: true, message: `service name '${svcName}' ${problem}; names must be DNS labels (a-z, 0-9, -)` });
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
  out.push(...buildGraph({ services: lenient }).problems);
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
    if (svc.command && svc.command.length === 1 && /\s/.test(svc.command[0]!) && !svc.shell && svc.runtime === 'process') {
      out.push({
        code: 'command_needs_argv',
        path: svcPath(svc, 'command'),
        message: 'is a single string with spaces: write it as an argv list ([node, index.js]), or set shell: true to run it through /bin/sh',
      });
    }
  }
  return out;
};

function checkHealth(hc: HealthCheckSpec, at: (string | number)[]): RawProblem[] {
  const out: RawProblem[] = [];
  if ((hc.strategy === 'http' || hc.strategy === 'tcp') && hc.port === undefined) {
    out.push({ code: 'missing_port', path: at, message: `${hc.strategy} health check needs a port (set healthCheck.port or the service's port)` });
  }
  if (hc.strategy === 'command') {
    if (!hc.command) out.push({ code: 'missing_command', path: at, message: 'command health check needs a command' });
    else if (hc.command.length === 1 && /\s/.test(hc.command[0]!) && !hc.shell) {
      out.push({ code: 'command_needs_argv', path: [...at, 'command'], message: 'is a single string with spaces: write an argv list, or set shell: true' });
    }
  }
  if (hc.strategy === 'file' && !hc.path) out.push({ code: 'missing_path', path: at, message: 'file health check needs a path' });
  if (hc.strategy === 'systemd' && !hc.unit) out.push({ code: 'missing_unit', path: at, message: 'systemd health check needs a unit' });
  return out;
}

const health: Rule = (profile) => {
  const out: RawProblem[] = [];
  for (const svc of enabled(profile)) {
    if (svc.healthCheck) {
      out.push(...checkHealth(svc.healthCheck, svcPath(svc, 'healthCheck')));
      if (svc.healthCheck.strategy === 'docker' && svc.runtime !== 'docker') {
        out.push({ code: 'invalid_health', path: svcPath(svc, 'healthCheck', 'strategy'), message: "the 'docker' strategy needs runtime: docker" });
      }
    }
    for (const dep of svc.dependencies) {
      if (!dep.healthCheck) continue;
      const target = profile.services[dep.name];
      const hc = dep.healthCheck.port === undefined && target?.port !== undefined ? { ...dep.healthCheck, port: target.port } : dep.healthCheck;
      out.push(...checkHealth(hc, svcPath(svc, 'dependencies', dep.index, 'healthCheck')));
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
      if (hasData && t.format === 'text') out.push({ code: 'invalid_template', path: [...at, 'format'], message: 'structured `data` needs a format: json, yaml, toml, env or ini' });
      const normal = path.posix.normalize(t.destination.replace(/\\/g, '/'));
      if (path.isAbsolute(t.destination) || normal.startsWith('../') || normal === '..') {
        out.push({ code: 'invalid_destination', path: [...at, 'destination'], message: `'${t.destination}' must be a relative path inside the service's config folder` });
      }
      if (seen.has(normal)) out.push({ code: 'duplicate_destination', path: [...at, 'destination'], message: `'${t.destination}' is written by another template of this service` });
      seen.add(normal);
      if (t.env && t.format !== 'env') out.push({ code: 'invalid_template', path: [...at, 'env'], message: 'env: true needs format: env' });
      if (t.changeMode === 'script' && !t.changeScript) out.push({ code: 'invalid_template', path: [...at, 'changeMode'], message: 'changeMode: script needs changeScript (an argv)' });
    }
  }
  return out;
};

const ports: Rule = (profile) => {
  const out: RawProblem[] = [];
  const owner = new Map<string, string>();
  for (const svc of enabled(profile)) {
    svc.ports.forEach((p, i) => {
      const key = `${p.hostIp}:${p.host}/${p.protocol}`;
      const other = owner.get(key);
      if (other) out.push({ code: 'port_conflict', path: svcPath(svc, 'ports', i), message: `host port ${p.host}/${p.protocol} on ${p.hostIp} is already published by '${other}'` });
      else owner.set(key, svc.name);
    });
  }
  return out;
};

const volumes: Rule = (profile) => {
  const out: RawProblem[] = [];
  for (const svc of enabled(profile)) {
    svc.volumes.forEach((v, i) => {
      if (!v.target.startsWith('/')) out.push({ code: 'invalid_volume', path: svcPath(svc, 'volumes', i), message: `target '${v.target}' must be an absolute path in the container` });
    });
  }
  return out;
};

const variables: Rule = (profile) => {
  const out: RawProblem[] = [];
  for (const v of Object.values(profile.variables)) {
    const at = ['variables', v.name];
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(v.name)) out.push({ code: 'invalid_name', path: at, atKey: true, message: `variable name '${v.name}' must be an identifier (letters, digits, _)` });
    if (v.default === undefined) continue;
    const expected = v.type === 'number' ? 'number' : v.type === 'boolean' ? 'boolean' : 'string';
    if (typeof v.default !== expected) out.push({ code: 'invalid_type', path: [...at, 'default'], message: `default of a ${v.type} variable must be a ${expected}` });
    if (v.type === 'url' && typeof v.default === 'string' && !URL.canParse(v.default)) out.push({ code: 'invalid_format', path: [...at, 'default'], message: `'${v.default}' is not a URL` });
    if (v.type === 'secret') out.push({ code: 'secret_default', path: [...at, 'default'], severity: 'warning', message: 'a secret with a default in the profile is not secret; prefer generate: {} or --var/--vars' });
  }
  return out;
};

const coordination: Rule = (profile) => {
  const out: RawProblem[] = [];
  const d = profile.discovery;
  if (d.heartbeatIntervalMs >= d.ttlMs) {
    out.push({ code: 'invalid_ttl', path: ['discovery', 'heartbeatInterval'], message: `heartbeat interval (${d.heartbeatIntervalMs} ms) must be shorter than the registration ttl (${d.ttlMs} ms)` });
  }
  if (profile.coordination.dependencyTimeoutMs === 0) {
    out.push({ code: 'invalid_timeout', path: ['coordination', 'dependencyTimeout'], message: 'must be greater than 0: a wait must end' });
  }
  return out;
};

export const RULES: readonly Rule[] = [runnable, health, templates, ports, volumes, variables, coordination];

export function checkProfile(profile: Profile, raw: RawProfile): RawProblem[] {
  return RULES.flatMap((rule) => rule(profile, raw));
}
