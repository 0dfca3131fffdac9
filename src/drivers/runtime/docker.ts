/**
 * The Docker runtime's definition, listed in `registry.ts`. The implementation
 * (`src/runtime/docker.ts`, its `fromProfile`) loads when the runtime is created, dockerode on its
 * first call to the engine.
 */
import type { RuntimeDefinition } from './registry.js';

/** The profile's `docker:` section. */
export interface DockerRuntimeSettings {
  /** Engine endpoint: unix:///var/run/docker.sock, tcp://host:2376, ssh://user@host. Default: DOCKER_HOST. */
  host?: string;
  tlsVerify?: boolean;
  certPath?: string;
  /** Name of the stack's network; default `<stack>_default`. */
  network?: string;
}

export const dockerRuntime: RuntimeDefinition<'docker', DockerRuntimeSettings> = {
  name: 'docker',
  description: 'Docker containers from local images, on a stack network, published on loopback',
  capabilities: { images: true, hostWorkingDir: false },
  settings: (z) => ({
    host: z.string().optional(),
    tlsVerify: z.boolean().optional(),
    certPath: z.string().optional(),
    network: z.string().optional(),
  }),
  describeRun: (service) => service.image ?? service.command?.[0],
};
