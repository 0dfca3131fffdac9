/** `stack status` of a service a cluster runs as tasks (swarm): each current task, on its node. */
import { afterEach, describe, expect, it } from 'vitest';
import { fixedRuntimeSet } from '../../src/engine/runtimes.js';
import { readStackStatus } from '../../src/engine/status.js';
import type { InstanceStatus, Runtime, ServiceHandle } from '../../src/runtime/types.js';
import { tempDir } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const handle: ServiceHandle = { runtime: 'swarm', stack: 'st', service: 'web', replica: 0, id: 'svc-web', startedAt: new Date(0).toISOString() };

/** A swarm-like runtime whose manager knows one service with two current tasks and a replaced one. */
const clusterRuntime = (): Runtime =>
  ({
    name: 'swarm',
    discover: async () => [handle],
    inspect: async (): Promise<InstanceStatus> => ({
      running: true,
      health: 'starting',
      tasks: [
        { slot: 2, node: 'node-3', state: 'starting', desired: 'running', health: 'starting' },
        { slot: 1, node: 'node-1', state: 'failed', desired: 'shutdown', health: 'unhealthy', error: 'task: non-zero exit (1)' },
        { slot: 1, node: 'node-2', state: 'running', desired: 'running', health: 'healthy' },
      ],
    }),
    close: async () => undefined,
  }) as unknown as Runtime;

describe('status of a swarm service', () => {
  it('lists its current tasks by slot, each on its node with state and health, also with no state file here', async () => {
    const { dir, cleanup } = await tempDir('status-tasks-');
    cleanups.push(cleanup);
    const view = await readStackStatus({ stack: 'st', stateDir: dir, runtimes: fixedRuntimeSet({ swarm: clusterRuntime() }), runtimeNames: ['swarm'] });
    expect(view.services.map((s) => [s.name, s.tasks])).toEqual([
      [
        'web',
        [
          { slot: 1, node: 'node-2', state: 'running', health: 'healthy' },
          { slot: 2, node: 'node-3', state: 'starting', health: 'starting' },
        ],
      ],
    ]);
  });

  it('a runtime without tasks adds none', async () => {
    const { dir, cleanup } = await tempDir('status-tasks-');
    cleanups.push(cleanup);
    const plain = {
      ...clusterRuntime(),
      name: 'process',
      discover: async () => [{ ...handle, runtime: 'process' }],
      inspect: async () => ({ running: true }),
    } as unknown as Runtime;
    const view = await readStackStatus({ stack: 'st', stateDir: dir, runtimes: fixedRuntimeSet({ process: plain }), runtimeNames: ['process'] });
    expect(view.services[0]).not.toHaveProperty('tasks');
  });
});
