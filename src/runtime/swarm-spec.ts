/**
 * Pure mapping from a profile service to the Swarm service that runs it: no manager, no files.
 *
 * Choices:
 * - the Swarm service is `<stack>_<service>` (as `docker stack deploy` names them), labelled with
 *   the stack and service, on the stack's attachable overlay network with the service name as an
 *   alias, so tasks reach each other as `<service>` (or `tasks.<service>` for every task).
 * - endpoint mode `dnsrr` and host-mode published ports by default: a virtual IP and the ingress
 *   routing mesh need IPVS on every node, which many kernels (this one) lack; dnsrr and host mode
 *   work everywhere. `vip` / `ingress` are one setting away where IPVS exists.
 * - health: the profile's check becomes the container's HEALTHCHECK, run by every task's node
 *   (`healthcheckOf`); Swarm holds a task in `starting` until its first healthy result.
 * - rendered files: each becomes a Swarm config, or a Swarm secret when its mode is 0600 (the
 *   template layer forces 0600 on files holding secrets), mounted at `/etc/stack/<destination>`
 *   as the docker runtime mounts them. Both are immutable, so each is named by its content hash
 *   (`<stack>_<service>_<file>_<hash>`): new contents are a new object swapped in by an update.
 * - the config hash label covers the whole spec (configs by name, so by content): an unchanged
 *   service is left alone by a second `up`, a changed one is updated in place (rolling).
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { RestartPolicy, ServiceSpec } from '../profile/types.js';
import { parseDuration } from '../util/duration.js';
import type { SwarmRuntimeSettings, SwarmServiceSettings, SwarmUpdateSettings } from '../drivers/runtime/swarm.js';
// The service rules are part of the definition (stack validate runs them); re-exported for the runtime.
export { swarmServiceProblems } from '../drivers/runtime/swarm.js';

export const SWARM_LABELS = {
  stack: 'io.atproto-stacks.stack',
  service: 'io.atproto-stacks.service',
  configHash: 'io.atproto-stacks.config-hash',
  network: 'io.atproto-stacks.network',
  /** On configs and secrets: the destination they hold. */
  file: 'io.atproto-stacks.file',
} as const;

export const SWARM_CONFIG_DIR = '/etc/stack';
const NS_PER_MS = 1e6;

export function swarmServiceName(stack: string, service: string): string {
  return `${stack}_${service}`;
}

export function swarmNetworkName(stack: string, settings: Pick<SwarmRuntimeSettings, 'network'>): string {
  return settings.network ?? `${stack}_default`;
}

export function labelFilter(stack: string, service?: string): string[] {
  return [`${SWARM_LABELS.stack}=${stack}`, ...(service !== undefined ? [`${SWARM_LABELS.service}=${service}`] : [])];
}

/** One rendered file, ready to become a Swarm config or secret. */
export interface SwarmFile {
  /** Object name: `<stack>_<service>_<file>_<hash12>`. */
  name: string;
  secret: boolean;
  /** Path inside the container. */
  target: string;
  mode: number;
  destination: string;
  data: Buffer;
}

export function swarmFile(stack: string, service: string, destination: string, mode: number, data: Buffer): SwarmFile {
  const slug = destination.replace(/[^A-Za-z0-9_.-]+/g, '-').slice(-40);
  const hash = createHash('sha256').update(data).update(`:${mode}`).digest('hex').slice(0, 12);
  return {
    // Swarm limits object names to 64 characters.
    name: `${stack}_${service}_${slug}`.slice(0, 50) + `_${hash}`,
    secret: (mode & 0o077) === 0,
    target: path.posix.join(SWARM_CONFIG_DIR, destination),
    mode,
    destination,
    data,
  };
}

export interface SwarmServiceInput {
  stack: string;
  service: ServiceSpec;
  environment: Record<string, string>;
  files: SwarmFile[];
  /** Ids of the configs and secrets above, by name. */
  objectIds: Record<string, string>;
  settings: SwarmRuntimeSettings;
}

export interface SwarmServicePlan {
  name: string;
  configHash: string;
  spec: Dockerode.CreateServiceOptions;
}

export function serviceSettings(settings: SwarmRuntimeSettings, service: string): SwarmServiceSettings {
  return settings.services?.[service] ?? {};
}

export function planSwarmService(input: SwarmServiceInput): SwarmServicePlan {
  const { stack, service, settings } = input;
  const own = serviceSettings(settings, service.name);
  const name = swarmServiceName(stack, service.name);
  const labels = { [SWARM_LABELS.stack]: stack, [SWARM_LABELS.service]: service.name };
  const healthcheck = healthcheckOf(service, own);
  const containerSpec: Record<string, unknown> = {
    Image: service.image,
    Labels: labels,
    Env: Object.entries(input.environment)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`),
    ...(service.entrypoint ? { Command: [...service.entrypoint] } : {}),
    ...(service.command ? { Args: service.shell ? ['/bin/sh', '-c', service.command.join(' ')] : [...service.command] } : {}),
    ...(service.workingDir ? { Dir: service.workingDir } : {}),
    ...(service.security.user ? { User: service.security.user } : {}),
    ReadOnly: service.security.readOnlyRootFilesystem,
    StopSignal: service.stopSignal,
    StopGracePeriod: service.stopGracePeriodMs * NS_PER_MS,
    Init: service.init,
    ...(healthcheck ? { HealthCheck: healthcheck } : {}),
    Mounts: service.volumes.map((v) => ({ Type: v.type, Source: v.type === 'tmpfs' ? undefined : v.source, Target: v.target, ReadOnly: v.readOnly })),
    Configs: input.files
      .filter((f) => !f.secret)
      .map((f) => ({ ConfigID: input.objectIds[f.name], ConfigName: f.name, File: { Name: f.target, UID: '0', GID: '0', Mode: f.mode } })),
    Secrets: input.files
      .filter((f) => f.secret)
      .map((f) => ({ SecretID: input.objectIds[f.name], SecretName: f.name, File: { Name: f.target, UID: '0', GID: '0', Mode: f.mode } })),
  };
  const endpointMode = own.endpointMode ?? settings.endpointMode ?? 'dnsrr';
  const publishMode = own.publishMode ?? settings.publishMode ?? 'host';
  const spec = {
    Name: name,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: containerSpec,
      Resources: { Limits: limits(service) },
      // A task runs to completion once; Swarm would otherwise start it again after it exits.
      RestartPolicy: service.kind === 'task' ? { Condition: 'none' } : restartPolicy(service.restart),
      Placement: placement(own),
      Networks: [{ Target: swarmNetworkName(stack, settings), Aliases: [service.name] }],
    },
    Mode: { Replicated: { Replicas: service.replicas } },
    UpdateConfig: updateConfig(own.update, 'rollback'),
    RollbackConfig: updateConfig(own.rollback, 'pause'),
    EndpointSpec: {
      Mode: endpointMode,
      Ports: service.ports.map((p) => ({ Protocol: p.protocol, TargetPort: p.container, PublishedPort: p.host, PublishMode: publishMode })),
    },
  };
  const configHash = createHash('sha256').update(stableStringify(spec)).digest('hex');
  (spec.Labels as Record<string, string>)[SWARM_LABELS.configHash] = configHash;
  return { name, configHash, spec: spec as unknown as Dockerode.CreateServiceOptions };
}

/**
 * The container HEALTHCHECK for a service, from `swarm.services.<name>.healthcheck` when given,
 * else converted from the profile's check: http → busybox-compatible `wget -q -O - URL` (so a
 * 2xx), tcp → `nc -z 127.0.0.1 PORT`. Undefined: the image's own HEALTHCHECK, if any, applies.
 */
export function healthcheckOf(service: ServiceSpec, own: SwarmServiceSettings): Record<string, unknown> | undefined {
  const check = service.healthCheck;
  const timing = check
    ? { Interval: check.intervalMs * NS_PER_MS, Timeout: check.timeoutMs * NS_PER_MS, Retries: check.retries, StartPeriod: check.startPeriodMs * NS_PER_MS }
    : { Interval: 1000 * NS_PER_MS, Timeout: 5000 * NS_PER_MS, Retries: 3 };
  if (own.healthcheck !== undefined) {
    const test = typeof own.healthcheck === 'string' ? ['CMD-SHELL', own.healthcheck] : ['CMD', ...own.healthcheck];
    return { Test: test, ...timing };
  }
  if (!check) return undefined;
  const port = check.port ?? service.port;
  if (check.strategy === 'http') return { Test: ['CMD', 'wget', '-q', '-O', '-', `http://127.0.0.1:${port}${check.endpoint ?? '/'}`], ...timing };
  if (check.strategy === 'tcp') return { Test: ['CMD', 'nc', '-z', '127.0.0.1', String(port)], ...timing };
  return undefined;
}

/** The program a converted check needs inside the image. */
export function healthToolOf(service: ServiceSpec, own: SwarmServiceSettings): string | undefined {
  if (own.healthcheck !== undefined || !service.healthCheck) return undefined;
  if (service.healthCheck.strategy === 'http') return 'wget';
  if (service.healthCheck.strategy === 'tcp') return 'nc';
  return undefined;
}

function limits(service: ServiceSpec): Record<string, number> {
  const r = service.resources;
  return {
    ...(r.cpus !== undefined ? { NanoCPUs: Math.round(r.cpus * 1e9) } : {}),
    ...(r.memory !== undefined ? { MemoryBytes: r.memory } : {}),
    ...(r.pids !== undefined ? { Pids: r.pids } : {}),
  };
}

function restartPolicy(policy: RestartPolicy): Record<string, unknown> {
  const condition = policy.policy === 'no' ? 'none' : policy.policy === 'on-failure' ? 'on-failure' : 'any';
  return { Condition: condition, Delay: policy.backoffMs * NS_PER_MS, ...(policy.maxRetries > 0 ? { MaxAttempts: policy.maxRetries } : {}) };
}

function placement(own: SwarmServiceSettings): Record<string, unknown> {
  const p = own.placement ?? {};
  return {
    ...(p.constraints ? { Constraints: [...p.constraints] } : {}),
    ...(p.preferences ? { Preferences: p.preferences.map((pref) => ({ Spread: { SpreadDescriptor: pref.replace(/^spread=/, '') } })) } : {}),
    ...(p.maxReplicasPerNode !== undefined ? { MaxReplicas: p.maxReplicasPerNode } : {}),
  };
}

function updateConfig(u: SwarmUpdateSettings | undefined, defaultFailure: SwarmUpdateSettings['failureAction']): Record<string, unknown> {
  const ms = (v: number | string | undefined) => (v === undefined ? undefined : (parseDuration(v) ?? 0) * NS_PER_MS);
  const delay = ms(u?.delay);
  const monitor = ms(u?.monitor);
  return {
    Parallelism: u?.parallelism ?? 1,
    Order: u?.order ?? 'stop-first',
    FailureAction: u?.failureAction ?? defaultFailure,
    ...(delay !== undefined ? { Delay: delay } : {}),
    // Swarm watches each updated task this long for a failure; 5 s default keeps a rollback meaningful.
    Monitor: monitor ?? 5000 * NS_PER_MS,
  };
}

export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
