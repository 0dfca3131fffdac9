/**
 * Pure mapping from a service to the Docker container that runs it: no engine, no file system.
 *
 * Choices (the Compose v2 conventions unless said otherwise):
 * - container name `<stack>-<service>-<n>` with n = replica + 1 (1-based, as Compose); the
 *   `io.atproto-stacks.replica` label keeps the 0-based index that handles use.
 * - networks: no `network` → the stack's network (`<stack>_default` unless the profile names
 *   one); `host`, `none`, `bridge` → Docker's own; any other name → `<stack>_<name>`. On a stack
 *   network the service name is a DNS alias, so containers reach each other by service name.
 * - ports are published on 127.0.0.1 unless the mapping names another address. The service's
 *   main `port`, when no mapping covers it, is published on an ephemeral loopback port, so health
 *   checks can reach it without ever probing a bridge address and without host-port clashes
 *   between services that listen on the same port. Replicas after the first also get ephemeral
 *   host ports (two containers cannot publish one host port). Host networking publishes nothing.
 * - rendered config files: the service's config folder is mounted read-only at /etc/stack, so
 *   a template with destination `pds.env` is /etc/stack/pds.env. The folder (not each file) is
 *   mounted because files are written atomically (rename), which a single-file bind would miss.
 * - named volumes are `<stack>_<name>` (labelled with the stack) and survive `down`, as in
 *   Compose; anonymous volumes (no source) are removed with their container.
 * - with the `docker` health strategy the image's HEALTHCHECK runs at the profile's interval when
 *   that is shorter than the image's (see `healthcheckOverride`).
 * - the config hash covers everything that defines the container (options, rendered files'
 *   contents, image id), so a changed service is recreated and an unchanged one reused.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { StackFailedError } from '../errors.js';
import { ALL_HOSTS, type PortMapping, type RestartPolicy, type ServiceSpec } from '../profile/types.js';
import type { RenderedFile } from './types.js';

export const LABELS = {
  stack: 'io.atproto-stacks.stack',
  service: 'io.atproto-stacks.service',
  replica: 'io.atproto-stacks.replica',
  configHash: 'io.atproto-stacks.config-hash',
  network: 'io.atproto-stacks.network',
  volume: 'io.atproto-stacks.volume',
  /** The declared host whose share it is (a profile with `hosts:`): another host's share on the same engine is left alone. */
  host: 'io.atproto-stacks.host',
} as const;

/** Where the service's rendered config files appear inside its container. */
export const CONTAINER_CONFIG_DIR = '/etc/stack';

/** Networks Docker provides itself: never created or removed by us. */
const BUILTIN_NETWORKS = new Set(['host', 'none', 'bridge']);

export function containerName(stack: string, service: string, replica: number): string {
  return `${stack}-${service}-${replica + 1}`;
}

export function defaultNetworkName(stack: string): string {
  return `${stack}_default`;
}

/** The Docker network mode of a service: a built-in mode, or the name of a stack network. */
export function networkOf(stack: string, service: Pick<ServiceSpec, 'network'>, stackNetwork = defaultNetworkName(stack)): string {
  const { network } = service;
  if (network === undefined || network === 'default') return stackNetwork;
  if (BUILTIN_NETWORKS.has(network)) return network;
  return `${stack}_${network}`;
}

/** Stack networks the services need (what `prepare` creates and `teardown` removes). */
export function stackNetworksFor(stack: string, services: Pick<ServiceSpec, 'network'>[], stackNetwork?: string): string[] {
  const names = new Set(services.map((s) => networkOf(stack, s, stackNetwork)));
  return [...names].filter((n) => !BUILTIN_NETWORKS.has(n)).sort();
}

export function stackLabelFilter(stack: string): string {
  return `${LABELS.stack}=${stack}`;
}

/** What the mapping needs beyond the service itself. */
export interface ContainerInput {
  stack: string;
  service: ServiceSpec;
  replica: number;
  /** Final environment (the service's own plus injections). */
  environment: Record<string, string>;
  files: RenderedFile[];
  configDir: string;
  profileDir: string;
  /** sha256 of each rendered file's contents, by destination: part of the config hash. */
  fileDigests: Record<string, string>;
  /** Name of the stack's default network (the profile's `docker.network`). */
  stackNetwork?: string;
  /** Id of the image the tag resolves to now: a re-pulled image changes the hash. */
  imageId?: string;
  /** The image's own HEALTHCHECK (durations in nanoseconds, as Docker keeps them). */
  imageHealthcheck?: Dockerode.HealthConfig;
}

/** Docker's interval when a HEALTHCHECK names none. */
const DOCKER_DEFAULT_HEALTH_INTERVAL_NS = 30e9;
const NS_PER_MS = 1e6;

export interface ContainerPlan {
  name: string;
  configHash: string;
  options: Dockerode.ContainerCreateOptions;
}

export function planContainer(input: ContainerInput): ContainerPlan {
  const { stack, service, replica } = input;
  if (!service.image) {
    throw new StackFailedError(`service '${service.name}' has no image (the docker runtime needs one)`, {
      code: 'image_missing',
      path: `services.${service.name}.image`,
    });
  }
  const name = containerName(stack, service.name, replica);
  const network = networkOf(stack, service, input.stackNetwork);
  const onStackNetwork = !BUILTIN_NETWORKS.has(network);
  const ports = network === 'host' || network === 'none' ? [] : publishedPorts(service, replica);

  const hostConfig: Dockerode.HostConfig = {
    NetworkMode: network,
    PortBindings: portBindings(ports),
    Mounts: mounts(input),
    RestartPolicy: restartPolicy(service.restart),
    Init: service.init,
    ReadonlyRootfs: service.security.readOnlyRootFilesystem,
    SecurityOpt: service.security.noNewPrivileges ? ['no-new-privileges:true'] : [],
    CapDrop: [...service.security.capDrop],
    CapAdd: [...service.security.capAdd],
    Tmpfs: tmpfs(service.security.tmpfs),
    ...resources(service),
  };

  const options: Dockerode.ContainerCreateOptions = {
    name,
    Image: service.image,
    Env: Object.entries(input.environment)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`),
    ExposedPorts: Object.fromEntries(ports.map((p) => [portKey(p), {}])),
    StopSignal: service.stopSignal,
    StopTimeout: Math.ceil(service.stopGracePeriodMs / 1000),
    HostConfig: hostConfig,
    ...(service.command ? { Cmd: service.shell ? ['/bin/sh', '-c', service.command.join(' ')] : [...service.command] } : {}),
    ...(service.entrypoint ? { Entrypoint: [...service.entrypoint] } : {}),
    ...(service.workingDir ? { WorkingDir: service.workingDir } : {}),
    ...(service.security.user ? { User: service.security.user } : {}),
    ...(onStackNetwork ? { NetworkingConfig: { EndpointsConfig: { [network]: { Aliases: [service.name] } } } } : {}),
    ...healthcheckOverride(service, input.imageHealthcheck),
  };

  const configHash = sha256(stableStringify({ options, files: input.fileDigests, image: input.imageId ?? null }));
  options.Labels = {
    [LABELS.stack]: stack,
    [LABELS.service]: service.name,
    [LABELS.replica]: String(replica),
    [LABELS.configHash]: configHash,
    ...(service.host !== undefined && service.host !== ALL_HOSTS ? { [LABELS.host]: service.host } : {}),
  };
  return { name, configHash, options };
}

/**
 * With the `docker` health strategy, gating waits for Docker to run the image's HEALTHCHECK, and
 * Docker runs the first check only after one interval (30 s unless the image says otherwise).
 * So the image's check runs at the profile's interval when that is shorter. Only Interval is
 * set: Docker fills the test, timeout, retries and start period in from the image.
 */
function healthcheckOverride(service: ServiceSpec, image: Dockerode.HealthConfig | undefined): Pick<Dockerode.ContainerCreateOptions, 'Healthcheck'> {
  if (service.healthCheck?.strategy !== 'docker' || !image) return {};
  const wanted = Math.max(1, service.healthCheck.intervalMs) * NS_PER_MS; // Docker's minimum is 1 ms
  const current = image.Interval || DOCKER_DEFAULT_HEALTH_INTERVAL_NS;
  return wanted < current ? { Healthcheck: { Interval: wanted } } : {};
}

/** The ports a container publishes: the explicit mappings, plus the main port on an ephemeral host port. */
export function publishedPorts(service: Pick<ServiceSpec, 'ports' | 'port'>, replica: number): PortMapping[] {
  const ports = service.ports.map((p) => ({ ...p }));
  if (service.port !== undefined && !ports.some((p) => p.container === service.port && p.protocol === 'tcp')) {
    ports.push({ container: service.port, host: 0, hostIp: '127.0.0.1', protocol: 'tcp' });
  }
  if (replica > 0) for (const p of ports) p.host = 0;
  return ports;
}

function portKey(p: Pick<PortMapping, 'container' | 'protocol'>): string {
  return `${p.container}/${p.protocol}`;
}

function portBindings(ports: PortMapping[]): Record<string, { HostIp: string; HostPort: string }[]> {
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of ports) {
    // HostPort '' asks Docker for an ephemeral port.
    (bindings[portKey(p)] ??= []).push({ HostIp: p.hostIp || '127.0.0.1', HostPort: p.host ? String(p.host) : '' });
  }
  return bindings;
}

function mounts(input: ContainerInput): Dockerode.MountSettings[] {
  const out: Dockerode.MountSettings[] = [];
  if (input.files.length > 0) {
    out.push({ Type: 'bind', Source: input.configDir, Target: CONTAINER_CONFIG_DIR, ReadOnly: true });
  }
  for (const v of input.service.volumes) {
    // Compose's rule: a source that is a path (`./data`, `../x`, `/srv`) is a bind mount, never a volume name.
    if (v.type === 'bind' || (v.type === 'volume' && /^\.{0,2}\//.test(v.source))) {
      out.push({ Type: 'bind', Source: path.resolve(input.profileDir, v.source), Target: v.target, ReadOnly: v.readOnly });
    } else if (v.type === 'tmpfs') {
      out.push({ Type: 'tmpfs', Source: '', Target: v.target, ReadOnly: false });
    } else if (v.source === '') {
      // Anonymous: removed together with the container (`remove({ v: true })`).
      out.push({ Type: 'volume', Source: '', Target: v.target, ReadOnly: v.readOnly });
    } else {
      out.push({
        Type: 'volume',
        Source: `${input.stack}_${v.source}`,
        Target: v.target,
        ReadOnly: v.readOnly,
        // Labels apply when Docker creates the volume on first use; later `down --volumes` finds it.
        VolumeOptions: { Labels: { [LABELS.stack]: input.stack, [LABELS.volume]: v.source } },
      } as unknown as Dockerode.MountSettings); // the declarations wrongly require every VolumeOptions field
    }
  }
  return out;
}

function restartPolicy(r: RestartPolicy): Dockerode.HostRestartPolicy {
  if (r.policy === 'on-failure') return { Name: 'on-failure', MaximumRetryCount: r.maxRetries };
  return { Name: r.policy };
}

function tmpfs(paths: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of paths) {
    // `/run:size=64m,mode=1777` → mount options after the first colon, as `docker run --tmpfs`.
    const colon = entry.indexOf(':');
    if (colon < 0) out[entry] = '';
    else out[entry.slice(0, colon)] = entry.slice(colon + 1);
  }
  return out;
}

function resources(service: ServiceSpec): Pick<Dockerode.HostConfig, 'NanoCpus' | 'Memory' | 'PidsLimit'> {
  const { cpus, memory, pids } = service.resources;
  return {
    ...(cpus !== undefined ? { NanoCpus: Math.round(cpus * 1e9) } : {}),
    ...(memory !== undefined ? { Memory: memory } : {}),
    ...(pids !== undefined ? { PidsLimit: pids } : {}),
  };
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** JSON with object keys sorted at every level: equal values give equal strings. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const obj = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(obj)
          .sort()
          .map((k) => [k, obj[k]]),
      );
    }
    return v;
  });
}
