/**
 * The Docker Swarm runtime's definition, listed in `registry.ts`. The implementation
 * (`src/runtime/swarm.ts`, its `fromProfile`) loads when the runtime is created, dockerode on its
 * first call to the manager. The service rules (`serviceProblems`) live here, free of client
 * libraries, so `stack validate` runs them without loading the implementation.
 *
 * Per-service Swarm settings (placement, update/rollback, endpoint and publish mode, an in-container
 * health command) live under `swarm.services.<name>`, so the service schema stays runtime-neutral.
 */
import type { Problem } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import type { CheckedService, RuntimeDefinition } from './registry.js';

/** `update:` and `rollback:` of a service (Swarm's UpdateConfig / RollbackConfig). */
export interface SwarmUpdateSettings {
  parallelism?: number;
  /** Between batches: a duration (`2s`). */
  delay?: number | string;
  order?: 'stop-first' | 'start-first';
  failureAction?: 'pause' | 'continue' | 'rollback';
  /** How long each new task is watched for failure: a duration. */
  monitor?: number | string;
}

/** What a service runs with on Swarm beyond its runtime-neutral spec. */
export interface SwarmServiceSettings {
  placement?: {
    /** `node.labels.tier==db`, `node.role==manager`, … */
    constraints?: string[];
    /** `spread=node.labels.zone` (or just the descriptor `node.labels.zone`). */
    preferences?: string[];
    maxReplicasPerNode?: number;
  };
  update?: SwarmUpdateSettings;
  rollback?: SwarmUpdateSettings;
  /** `dnsrr` (default) or `vip` (needs IPVS on every node). */
  endpointMode?: 'dnsrr' | 'vip';
  /** `host` (default: each task's node publishes the port) or `ingress` (routing mesh, needs IPVS). */
  publishMode?: 'host' | 'ingress';
  /**
   * The container's HEALTHCHECK, run inside each task, when the profile's `healthCheck` should
   * not be converted (or there is none): argv, or one string run by `/bin/sh -c`.
   */
  healthcheck?: string | string[];
}

/** The profile's `swarm:` section. */
export interface SwarmRuntimeSettings {
  /** A manager: unix:///var/run/docker.sock, tcp://host:2376, ssh://user@host. Default: DOCKER_HOST. */
  host?: string;
  tlsVerify?: boolean;
  certPath?: string;
  /** Name of the stack's attachable overlay network; default `<stack>_default`. */
  network?: string;
  /** Default endpoint mode of every service: `dnsrr` (default, works without IPVS) or `vip`. */
  endpointMode?: 'dnsrr' | 'vip';
  /** Default publish mode of every port: `host` (default) or `ingress`. */
  publishMode?: 'host' | 'ingress';
  /** How long `start` waits for every desired task to run healthy; default 60s (the default dependencyTimeout). */
  readyTimeout?: number | string;
  services?: Record<string, SwarmServiceSettings>;
}

export const swarmRuntime: RuntimeDefinition<'swarm', SwarmRuntimeSettings> = {
  name: 'swarm',
  description: 'Docker Swarm services on a cluster, created in dependency order once their dependencies run healthy',
  capabilities: { images: true, hostWorkingDir: false, replicas: true, configsInMemory: true },
  settings: (z, t) => {
    const mode = <T extends readonly [string, ...string[]]>(values: T) => z.enum(values).optional();
    const update = z
      .strictObject({
        parallelism: z.int().min(0).optional(),
        delay: t.duration.optional(),
        order: mode(['stop-first', 'start-first'] as const),
        failureAction: mode(['pause', 'continue', 'rollback'] as const),
        monitor: t.duration.optional(),
      })
      .optional();
    const service = z.strictObject({
      placement: z
        .strictObject({
          constraints: z.array(z.string().min(1)).optional(),
          preferences: z.array(z.string().min(1)).optional(),
          maxReplicasPerNode: z.int().min(0).optional(),
        })
        .optional(),
      update,
      rollback: update,
      endpointMode: mode(['dnsrr', 'vip'] as const),
      publishMode: mode(['host', 'ingress'] as const),
      healthcheck: t.argv.optional(),
    });
    return {
      host: z.string().optional(),
      tlsVerify: z.boolean().optional(),
      certPath: z.string().optional(),
      network: z.string().optional(),
      endpointMode: mode(['dnsrr', 'vip'] as const),
      publishMode: mode(['host', 'ingress'] as const),
      readyTimeout: t.duration.optional(),
      services: z.record(z.string(), service).optional(),
    };
  },
  serviceProblems: (service, settings) => swarmServiceProblems(service, settings),
  describeRun: (service) => (service.image ? `${service.image} (swarm service)` : undefined),
};

/**
 * Input problems of a swarm service, all at once (exit 2, nothing created): what cannot run as a
 * Swarm task (no image, host networking), checks that cannot run inside a task, bad durations.
 */
export function swarmServiceProblems(service: CheckedService, settings: SwarmRuntimeSettings): Problem[] {
  const at = (...rest: string[]) => ['services', service.name, ...rest].join('.');
  const problems: Problem[] = [];
  const own = settings.services?.[service.name] ?? {};
  if (!service.image)
    problems.push({ code: 'missing_image', path: at('image'), message: `service '${service.name}' has no image (the swarm runtime needs one)` });
  if (service.network === 'host')
    problems.push({
      code: 'invalid_network',
      path: at('network'),
      message: 'the swarm runtime runs services on the stack overlay network; network: host is not supported',
    });
  const check = service.healthCheck;
  if (check && own.healthcheck === undefined) {
    const hcPath = at('healthCheck', 'strategy');
    if (check.strategy === 'http' || check.strategy === 'tcp') {
      if (check.strategy === 'http' && (check.scheme === 'https' || check.expectedStatus !== undefined)) {
        problems.push({
          code: 'invalid_health',
          path: at('healthCheck'),
          message:
            'on swarm an http check runs as `wget` inside the container: only plain http with a 2xx status (set swarm.services.<name>.healthcheck for anything else)',
        });
      }
      if (check.host !== undefined)
        problems.push({
          code: 'invalid_health',
          path: at('healthCheck', 'host'),
          message: 'on swarm the check runs inside each task against 127.0.0.1; healthCheck.host is not supported',
        });
    } else {
      problems.push({
        code: 'invalid_health',
        path: hcPath,
        message: `the '${check.strategy}' strategy cannot judge a swarm service: use http or tcp (run inside every task as its HEALTHCHECK), or drop healthCheck and set swarm.services.${service.name}.healthcheck (a command run in the container)`,
      });
    }
  }
  for (const [key, value] of [
    ['readyTimeout', settings.readyTimeout],
    ['update.delay', own.update?.delay],
    ['update.monitor', own.update?.monitor],
    ['rollback.delay', own.rollback?.delay],
    ['rollback.monitor', own.rollback?.monitor],
  ] as const) {
    if (value !== undefined && parseDuration(value) === undefined)
      problems.push({ code: 'invalid_duration', path: `swarm.${key}`, message: `invalid duration '${value}'` });
  }
  return problems;
}
