/**
 * `replicas: N` on the Docker runtime, through the built `stack` command: N containers, each
 * registered on its own published port; `up` again with another count starts or stops the
 * difference and leaves the others running; `down` removes them all.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDiscovery, discoveryConfig } from '../../src/discovery/index.js';
import { LABELS } from '../../src/runtime/docker-spec.js';
import { BUSYBOX_IMAGE, httpdCommand } from '../fixtures/docker-image.js';
import { useDockerStack } from '../fixtures/docker-stack.js';
import { freePort } from '../helpers/net.js';

const ds = useDockerStack('stack-docker-replicas-');

async function web(replicas: number, hostPort: number): Promise<void> {
  await ds.writeProfile({
    web: {
      image: BUSYBOX_IMAGE,
      pull: 'never',
      port: 8080,
      ports: [`${hostPort}:8080`],
      command: httpdCommand(8080, 'all'),
      healthCheck: { strategy: 'http', endpoint: '/', interval: '100ms', retries: 0 },
      stopGracePeriod: '2s',
      replicas,
    },
  });
}

async function replicas(): Promise<Record<string, string>> {
  const list = await ds.docker.listContainers({ filters: ds.labelFilter() });
  return Object.fromEntries(list.map((c) => [c.Labels[LABELS.replica]!, c.Id]));
}

describe('replicas on Docker', () => {
  it('runs N containers, each registered; scaling with `up` again leaves the others alone', async () => {
    await ds.create();
    const hostPort = await freePort();
    await web(3, hostPort);
    const up = await ds.run('up', '--detach');
    expect(up.code, up.stderr + up.stdout).toBe(0);
    const three = await replicas();
    expect(Object.keys(three).sort()).toEqual(['0', '1', '2']);
    const discovery = await createDiscovery(discoveryConfig({ backends: ['file'], fileDirectory: path.join(ds.dir, 'discovery') }));
    try {
      const records = await discovery.lookup('web');
      expect(records.map((r) => r.id)).toEqual([`${ds.name}-web-0`, `${ds.name}-web-1`, `${ds.name}-web-2`]);
      expect(new Set(records.map((r) => r.port)).size).toBe(3);
      expect(records[0]!.port).toBe(8080);

      await web(2, hostPort);
      const down = await ds.run('up', '--detach');
      expect(down.code, down.stderr + down.stdout).toBe(0);
      expect(await replicas()).toEqual({ '0': three['0'], '1': three['1'] });
      discovery.invalidate();
      expect((await discovery.lookup('web')).map((r) => r.id)).toEqual([`${ds.name}-web-0`, `${ds.name}-web-1`]);
    } finally {
      await discovery.close();
    }
    const stop = await ds.run('down');
    expect(stop.code, stop.stderr).toBe(0);
    expect(await replicas()).toEqual({});
  }, 120_000);
});
