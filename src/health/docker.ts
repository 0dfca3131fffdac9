import type { HealthStrategy } from './types.js';

/**
 * `docker`: the container's own HEALTHCHECK status, which the runtime supplies through
 * `target.containerHealth` (so this file never touches Docker types). A container without a
 * HEALTHCHECK is never "healthy": the profile asked for a check the image does not have.
 */
export function createDockerStrategy(): HealthStrategy {
  return {
    name: 'docker',
    async probe(_check, target) {
      if (!target.containerHealth) return { ok: false, detail: 'docker check needs a container (no container health available)' };
      try {
        const status = await target.containerHealth();
        if (status === 'healthy') return { ok: true, detail: 'container is healthy' };
        if (status === 'none') return { ok: false, detail: 'container image defines no HEALTHCHECK' };
        return { ok: false, detail: `container is ${status}` };
      } catch (err) {
        return { ok: false, detail: `cannot read container health: ${err instanceof Error ? err.message : String(err)}` };
      }
    },
  };
}
