import path from 'node:path';
import type { ServiceSpec } from '../profile/types.js';
import type { HealthCheckSpec } from '../health/registry.js';
import { runtimeDefinition } from '../drivers/runtime/registry.js';
import type { Runtime, ServiceHandle } from './types.js';
import type { HealthTarget } from '../health/types.js';
import { isLoopbackHost } from '../health/loopback.js';

export interface HealthTargetContext {
  /** The profile's folder: a process service's working directory resolves against it. */
  profileDir: string;
  /** The instance's final environment (for `command` checks). */
  environment?: Record<string, string>;
}

/**
 * The endpoint a check should probe for one started instance: the check's port (default the
 * service's) mapped through `runtime.endpoint` (a published container port, or loopback for a
 * process); an explicit `host` in the check is probed as written. A service placed on a host of a
 * profile with hosts is probed at its address there (the host's, unless written), where the
 * runtime would answer loopback: what other hosts reach is what is checked. The runtime is
 * consulted here, once, so strategies never see runtime types.
 */
export function healthTargetFor(
  runtime: Runtime,
  handle: ServiceHandle,
  service: ServiceSpec,
  check: HealthCheckSpec,
  context: HealthTargetContext,
): HealthTarget {
  const port = check.port ?? service.port;
  const target: HealthTarget = {
    cwd: runtimeDefinition(service.runtime).capabilities.hostWorkingDir ? path.resolve(context.profileDir, service.workingDir ?? '.') : context.profileDir,
    containerHealth: async () => (await runtime.inspect(handle)).health ?? 'none',
  };
  if (context.environment) target.env = context.environment;
  if (port !== undefined) {
    const endpoint = check.host !== undefined ? { host: check.host, port } : runtime.endpoint(handle, port);
    const placed = check.host === undefined && service.host !== undefined && isLoopbackHost(endpoint.host) && !isLoopbackHost(service.address);
    // A container published on its host's address (hub-spoke: another host's engine) is probed there.
    const publishedAtHost = check.host === undefined && service.host !== undefined && endpoint.host === service.address && !isLoopbackHost(endpoint.host);
    target.host = placed ? service.address : endpoint.host;
    target.port = endpoint.port;
    if (placed || publishedAtHost || check.host !== undefined) target.remoteAllowed = true;
  } else if (check.host !== undefined) {
    target.host = check.host;
    target.remoteAllowed = true;
  }
  return target;
}
