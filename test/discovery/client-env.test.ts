import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { clientSettings, discoveryConfigFromEnv, discoveryEnvironmentFor } from '../../src/discovery/client-env.js';
import { createDiscoveryClient } from '../../src/discovery/index.js';
import { testDiscoveryConfig } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stack-client-env-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('STACK_DISCOVERY for started services', () => {
  test('without secrets: inline JSON with the backends, TTL, heartbeat and absolute paths only of the configured backends', () => {
    const env = discoveryEnvironmentFor(
      testDiscoveryConfig({ backends: ['sql', 'file'], sqlUrl: 'sqlite:.stack/d.sqlite', fileDirectory: 'reg', ttlMs: 9000, heartbeatIntervalMs: 3000 }),
      { stateDir: path.join(dir, 'state'), cwd: '/srv/app' },
    );
    const settings = JSON.parse(env.STACK_DISCOVERY!) as Record<string, unknown>;
    expect(settings).toMatchObject({
      backends: ['sql', 'file'],
      ttlMs: 9000,
      heartbeatIntervalMs: 3000,
      sqlUrl: 'sqlite:///srv/app/.stack/d.sqlite',
      fileDirectory: '/srv/app/reg',
    });
    expect(Object.keys(settings).some((k) => k.startsWith('etcd') || k.startsWith('nats'))).toBe(false);
  });

  test('with a secret: a 0600 file in the state folder, its path in the variable, the secret nowhere in the environment', async () => {
    const stateDir = path.join(dir, 'secret-state');
    const env = discoveryEnvironmentFor(
      testDiscoveryConfig({ backends: ['nats'], natsUrl: 'nats://127.0.0.1:4222', natsPassword: 'nats-pass-991', natsUser: 'svc' }),
      { stateDir },
    );
    expect(env.STACK_DISCOVERY).toBe(path.join(stateDir, 'discovery-client.json'));
    expect(JSON.stringify(env)).not.toContain('nats-pass-991');
    expect((await stat(env.STACK_DISCOVERY!)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(env.STACK_DISCOVERY!, 'utf8'))).toMatchObject({ natsPassword: 'nats-pass-991', natsUser: 'svc' });
    // And the client reads it back from the path.
    expect(discoveryConfigFromEnv({ STACK_DISCOVERY: env.STACK_DISCOVERY })).toMatchObject({ backends: ['nats'], natsPassword: 'nats-pass-991' });
  });

  test('a password inside a URL counts as a secret too', () => {
    const env = discoveryEnvironmentFor(testDiscoveryConfig({ backends: ['sql'], sqlUrl: 'postgres://u:url-pass-5@db/x' }), {
      stateDir: path.join(dir, 'url-state'),
    });
    expect(env.STACK_DISCOVERY).not.toContain('url-pass-5');
  });

  test('tls paths become absolute', () => {
    const s = clientSettings(testDiscoveryConfig({ backends: ['etcd'], tls: { ca: 'certs/ca.pem', insecureSkipVerify: false } }), '/srv/app');
    expect(s.tls).toEqual({ ca: '/srv/app/certs/ca.pem', insecureSkipVerify: false });
  });
});

describe('reading it back', () => {
  test('nothing set: undefined (the client uses the defaults)', () => {
    expect(discoveryConfigFromEnv({})).toBeUndefined();
  });

  test('DISCOVERY_KIND picks the backends, over STACK_DISCOVERY', () => {
    expect(discoveryConfigFromEnv({ DISCOVERY_KIND: 'nats' })).toEqual({ backends: ['nats'] });
    expect(discoveryConfigFromEnv({ DISCOVERY_KIND: 'memory', STACK_DISCOVERY: '{"backends":["etcd"],"ttlMs":5000}' })).toEqual({
      backends: ['memory'],
      ttlMs: 5000,
    });
  });

  test('bad values are invalid input naming the variable', () => {
    expect(() => discoveryConfigFromEnv({ DISCOVERY_KIND: 'zookeeper' })).toThrow(/DISCOVERY_KIND.*zookeeper/s);
    expect(() => discoveryConfigFromEnv({ STACK_DISCOVERY: '{not json' })).toThrow(/STACK_DISCOVERY/);
    expect(() => discoveryConfigFromEnv({ STACK_DISCOVERY: 'relative/file.json' })).toThrow(/STACK_DISCOVERY/);
    try {
      discoveryConfigFromEnv({ DISCOVERY_KIND: 'zookeeper' });
    } catch (err) {
      expect(err).toMatchObject({ code: 'invalid_input', exitCode: 2, path: 'DISCOVERY_KIND' });
    }
  });

  test('createDiscoveryClient() with no arguments reads the environment (file backend at the given folder)', async () => {
    const folder = path.join(dir, 'registry');
    const env = discoveryEnvironmentFor(testDiscoveryConfig({ backends: ['file'], fileDirectory: folder }), { stateDir: dir });
    const a = await createDiscoveryClient(undefined, { env });
    const b = await createDiscoveryClient(undefined, { env });
    try {
      await a.register('api', { id: 'api-1', address: '127.0.0.1', port: 8080 });
      expect((await b.lookup('api')).map((i) => i.id)).toEqual(['api-1']);
      // It really went to the folder the variable named.
      expect((await readFile(path.join(folder, 'api', 'api-1.json'), 'utf8').catch(() => '')).length).toBeGreaterThan(0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('memory (monolith mode): every client of the process shares one registry', async () => {
    const a = await createDiscoveryClient(undefined, { env: { DISCOVERY_KIND: 'memory' } });
    const b = await createDiscoveryClient(undefined, { env: { DISCOVERY_KIND: 'memory' } });
    try {
      await a.register('mono', { id: 'm-1', address: '127.0.0.1' });
      expect((await b.lookup('mono')).map((i) => i.id)).toEqual(['m-1']);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
