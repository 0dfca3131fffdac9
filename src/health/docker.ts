import { errorText } from '../util/error-text.js';
import { describeAbort, probeSignal, untilAborted } from './timeout.js';
import type { HealthStrategy } from './types.js';

/**
 * `docker`: the container's own HEALTHCHECK status, which the runtime supplies through
 * `target.containerHealth` (so this file never touches Docker types). A container without a
 * HEALTHCHECK is never "healthy": the profile asked for a check the image does not have.
 */
export function createDockerStrategy(): HealthStrategy {
  return {
    name: 'docker',
    async probe(check, target, signal) {
      if (!target.containerHealth) return { ok: false, detail: 'docker check needs a container (no container health available)' };
      // A busy or stuck engine must not hold the probe past its timeout or the caller's abort.
      const bounded = probeSignal(signal, check.timeoutMs);
      try {
        const status = await untilAborted(target.containerHealth(), bounded);
        if (status === 'healthy') return { ok: true, detail: 'container is healthy' };
        if (status === 'none') return { ok: false, detail: 'container image defines no HEALTHCHECK' };
        return { ok: false, detail: `container is ${status}` };
      } catch (err) {
        if (bounded.aborted) return { ok: false, detail: describeAbort(bounded, check.timeoutMs) };
        return { ok: false, detail: `cannot read container health: ${errorText(err)}` };
      }
    },
  };
}
