/** A runtime that runs a service's replicas itself (Swarm): the engine starts one instance, silently. */
import { afterEach, describe, expect, it } from 'vitest';
import { drive, memCheck, memoryStack } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('replicas on a runtime that runs them itself', () => {
  it('swarm (capabilities.replicas): one instance, given replicas: N, and no "not supported" warning', async () => {
    const s = await memoryStack({ api: { runtime: 'swarm', image: 'busybox', port: 7000, replicas: 3, healthCheck: memCheck({ port: 7000 }) } });
    cleanups.push(s.cleanup);
    const controller = s.start({ runtimes: { swarm: s.runtime } });
    const report = await drive(s.clock, controller.ready);
    expect(report.outcome).toBe('up');
    expect(report.warnings).toEqual([]);
    const api = s.runtime.running().filter((i) => i.handle.service === 'api');
    expect(api.map((i) => [i.handle.replica, i.request.service.replicas])).toEqual([[0, 3]]);
    expect(controller.status().find((st) => st.name === 'api')?.replicas).toBeUndefined();
    await drive(s.clock, controller.stop());
  });
});
