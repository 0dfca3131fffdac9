import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBackend, createDiscovery, createDiscoveryClient, DEFAULT_DISCOVERY_CONFIG, discoveryConfig } from '../../src/discovery/index.js';
import { DISCOVERY_DRIVERS, discoverySecretValues, redactDiscoveryConfig } from '../../src/discovery/registry.js';
import { schemas } from '../../src/profile/schema.js';
import { normalizeProfile } from '../../src/profile/normalize.js';
import type { DiscoveryBackendName } from '../../src/profile/types.js';
import type { ServiceInstance } from '../../src/discovery/types.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'stack-discovery-index-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('createBackend', () => {
  it('builds every backend by name, lazily loading the server-backed ones', async () => {
    const names: DiscoveryBackendName[] = ['memory', 'file', 'env', 'dns', 'etcd', 'nats', 'consul'];
    const cwd = await tempDir();
    const config = discoveryConfig({ dnsServer: '127.0.0.1:5353', dnsDomain: 'test.local' });
    for (const name of names) {
      const b = await createBackend(name, config, { cwd, env: {} });
      expect(b.name).toBe(name);
      expect(typeof b.capabilities.lookup).toBe('boolean');
      await b.close();
    }
  });

  it('resolves a relative file directory against the given working directory', async () => {
    const cwd = await tempDir();
    const b = await createBackend('file', discoveryConfig({ fileDirectory: 'state/disc' }), { cwd });
    await b.register({ id: 'a-1', service: 'pds', address: '127.0.0.1' });
    expect(await readdir(path.join(cwd, 'state', 'disc', 'pds'))).toEqual(['a-1.json']);
    await b.close();
  });
});

describe('the registry of backends', () => {
  it('each definition says what its backend can do, and names it', async () => {
    const cwd = await tempDir();
    const config = discoveryConfig({ dnsServer: '127.0.0.1:5353', dnsDomain: 'test.local' });
    for (const driver of DISCOVERY_DRIVERS) {
      const b = await createBackend(driver.name, config, { cwd, env: {} });
      expect(b.name).toBe(driver.name);
      expect(b.capabilities).toEqual(driver.capabilities);
      await b.close();
    }
  });

  it('an unknown backend name is an input error naming the known ones', async () => {
    await expect(createBackend('zookeeper' as never, discoveryConfig())).rejects.toMatchObject({ code: 'invalid_input', path: 'discovery.backends' });
  });

  it('the profile schema takes its backend names and option keys from the definitions', () => {
    const { discoverySchema } = schemas();
    for (const driver of DISCOVERY_DRIVERS) expect(discoverySchema.safeParse({ backend: driver.name }).success).toBe(true);
    expect(discoverySchema.safeParse({ backend: 'zookeeper' }).success).toBe(false);
    expect(discoverySchema.safeParse({ natsBucket: 'has space' }).success).toBe(false); // nats's own option type
    expect(discoverySchema.safeParse({ natsBukket: 'services' }).success).toBe(false);
  });

  it('a profile without discovery settings normalises to the same defaults the library uses', () => {
    const profile = normalizeProfile({ services: {} }, { defaultName: 't', source: { dir: '/', files: [] } });
    expect(profile.discovery).toEqual(DEFAULT_DISCOVERY_CONFIG);
    for (const driver of DISCOVERY_DRIVERS) expect(profile.discovery).toMatchObject(driver.defaults);
  });

  it("masks each backend's secret options and passwords in its URLs, and nothing else", () => {
    const config = discoveryConfig({
      consulToken: 'ctok',
      etcdPassword: 'epw',
      etcdEndpoints: ['http://root:epw2@127.0.0.1:2379', 'http://127.0.0.1:2380'],
      natsUrl: 'nats://app:npw@127.0.0.1:4222',
      natsToken: 'ntok',
      natsPassword: 'npw3',
    });
    const shown = JSON.stringify(redactDiscoveryConfig(config));
    for (const secret of ['ctok', 'epw', 'epw2', 'npw', 'ntok', 'npw3']) expect(shown).not.toContain(`"${secret}"`);
    expect(shown).not.toMatch(/epw2|:npw@/);
    expect(shown).toContain('nats://app:••••@127.0.0.1:4222');
    expect(shown).toContain('http://127.0.0.1:2380');
    expect(discoverySecretValues(config).sort()).toEqual(['ctok', 'epw', 'epw2', 'npw', 'npw3', 'ntok']);
  });
});

describe('createDiscovery', () => {
  it('puts the configured backends in order behind one manager', async () => {
    const cwd = await tempDir();
    const env = { ATPROTO_SERVICE_PLC_URL: 'http://127.0.0.5:2582' };
    const m = await createDiscovery(discoveryConfig({ backends: ['file', 'env'] }), { cwd, env });
    cleanups.push(() => m.close());
    expect(m.backends.map((b) => b.name)).toEqual(['file', 'env']);
    await m.register({ id: 'pds-1', service: 'pds', address: '127.0.0.1', port: 3000 });
    expect((await m.lookup('pds')).map((i) => i.id)).toEqual(['pds-1']); // from file
    expect((await m.lookup('plc')).map((i) => i.port)).toEqual([2582]); // file empty: falls to env
    expect(m.environmentFor(await m.lookup('pds'))).toEqual({ ATPROTO_SERVICE_PDS_HOST: '127.0.0.1', ATPROTO_SERVICE_PDS_PORT: '3000' });
  });
});

describe('the library API for services', () => {
  it('register, lookup, watch and deregister by role, with heartbeats keeping the registration alive', async () => {
    const dir = await tempDir();
    const config = { backends: ['file'] as DiscoveryBackendName[], fileDirectory: dir, ttlMs: 400, heartbeatIntervalMs: 100 };
    const service = await createDiscoveryClient(config);
    const dependent = await createDiscoveryClient(config);
    cleanups.push(
      () => service.close(),
      () => dependent.close(),
    );

    const ac = new AbortController();
    const changes = dependent.watch('feedgen', { signal: ac.signal })[Symbol.asyncIterator]();
    expect((await changes.next()).value).toEqual([]);

    const registered = await service.register('feedgen', { id: 'feedgen-1', address: '127.0.0.1', port: 3300, url: 'http://127.0.0.1:3300' });
    expect(registered).toMatchObject({ service: 'feedgen', id: 'feedgen-1' });
    expect(((await changes.next()).value as ServiceInstance[]).map((i) => i.url)).toEqual(['http://127.0.0.1:3300']);

    // Several TTLs later the heartbeats have kept it registered.
    const aliveUntil = Date.parse(registered.registeredAt) + 1500;
    while (Date.now() < aliveUntil) await new Promise((r) => setTimeout(r, 100));
    expect((await dependent.manager.backends[0]!.lookup('feedgen')).map((i) => i.id)).toEqual(['feedgen-1']);

    await service.deregister('feedgen', 'feedgen-1');
    expect((await changes.next()).value).toEqual([]);
    ac.abort();
  });
});
