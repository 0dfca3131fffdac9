/**
 * Raw profile → normalised Profile: shorthands expanded, units converted to milliseconds,
 * defaults filled in. Pure: no I/O except reading template files that `load.ts` already checked.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_DISCOVERY_BACKENDS, DISCOVERY_COMMON_DEFAULTS, discoveryDriverDefaults } from '../discovery/registry.js';
import { healthStrategyDefinition } from '../health/registry.js';
import { DEFAULT_RUNTIME, defaultRuntimeFor, RUNTIMES, type RuntimeSections } from '../drivers/runtime/registry.js';
import { formatFromDestination } from '../formats/registry.js';
import { parseByteSize, parseDuration } from '../util/duration.js';
// Environment names treated as secrets even when not listed in `secretEnvironment`: one pattern for the whole tool.
import { isSecretName } from '../util/redact.js';
import type { RawDiscovery, RawHealthCheck, RawProfile, RawService } from './schema.js';
import type {
  DependencySpec,
  DiscoveryConfig,
  HealthCheckSpec,
  HostSpec,
  PortMapping,
  Profile,
  ProfileSource,
  RestartPolicy,
  ServiceSpec,
  TemplateSpec,
  VariableSpec,
  VolumeSpec,
} from './types.js';
import { ALL_HOSTS } from './types.js';

export const DEFAULTS = {
  healthIntervalMs: 5_000,
  healthTimeoutMs: 5_000,
  healthRetries: 3,
  dependencyTimeoutMs: 60_000,
  stopGracePeriodMs: 10_000,
  address: '127.0.0.1',
} as const;

/** Free-text templates: inline when they hold a newline or a mustache, else a file path. */
export function isInlineTemplate(text: string): boolean {
  return text.includes('\n') || text.includes('{{');
}

const ms = (v: number | string | undefined, fallback: number): number => (v === undefined ? fallback : (parseDuration(v) ?? fallback));

export function normalizeProfile(raw: RawProfile, ctx: { defaultName: string; source: ProfileSource }): Profile {
  const runtime = raw.runtime;
  const hosts: Record<string, HostSpec> = {};
  for (const [name, h] of Object.entries(raw.hosts ?? {})) hosts[name] = { name, address: h.address, ...(h.docker !== undefined ? { docker: h.docker } : {}) };
  const services: Record<string, ServiceSpec> = {};
  for (const [name, svc] of Object.entries(raw.services)) services[name] = normalizeService(name, svc, runtime, hosts);
  const variables: Record<string, VariableSpec> = {};
  for (const [name, v] of Object.entries(raw.variables ?? {})) variables[name] = normalizeVariable(name, v);
  return {
    name: raw.name ?? ctx.defaultName,
    ...(raw.description !== undefined ? { description: raw.description } : {}),
    domain: raw.domain ?? 'localhost',
    runtime: runtime ?? DEFAULT_RUNTIME,
    discovery: normalizeDiscovery(raw.discovery ?? {}),
    coordination: {
      strategy: raw.coordination?.strategy ?? 'hub-spoke',
      enableHealthChecks: raw.coordination?.enableHealthChecks ?? true,
      dependencyTimeoutMs: ms(raw.coordination?.dependencyTimeout, DEFAULTS.dependencyTimeoutMs),
    },
    ...runtimeSections(raw),
    variables,
    services,
    hosts,
    ...(raw.stateDir !== undefined ? { stateDir: raw.stateDir } : {}),
    source: ctx.source,
  };
}

/** Each runtime's section (`docker:`), an empty one when the profile has none. */
function runtimeSections(raw: RawProfile): RuntimeSections {
  const given = raw as unknown as Record<string, object | undefined>;
  const withSettings = RUNTIMES.filter((r) => r.settings !== undefined);
  return Object.fromEntries(withSettings.map((r) => [r.name, { ...(given[r.name] ?? {}) }])) as RuntimeSections;
}

function normalizeService(name: string, raw: RawService, profileRuntime: RawProfile['runtime'], hosts: Record<string, HostSpec>): ServiceSpec {
  const port = raw.port;
  // Placed on a host: reachable at that host's address unless written, and published there (not on loopback).
  // A singleton (leader-follower) runs on whichever host leads: published on every address there,
  // reachable at that host's address (the engine fills it in, as for `host: all`).
  const anyHost = raw.host === ALL_HOSTS || (raw.singleton === true && raw.host === undefined && Object.keys(hosts).length > 0);
  const hostAddress = anyHost ? '0.0.0.0' : raw.host === undefined ? undefined : hosts[raw.host]?.address;
  const addressFromHost = (raw.host !== undefined || anyHost) && raw.address === undefined;
  const publishOn = hostAddress ?? '127.0.0.1';
  const shell = raw.shell ?? false;
  const environment: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw.environment ?? {})) environment[k] = String(v);
  const secretEnvironment = [...new Set([...(raw.secretEnvironment ?? []), ...Object.keys(environment).filter(isSecretName)])];
  const healthCheck = raw.healthCheck
    ? normalizeHealthCheck(raw.healthCheck, port)
    : raw.healthEndpoint
      ? normalizeHealthCheck({ strategy: 'http', endpoint: raw.healthEndpoint }, port)
      : undefined;
  const kind = raw.kind ?? 'service';
  return {
    name,
    enable: raw.enable ?? true,
    kind,
    ...(raw.description !== undefined ? { description: raw.description } : {}),
    runtime: raw.runtime ?? profileRuntime ?? defaultRuntimeFor(raw),
    ...(raw.image !== undefined ? { image: raw.image } : {}),
    ...(raw.command !== undefined ? { command: toArgv(raw.command) } : {}),
    ...(raw.entrypoint !== undefined ? { entrypoint: toArgv(raw.entrypoint) } : {}),
    shell,
    ...(raw.workingDir !== undefined ? { workingDir: raw.workingDir } : {}),
    ...(port !== undefined ? { port } : {}),
    ports: (raw.ports ?? []).map((p) => normalizePort(p, publishOn)),
    address: raw.address ?? (anyHost ? undefined : hostAddress) ?? DEFAULTS.address,
    ...(raw.scheme !== undefined ? { scheme: raw.scheme } : {}),
    ...(raw.network !== undefined ? { network: raw.network } : {}),
    tags: raw.tags ?? [],
    meta: raw.meta ?? {},
    environment,
    secretEnvironment,
    ...(healthCheck ? { healthCheck } : {}),
    dependencies: (raw.dependencies ?? []).map((d, index): DependencySpec => {
      if (typeof d === 'string') return { name: d, type: 'required', onDependencyRestart: 'restart', index };
      const type = d.type ?? 'required';
      return {
        name: d.name,
        type,
        onDependencyRestart: d.onDependencyRestart ?? defaultReaction(type),
        index,
        ...(d.healthCheck ? { healthCheck: normalizeHealthCheck(d.healthCheck, undefined) } : {}),
      };
    }),
    templates: (raw.templates ?? []).map(normalizeTemplate),
    restart: normalizeRestart(raw.restart, kind),
    stopSignal: raw.stopSignal ?? 'SIGTERM',
    stopGracePeriodMs: ms(raw.stopGracePeriod, DEFAULTS.stopGracePeriodMs),
    volumes: (raw.volumes ?? []).map(normalizeVolume),
    resources: {
      ...(raw.resources?.cpus !== undefined ? { cpus: raw.resources.cpus } : {}),
      ...(raw.resources?.memory !== undefined ? { memory: parseByteSize(raw.resources.memory) ?? 0 } : {}),
      ...(raw.resources?.pids !== undefined ? { pids: raw.resources.pids } : {}),
    },
    security: {
      readOnlyRootFilesystem: raw.security?.readOnlyRootFilesystem ?? false,
      noNewPrivileges: raw.security?.noNewPrivileges ?? false,
      capDrop: raw.security?.capDrop ?? [],
      capAdd: raw.security?.capAdd ?? [],
      ...(raw.security?.user !== undefined ? { user: raw.security.user } : {}),
      tmpfs: raw.security?.tmpfs ?? [],
    },
    init: raw.init ?? true,
    pull: raw.pull ?? 'missing',
    replicas: raw.replicas ?? 1,
    ...(raw.host !== undefined ? { host: raw.host } : {}),
    ...(raw.external ? { external: raw.stack !== undefined ? { stack: raw.stack } : {} } : {}),
    ...(raw.singleton ? { singleton: true } : {}),
    ...(addressFromHost ? { addressFromHost } : {}),
  };
}

function toArgv(v: string | string[]): string[] {
  return typeof v === 'string' ? [v] : [...v];
}

/** Common settings here; the strategy's own keys are normalised by its definition (health/registry.ts). */
export function normalizeHealthCheck(raw: RawHealthCheck, servicePort: number | undefined): HealthCheckSpec {
  const { strategy, host, port = servicePort, interval, timeout, retries, startPeriod, ...own } = raw;
  return {
    strategy,
    ...(host !== undefined ? { host } : {}),
    ...(port !== undefined ? { port } : {}),
    ...healthStrategyDefinition(strategy).normalize(own),
    intervalMs: ms(interval, DEFAULTS.healthIntervalMs),
    timeoutMs: ms(timeout, DEFAULTS.healthTimeoutMs),
    retries: retries ?? DEFAULTS.healthRetries,
    startPeriodMs: ms(startPeriod, 0),
  };
}

function normalizePort(p: number | string | { container: number; host?: number; hostIp?: string; protocol?: 'tcp' | 'udp' }, publishOn: string): PortMapping {
  // Published on loopback unless an address is given (safer than Compose's 0.0.0.0 default); a
  // service placed on a host of a multi-host profile is published on that host's address.
  if (typeof p === 'number') return { container: p, host: p, hostIp: publishOn, protocol: 'tcp' };
  if (typeof p === 'object') return { container: p.container, host: p.host ?? p.container, hostIp: p.hostIp ?? publishOn, protocol: p.protocol ?? 'tcp' };
  const [spec, proto] = p.split('/');
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(?:(\d+):)?(\d+)$/.exec(spec ?? '');
  const container = Number(m?.[3]);
  return {
    container,
    host: m?.[2] ? Number(m[2]) : container,
    hostIp: m?.[1]?.replace(/^\[|\]$/g, '') ?? publishOn,
    protocol: proto === 'udp' ? 'udp' : 'tcp',
  };
}

function normalizeVolume(v: string | { source?: string; target: string; readOnly?: boolean; type?: 'bind' | 'volume' | 'tmpfs' }): VolumeSpec {
  if (typeof v === 'object') {
    const type = v.type ?? (v.source === undefined ? 'volume' : path.isAbsolute(v.source) ? 'bind' : 'volume');
    return { source: v.source ?? '', target: v.target, readOnly: v.readOnly ?? false, type };
  }
  const parts = v.split(':');
  if (parts.length === 1) return { source: '', target: parts[0] ?? '', readOnly: false, type: 'volume' };
  const [source = '', target = '', opts = ''] = parts;
  return { source, target, readOnly: opts.split(',').includes('ro'), type: path.isAbsolute(source) ? 'bind' : 'volume' };
}

function normalizeRestart(raw: RawService['restart'], kind: ServiceSpec['kind']): RestartPolicy {
  const base: RestartPolicy = { policy: 'no', maxRetries: 5, backoffMs: 1_000, maxBackoffMs: 30_000, onUnhealthy: true, failuresBeforeRestart: 3 };
  if (raw === undefined) return kind === 'task' ? base : base;
  if (typeof raw === 'string') return { ...base, policy: raw };
  return {
    policy: raw.policy,
    maxRetries: raw.maxRetries ?? base.maxRetries,
    backoffMs: ms(raw.backoff, base.backoffMs),
    maxBackoffMs: ms(raw.maxBackoff, base.maxBackoffMs),
    onUnhealthy: raw.onUnhealthy ?? base.onUnhealthy,
    failuresBeforeRestart: raw.failuresBeforeRestart ?? base.failuresBeforeRestart,
  };
}

/** A required dependency's restart restarts its dependent; the others only re-render it. */
function defaultReaction(type: DependencySpec['type']): DependencySpec['onDependencyRestart'] {
  return type === 'required' ? 'restart' : 'rerender';
}

export { formatFromDestination } from '../formats/registry.js';

function normalizeTemplate(raw: NonNullable<RawService['templates']>[number], index: number): TemplateSpec {
  const out: TemplateSpec = {
    destination: raw.destination,
    format: raw.format ?? formatFromDestination(raw.destination),
    env: raw.env ?? false,
    external: raw.external ?? [],
    changeMode: raw.changeMode ?? 'restart',
    changeSignal: raw.changeSignal ?? 'SIGHUP',
    ...(raw.changeScript ? { changeScript: [...raw.changeScript] } : {}),
    waitMinMs: ms(raw.wait?.min, 0),
    waitMaxMs: ms(raw.wait?.max, 0),
    splayMs: ms(raw.splay, 0),
    index,
  };
  if (raw.data !== undefined) out.data = raw.data;
  if (raw.template !== undefined) {
    if (isInlineTemplate(raw.template)) out.template = raw.template;
    else {
      out.templateFile = raw.template; // made absolute and checked by load.ts
      out.template = readFileSync(raw.template, 'utf8');
    }
  }
  if (raw.mode !== undefined) out.mode = typeof raw.mode === 'number' ? raw.mode : parseInt(raw.mode, 8);
  return out;
}

function normalizeVariable(name: string, raw: NonNullable<RawProfile['variables']>[string]): VariableSpec {
  if (typeof raw !== 'object') {
    return { name, type: typeof raw === 'number' ? 'number' : typeof raw === 'boolean' ? 'boolean' : 'string', required: false, default: raw };
  }
  const type = raw.type ?? (typeof raw.default === 'number' ? 'number' : typeof raw.default === 'boolean' ? 'boolean' : 'string');
  return {
    name,
    type,
    required: raw.required ?? false,
    ...(raw.default !== undefined ? { default: raw.default } : {}),
    ...(raw.description !== undefined ? { description: raw.description } : {}),
    ...(raw.generate ? { generate: { bytes: raw.generate.bytes ?? 32, encoding: raw.generate.encoding ?? 'hex' } } : {}),
  };
}

/**
 * Common settings, then every backend's options: the raw value where the profile gives one, the
 * backend's default otherwise (both from the discovery registry; the schema admits no other key).
 */
function normalizeDiscovery(raw: RawDiscovery): DiscoveryConfig {
  const { backend, backends, ttl, heartbeatInterval, tls, ...options } = raw;
  return {
    backends: backends ?? (backend ? [backend] : [...DEFAULT_DISCOVERY_BACKENDS]),
    ...discoveryDriverDefaults(),
    ...(options as Partial<DiscoveryConfig>),
    ttlMs: ms(ttl, DISCOVERY_COMMON_DEFAULTS.ttlMs),
    heartbeatIntervalMs: ms(heartbeatInterval, DISCOVERY_COMMON_DEFAULTS.heartbeatIntervalMs),
    ...(tls ? { tls: { ...tls, insecureSkipVerify: tls.insecureSkipVerify ?? false } } : {}),
  };
}
