import { describe, expect, it } from 'vitest';
import { UnsupportedError } from '../../src/errors.js';
import { createEnvBackend } from '../../src/discovery/env.js';
import type { ServiceInstance } from '../../src/discovery/types.js';
import { describeBackendConformance } from './conformance.js';

// One environment for the whole suite: seeds accumulate, as they would in a real process's env.
const suiteEnv: Record<string, string | undefined> = {};

describeBackendConformance('env', {
  make: async () => createEnvBackend({ env: suiteEnv }),
  seed: async (records) => {
    for (const r of records) {
      const name = r.service.toUpperCase().replace(/-/g, '_');
      suiteEnv[`ATPROTO_SERVICE_${name}_HOST`] = r.address;
      suiteEnv[`ATPROTO_SERVICE_${name}_PORT`] = String(r.port);
      if (r.url) suiteEnv[`ATPROTO_SERVICE_${name}_URL`] = r.url;
    }
  },
  seedsSeveralInstances: false,
});

function instance(service: string, extra: Partial<ServiceInstance> = {}): ServiceInstance {
  return { id: `${service}-1`, service, address: '127.0.0.1', tags: [], meta: {}, registeredAt: new Date().toISOString(), ...extra };
}

describe('env backend specifics', () => {
  it('maps service names to variable names: upper case, - as _', async () => {
    const b = createEnvBackend({ env: { ATPROTO_SERVICE_PDS_ADMIN_URL: 'http://127.0.0.1:3001' } });
    const [found] = await b.lookup('pds-admin');
    expect(found).toMatchObject({ service: 'pds-admin', address: '127.0.0.1', port: 3001, url: 'http://127.0.0.1:3001' });
  });

  it('derives host and port from the URL alone, HOST and PORT winning when also set', async () => {
    const b = createEnvBackend({
      env: {
        ATPROTO_SERVICE_PLC_URL: 'https://plc.example.test',
        ATPROTO_SERVICE_BSKY_URL: 'http://[::1]:2584/',
        ATPROTO_SERVICE_RELAY_URL: 'http://127.0.0.1:2470',
        ATPROTO_SERVICE_RELAY_HOST: '127.0.0.9',
      },
    });
    expect(await b.lookup('plc')).toMatchObject([{ address: 'plc.example.test', port: 443 }]);
    expect(await b.lookup('bsky')).toMatchObject([{ address: '::1', port: 2584 }]);
    expect(await b.lookup('relay')).toMatchObject([{ address: '127.0.0.9', port: 2470 }]);
  });

  it('reads the environment at each lookup', async () => {
    const env: Record<string, string | undefined> = {};
    const b = createEnvBackend({ env });
    expect(await b.lookup('feed')).toEqual([]);
    env.ATPROTO_SERVICE_FEED_HOST = '127.0.0.5';
    expect(await b.lookup('feed')).toMatchObject([{ address: '127.0.0.5' }]);
  });

  it('list() finds every service named in the environment', async () => {
    const b = createEnvBackend({
      env: { ATPROTO_SERVICE_PDS_HOST: '127.0.0.1', ATPROTO_SERVICE_OZONE_UI_PORT: '3000', ATPROTO_SERVICE_OZONE_UI_HOST: 'h', OTHER: 'x' },
    });
    expect((await b.list()).map((i) => i.service)).toEqual(['ozone-ui', 'pds']);
  });

  it('environmentFor() gives a dependent the variables, one instance per service', () => {
    const b = createEnvBackend({ env: {} });
    expect(b.capabilities.inject).toBe(true);
    const vars = b.environmentFor!([
      instance('pds', { port: 3000, url: 'http://127.0.0.1:3000' }),
      instance('pds', { id: 'pds-2', address: '127.0.0.2', port: 3001 }),
      instance('pds-admin', { address: '127.0.0.3' }),
    ]);
    expect(vars).toEqual({
      ATPROTO_SERVICE_PDS_HOST: '127.0.0.1',
      ATPROTO_SERVICE_PDS_PORT: '3000',
      ATPROTO_SERVICE_PDS_URL: 'http://127.0.0.1:3000',
      ATPROTO_SERVICE_PDS_ADMIN_HOST: '127.0.0.3',
    });
  });

  it('round-trips: what environmentFor() writes, lookup() reads back', async () => {
    const writer = createEnvBackend({ env: {} });
    const env = writer.environmentFor!([instance('plc', { address: '127.0.0.4', port: 2582, url: 'http://127.0.0.4:2582' })]);
    expect(await createEnvBackend({ env }).lookup('plc')).toMatchObject([{ address: '127.0.0.4', port: 2582, url: 'http://127.0.0.4:2582' }]);
  });

  it('cannot register, deregister, heartbeat or watch', async () => {
    const b = createEnvBackend({ env: {} });
    await expect(b.register({ id: 'a', service: 'pds', address: 'x' })).rejects.toBeInstanceOf(UnsupportedError);
    await expect(b.register({ id: 'a', service: 'pds', address: 'x' })).rejects.toThrow(/env discovery backend does not support register/);
  });
});
