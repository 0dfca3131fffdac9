/**
 * Pull policies against a registry on loopback (test/fixtures/docker-image.ts): `missing` pulls
 * an absent image once with progress, `always` asks the registry every time, `never` does not ask.
 */
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerRuntime } from '../../src/runtime/docker.js';
import { busyboxService, startLoopbackRegistry, type LoopbackRegistry } from '../fixtures/docker-image.js';

const docker = new Docker();
let registry: LoopbackRegistry;
const pulled: string[] = [];

beforeAll(async () => {
  registry = await startLoopbackRegistry();
});

afterAll(async () => {
  for (const image of pulled)
    await docker
      .getImage(image)
      .remove({ force: true })
      .catch(() => undefined);
  await registry?.close();
});

const manifestRequests = (name: string) => registry.requests.filter((r) => r.includes(`/${name}/manifests/`)).length;

describe('docker runtime image pulls', () => {
  it("pulls an absent image with 'missing', reporting progress per service, and not again once present", async () => {
    const name = `stack-test/pull-${randomBytes(4).toString('hex')}`;
    const image = registry.image(name);
    pulled.push(image);
    const progress: [string, string][] = [];
    const runtime = createDockerRuntime({ onPullProgress: (service, line) => progress.push([service, line]) });
    const stack = `t-${randomBytes(4).toString('hex')}`;
    try {
      const service = busyboxService({ name: 'pds', network: 'host', image, pull: 'missing' });
      await runtime.prepare(stack, [service], {});
      expect((await docker.getImage(image).inspect()).Id).toMatch(/^sha256:/);
      expect(progress.length).toBeGreaterThan(0);
      expect(progress.every(([s]) => s === 'pds')).toBe(true);
      expect(progress.map(([, l]) => l).join('\n')).toMatch(/Pull complete|Download complete/);

      const asked = manifestRequests(name);
      await runtime.prepare(stack, [service], {});
      expect(manifestRequests(name)).toBe(asked); // present: not pulled again
    } finally {
      await runtime.close();
    }
  });

  it("asks the registry on every prepare with 'always', never with 'never'", async () => {
    const name = `stack-test/pull-${randomBytes(4).toString('hex')}`;
    const image = registry.image(name);
    pulled.push(image);
    const runtime = createDockerRuntime();
    const stack = `t-${randomBytes(4).toString('hex')}`;
    try {
      await runtime.prepare(stack, [busyboxService({ network: 'host', image, pull: 'always' })], {});
      const first = manifestRequests(name);
      expect(first).toBeGreaterThan(0);
      await runtime.prepare(stack, [busyboxService({ network: 'host', image, pull: 'always' })], {});
      expect(manifestRequests(name)).toBeGreaterThan(first);

      const before = manifestRequests(name);
      await runtime.prepare(stack, [busyboxService({ network: 'host', image, pull: 'never' })], {});
      expect(manifestRequests(name)).toBe(before);
    } finally {
      await runtime.close();
    }
  });
});
