/**
 * A runtime that places a service's instances itself (`Runtime.placements`: Swarm's tasks on
 * their nodes) gets one registration per instance, at the instance's address and port, followed
 * every heartbeat as instances move, and removed at stop (src/engine/instances.ts). The memory
 * runtime stands in for Swarm, with the placements a test sets.
 */
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiscovery } from '../../src/discovery/index.js';
import { createTemplateHooks } from '../../src/engine/templates.js';
import type { Placement, Runtime } from '../../src/runtime/types.js';
import { drive, memoryStack } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const task = (slot: number, node: string, address: string, port: number): Placement => ({
  key: String(slot),
  address,
  port,
  url: `http://${address}:${port}`,
  meta: { node, slot: String(slot), overlay: 'api', overlayUrl: 'http://api:8080' },
});

describe('registrations per placed instance (swarm)', () => {
  it('registers each task at its node and published port, follows it when it moves or goes, and removes them all at stop', async () => {
    const s = await memoryStack(
      {
        api: { runtime: 'swarm', image: 'busybox', port: 8080, replicas: 2, meta: { team: 'core' } },
        app: {
          dependencies: ['api'],
          templates: [
            {
              destination: 'api.env',
              data: { API: '{{service.api.url}}', ALL: '{{#each service.api.instances}}{{url}} {{/each}}', IN: '{{service.api.meta.overlayUrl}}' },
            },
          ],
        },
      },
      { extra: { discovery: { backend: 'memory', heartbeatInterval: '1s', ttl: '5s' } } },
    );
    let placed: Placement[] | Error = [task(1, 'n1', '10.0.0.11', 30001), task(2, 'n2', '10.0.0.12', 30001)];
    const swarm: Runtime = {
      ...s.runtime,
      placements: async () => {
        if (placed instanceof Error) throw placed;
        return placed;
      },
    };
    const discovery = await createDiscovery(s.input.profile.discovery);
    const stateDir = s.input.profile.stateDir!;
    const hooks = (await createTemplateHooks(s.input.profile, ['api', 'app'], { stateDir, cwd: s.dir, discovery }))!;
    const controller = s.start({ runtimes: { process: s.runtime, swarm }, discovery, renderConfigs: hooks.renderConfigs });
    let stopped = false;
    cleanups.push(async () => {
      if (!stopped) await drive(s.clock, controller.stop());
      await discovery.close();
      await s.cleanup();
    });
    expect((await drive(s.clock, controller.ready)).outcome).toBe('up');

    const registered = async () => (await discovery.lookup('api')).map((r) => [r.id, r.address, r.port, r.meta.node]);
    expect(await registered()).toEqual([
      ['mem-api-1', '10.0.0.11', 30001, 'n1'],
      ['mem-api-2', '10.0.0.12', 30001, 'n2'],
    ]);
    const [first] = await discovery.lookup('api');
    expect(first).toMatchObject({
      url: 'http://10.0.0.11:30001',
      tags: [],
      meta: { team: 'core', stack: 'mem', overlay: 'api', overlayUrl: 'http://api:8080' },
    });
    // A dependent's template: the first task's published address by default, every task, and the overlay name.
    const file = s.runtime.running().find((i) => i.handle.service === 'app')!.request.files[0]!.hostPath!;
    expect(await readFile(file, 'utf8')).toBe("API=http://10.0.0.11:30001\nALL='http://10.0.0.11:30001 http://10.0.0.12:30001 '\nIN=http://api:8080\n");

    // Slot 2 rescheduled on n3: within a heartbeat its record follows (same id, new address).
    placed = [task(1, 'n1', '10.0.0.11', 30001), task(2, 'n3', '10.0.0.13', 30001)];
    await drive(s.clock, s.clock.advance(1000));
    expect(await registered()).toEqual([
      ['mem-api-1', '10.0.0.11', 30001, 'n1'],
      ['mem-api-2', '10.0.0.13', 30001, 'n3'],
    ]);
    // The manager out of reach: the records stay (heartbeated), nothing is deregistered.
    placed = new Error('manager unreachable');
    await drive(s.clock, s.clock.advance(1000));
    expect((await registered()).map((r) => r[0])).toEqual(['mem-api-1', 'mem-api-2']);
    // Scaled down to one task: the other record goes.
    placed = [task(1, 'n1', '10.0.0.11', 30001)];
    await drive(s.clock, s.clock.advance(1000));
    expect(await registered()).toEqual([['mem-api-1', '10.0.0.11', 30001, 'n1']]);
    expect(s.log.events.filter((e) => e.type === 'deregistered' && e.service === 'api').map((e) => (e as { id: string }).id)).toEqual(['mem-api-2']);

    // Stop: every record of the service this stack registered per task goes (one of a slot not
    // listed now too), before the service is stopped; another stack's record stays.
    await discovery.register({ id: 'mem-api-3', service: 'api', address: '10.0.0.12', port: 30002, meta: { stack: 'mem', instanceKey: '3' } });
    await discovery.register({ id: 'other-api-1', service: 'api', address: '10.0.0.99', port: 1, meta: { stack: 'other', instanceKey: '1' } });
    await drive(s.clock, controller.stop());
    stopped = true;
    discovery.invalidate();
    expect((await discovery.lookup('api')).map((r) => r.id)).toEqual(['other-api-1']);
  });
});
