/**
 * The Docker runtime stops and removes only containers that carry the stack's labels (issue 11):
 * a container id in a state file anyone can edit must not cost a stranger its container and its
 * anonymous volumes. Images are built locally; nothing is pulled.
 */
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDockerRuntime } from '../../src/runtime/docker.js';
import { LABELS } from '../../src/runtime/docker-spec.js';
import type { ServiceHandle } from '../../src/runtime/types.js';
import { BUSYBOX_IMAGE, ensureBusyboxImage } from '../fixtures/docker-image.js';

const docker = new Docker();
const created: string[] = [];

beforeAll(async () => {
  await ensureBusyboxImage();
});

afterEach(async () => {
  for (const id of created.splice(0))
    await docker
      .getContainer(id)
      .remove({ force: true, v: true })
      .catch(() => undefined);
});

/** A running container this test made, with the given labels (none: a stranger's). */
async function container(labels: Record<string, string>): Promise<string> {
  const c = await docker.createContainer({
    Image: BUSYBOX_IMAGE,
    Cmd: ['sleep', '300'],
    name: `stack-safety-${randomBytes(4).toString('hex')}`,
    Labels: labels,
    HostConfig: { NetworkMode: 'none' },
  });
  created.push(c.id);
  await c.start();
  return c.id;
}

const forged = (id: string, stack: string): ServiceHandle => ({
  runtime: 'docker',
  stack,
  service: 'web',
  replica: 0,
  id,
  startedAt: new Date().toISOString(),
});

describe('docker runtime: never stops a container that is not the stack’s', () => {
  it('refuses to stop or remove a container without the stack’s label, and reports it as not running', async () => {
    const stranger = await container({});
    const runtime = createDockerRuntime();
    try {
      const handle = forged(stranger, `s-${randomBytes(3).toString('hex')}`);
      expect(await runtime.inspect(handle)).toEqual({ running: false });
      await expect(runtime.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 1000 })).rejects.toMatchObject({ code: 'not_ours' });
      expect((await docker.getContainer(stranger).inspect()).State.Running).toBe(true);
    } finally {
      await runtime.close();
    }
  });

  it('refuses a container of another stack named by this stack’s state', async () => {
    const other = `s-${randomBytes(3).toString('hex')}`;
    const theirs = await container({ [LABELS.stack]: other, [LABELS.service]: 'web', [LABELS.replica]: '0' });
    const runtime = createDockerRuntime();
    try {
      await expect(runtime.stop(forged(theirs, `mine-${other}`), { signal: 'SIGTERM', gracePeriodMs: 1000 })).rejects.toMatchObject({
        code: 'not_ours',
        message: expect.stringContaining(`stack '${other}'`),
      });
      expect((await docker.getContainer(theirs).inspect()).State.Running).toBe(true);
      // Its own stack stops it as always.
      await runtime.stop(forged(theirs, other), { signal: 'SIGTERM', gracePeriodMs: 1000 });
      await runtime.close();
      await expect(docker.getContainer(theirs).inspect()).rejects.toMatchObject({ statusCode: 404 });
    } finally {
      await runtime.close();
    }
  });
});
