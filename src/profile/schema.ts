/**
 * The raw profile, as users write it, described once with zod. The same schema validates
 * profiles and generates the JSON Schema shipped in `schema/profile.schema.json` for editors.
 *
 * No transforms here (they would not survive JSON Schema generation): shorthands and units are
 * expanded by `normalize.ts`, and cross-field rules live in `rules.ts`.
 */
import { createRequire } from 'node:module';
import type * as Zod from 'zod';
import { DISCOVERY_BACKEND_NAMES, DISCOVERY_DRIVERS, type DiscoveryRawOptions } from '../discovery/registry.js';
import { HEALTH_STRATEGIES, HEALTH_STRATEGY_NAMES, type HealthCheckRawOptions } from '../health/registry.js';
import { RUNTIME_NAMES, RUNTIMES, type RuntimeDefinition, type RuntimeSections } from '../drivers/runtime/registry.js';
import { FORMAT_NAMES } from '../formats/registry.js';
import { mergeOptionSchemas, type SharedOptionTypes, type ZodSchema } from '../util/driver.js';
import { DURATION_PATTERN } from '../util/duration.js';

/**
 * zod is loaded on first use, synchronously: a valid profile is checked by the validator compiled
 * from the generated JSON Schema at build time (see `fast-check.ts`), so the common case never pays
 * for loading zod; invalid input falls back to zod for its precise, positioned messages.
 */
const requireCjs = createRequire(import.meta.url);

/** A driver's options as profile keys: every one may be left out (defaults fill them in). */
function optionalShape(shape: Record<string, ZodSchema>): Record<string, ZodSchema> {
  return Object.fromEntries(Object.entries(shape).map(([key, schema]) => [key, schema.optional()]));
}

function build(z: typeof Zod.z) {
  const duration = z
    .union([z.number().nonnegative(), z.string().regex(new RegExp(DURATION_PATTERN))])
    .describe('A number of seconds, or a string with a unit: 500ms, 30s, 2m, 1h');

  const port = z.int().min(1).max(65535).describe('A TCP/UDP port, 1–65535');
  const stringMap = z.record(z.string(), z.string());
  const envValue = z.union([z.string(), z.number(), z.boolean()]);
  const argv = z.union([z.array(z.string()).min(1), z.string()]);

  const options: SharedOptionTypes = { duration, port, argv };

  // Runtime names, and each runtime's section of settings (`docker:`), come from the runtime registry.
  const runtimeName = z.enum(RUNTIME_NAMES);
  const runtimeSections: Record<string, ZodSchema> = {};
  for (const runtime of RUNTIMES) {
    const settings: RuntimeDefinition['settings'] = runtime.settings;
    if (settings) runtimeSections[runtime.name] = z.strictObject(settings(z, options)).optional();
  }

  // Strategy names and each strategy's own keys come from the health registry.
  const healthCheckSchema = z
    .strictObject({
      strategy: z.enum(HEALTH_STRATEGY_NAMES),
      host: z.string().optional(),
      port: port.optional(),
      ...mergeOptionSchemas(HEALTH_STRATEGIES, z, options),
      interval: duration.optional(),
      timeout: duration.optional(),
      retries: z.int().min(0).optional(),
      startPeriod: duration.optional(),
    })
    .describe('How to decide that a service is healthy');

  const dependencySchema = z.union([
    z.string().describe('Name of a service; a required dependency'),
    z.strictObject({
      name: z.string(),
      type: z.enum(['required', 'optional', 'soft', 'circular']).optional(),
      healthCheck: healthCheckSchema.optional(),
      onDependencyRestart: z
        .enum(['restart', 'rerender', 'none'])
        .optional()
        .describe(
          'When this dependency is restarted, replaced or moves: restart this service, re-render its templates, or nothing. Default: restart for required, rerender otherwise',
        ),
    }),
  ]);

  const templateSchema = z.strictObject({
    destination: z.string().min(1).describe("Output path, relative to the service's config directory"),
    format: z.enum(FORMAT_NAMES).optional().describe('Default: from the destination extension; text for free text with no structure'),
    data: z.unknown().optional().describe('Structured tree whose strings are Handlebars templates'),
    template: z.string().optional().describe('Free-text Handlebars: a file path under the profile folder, or inline text'),
    env: z.boolean().optional().describe("Also load the rendered file into the service's environment"),
    mode: z.union([z.int().min(0).max(0o777), z.string().regex(/^0?[0-7]{3}$/)]).optional(),
    external: z
      .array(z.string())
      .optional()
      .describe('Services this template names that are not in the profile (other stacks, other hosts): resolved through discovery at each render'),
    changeMode: z.enum(['restart', 'signal', 'noop', 'script']).optional().describe('What a changed file does to its service after startup; default restart'),
    changeSignal: z
      .string()
      .regex(/^SIG[A-Z0-9]+$/)
      .optional()
      .describe('For changeMode signal; default SIGHUP'),
    changeScript: z.array(z.string()).min(1).optional().describe('For changeMode script: argv, run without a shell'),
    wait: z
      .strictObject({ min: duration.optional(), max: duration.optional() })
      .optional()
      .describe("Quiescence before a re-render (consul-template's wait): min after the last change, at most max after the first"),
    splay: duration.optional().describe('Random delay, up to this, before a restart or signal'),
  });

  const portMapping = z.union([
    port,
    z.string().regex(/^((\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d+:)?\d+(\/(tcp|udp))?$/),
    z.strictObject({
      container: port,
      host: port.optional(),
      hostIp: z.string().optional(),
      protocol: z.enum(['tcp', 'udp']).optional(),
    }),
  ]);

  const volume = z.union([
    z.string().describe('source:target[:ro]'),
    z.strictObject({
      source: z.string().optional(),
      target: z.string(),
      readOnly: z.boolean().optional(),
      type: z.enum(['bind', 'volume', 'tmpfs']).optional(),
    }),
  ]);

  const restart = z.union([
    z.enum(['no', 'on-failure', 'always', 'unless-stopped']),
    z.strictObject({
      policy: z.enum(['no', 'on-failure', 'always', 'unless-stopped']),
      maxRetries: z.int().min(0).optional(),
      backoff: duration.optional(),
      maxBackoff: duration.optional(),
      onUnhealthy: z.boolean().optional().describe('Restart a service whose health check keeps failing after startup; default true'),
      failuresBeforeRestart: z.int().min(1).optional().describe('Consecutive failed checks before that restart; default 3'),
    }),
  ]);

  const serviceSchema = z.strictObject({
    enable: z.boolean().optional(),
    kind: z.enum(['service', 'task']).optional().describe('task: runs to completion; dependents wait for success'),
    description: z.string().optional(),
    runtime: runtimeName.optional(),
    image: z.string().optional(),
    command: argv.optional(),
    entrypoint: argv.optional(),
    shell: z.boolean().optional(),
    workingDir: z.string().optional(),
    port: port.optional(),
    ports: z.array(portMapping).optional(),
    address: z.string().optional(),
    scheme: z
      .string()
      .regex(/^[a-z][a-z0-9+.-]*$/)
      .optional()
      .describe('Scheme of the service URL in discovery and templates (default http), e.g. postgres'),
    network: z.string().optional(),
    tags: z.array(z.string()).optional(),
    meta: stringMap.optional(),
    environment: z.record(z.string(), envValue).optional(),
    secretEnvironment: z.array(z.string()).optional().describe('Environment variable names whose values are secrets'),
    healthEndpoint: z.string().startsWith('/').optional().describe('Shorthand for an http check on `port`'),
    healthCheck: healthCheckSchema.optional(),
    dependencies: z.array(dependencySchema).optional(),
    templates: z.array(templateSchema).optional(),
    restart: restart.optional(),
    stopSignal: z
      .string()
      .regex(/^SIG[A-Z0-9]+$/)
      .optional(),
    stopGracePeriod: duration.optional(),
    volumes: z.array(volume).optional(),
    resources: z
      .strictObject({
        cpus: z.number().positive().optional(),
        memory: z.union([z.int().positive(), z.string().regex(/^\d+(\.\d+)?\s*[kmgtKMGT]?[bB]?$/)]).optional(),
        pids: z.int().positive().optional(),
      })
      .optional(),
    security: z
      .strictObject({
        readOnlyRootFilesystem: z.boolean().optional(),
        noNewPrivileges: z.boolean().optional(),
        capDrop: z.array(z.string()).optional(),
        capAdd: z.array(z.string()).optional(),
        user: z.string().optional(),
        tmpfs: z.array(z.string()).optional(),
      })
      .optional(),
    init: z.boolean().optional(),
    pull: z.enum(['missing', 'always', 'never']).optional(),
    replicas: z.int().min(1).max(100).optional(),
    host: z.string().optional().describe('The declared host (hosts:) it runs on; `all`: every host (mesh)'),
    singleton: z
      .boolean()
      .optional()
      .describe('leader-follower: one instance in the whole stack, run on the elected leader’s host only (and started again on the next leader’s)'),
    external: z.boolean().optional().describe('Run by someone else (another stack): never started here; dependents wait for it in discovery'),
    stack: z.string().optional().describe('external: the stack that runs it (its registrations must carry that stack)'),
  });

  const variableSchema = z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.strictObject({
      type: z.enum(['string', 'number', 'boolean', 'url', 'secret']).optional(),
      required: z.boolean().optional(),
      default: z.union([z.string(), z.number(), z.boolean()]).optional(),
      description: z.string().optional(),
      generate: z
        .strictObject({ bytes: z.int().min(8).max(256).optional(), encoding: z.enum(['hex', 'base64url']).optional() })
        .optional()
        .describe('secret: generate a random value once and keep it under .stack/'),
    }),
  ]);

  // Backends, their option keys and their types come from the discovery registry.
  const backendName = z.enum(DISCOVERY_BACKEND_NAMES);

  const discoverySchema = z.strictObject({
    backend: backendName.optional(),
    backends: z.array(backendName).min(1).optional(),
    ...optionalShape(mergeOptionSchemas(DISCOVERY_DRIVERS, z, options)),
    ttl: duration.optional(),
    heartbeatInterval: duration.optional(),
    tls: z
      .strictObject({
        ca: z.string().optional(),
        cert: z.string().optional(),
        key: z.string().optional(),
        insecureSkipVerify: z.boolean().optional(),
      })
      .optional(),
  });

  const profileSchema = z
    .strictObject({
      $schema: z.string().optional(),
      name: z.string().optional(),
      description: z.string().optional(),
      extends: z.string().optional().describe('A built-in profile name or a relative path; deep-merged'),
      domain: z.string().optional(),
      runtime: runtimeName.optional(),
      discovery: discoverySchema.optional(),
      coordination: z
        .strictObject({
          strategy: z.enum(['hub-spoke', 'leader-follower', 'peer-to-peer', 'mesh']).optional(),
          enableHealthChecks: z.boolean().optional(),
          dependencyTimeout: duration.optional(),
        })
        .optional(),
      hosts: z
        .record(
          z.string(),
          z.strictObject({
            address: z.string().describe('The address other hosts reach it at (an IP address or a host name)'),
            docker: z.string().optional().describe('Its Docker engine, for hub-spoke: unix:///path/docker.sock or tcp://host:port'),
          }),
        )
        .optional()
        .describe('The machines a multi-host stack spans; services name theirs with host:'),
      ...runtimeSections,
      variables: z.record(z.string(), variableSchema).optional(),
      services: z.record(z.string(), serviceSchema),
      stateDir: z.string().optional(),
    })
    .describe('An atproto-stacks deployment profile');
  return { z, healthCheckSchema, dependencySchema, templateSchema, serviceSchema, variableSchema, discoverySchema, profileSchema };
}

export type Schemas = ReturnType<typeof build>;
let built: Schemas | undefined;

/** The zod schemas (built once, on first use). */
export function schemas(): Schemas {
  built ??= build((requireCjs('zod') as typeof Zod).z);
  return built;
}

export type RawProfile = Zod.infer<Schemas['profileSchema']> & Partial<RuntimeSections>;
export type RawService = Zod.infer<Schemas['serviceSchema']>;
// The drivers' own keys are typed by their definitions (zod cannot infer through the registries).
export type RawHealthCheck = Zod.infer<Schemas['healthCheckSchema']> & HealthCheckRawOptions;
export type RawDiscovery = Zod.infer<Schemas['discoverySchema']> & DiscoveryRawOptions;
