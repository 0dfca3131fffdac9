/** The seed's API names (src/template/seed.ts): each thin wrapper does what its documentation says. */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createDiscovery,
  generateDiscoveryConfig,
  generateStackConfigs,
  mkConfigTemplate,
  mkConfigurationTemplating,
  mkDeploymentProfile,
  mkServiceDiscovery,
  processTemplateWithDiscovery,
} from '../../src/index.js';
import { InvalidInputError } from '../../src/errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stack-seed-api-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function profile(discovery: Record<string, unknown> = { backend: 'memory' }) {
  return mkDeploymentProfile(
    {
      name: 'seed',
      domain: 'example.test',
      discovery,
      variables: { greeting: 'hi' },
      services: {
        db: { command: ['true'], port: 5432, address: '127.0.0.1' },
        api: {
          command: ['true'],
          port: 8080,
          dependencies: ['db'],
          templates: [{ destination: 'api.env', template: 'DB={{service.db.url}}\nGREETING={{greeting}}\n' }],
        },
      },
    },
    { cwd: dir },
  );
}

describe('seed API names', () => {
  test('mkServiceDiscovery(): with no config, the environment decides (here: memory, monolith mode)', async () => {
    const a = await mkServiceDiscovery(undefined, { env: { DISCOVERY_KIND: 'memory' } });
    const b = await mkServiceDiscovery(undefined, { env: { DISCOVERY_KIND: 'memory' } });
    try {
      await a.register('seed-role', { id: 's-1', address: '127.0.0.1', port: 1 });
      expect((await b.lookup('seed-role')).map((i) => i.id)).toEqual(['s-1']);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('generateDiscoveryConfig: the STACK_DISCOVERY a service gets; secrets masked in settings, kept in a 0600 file', async () => {
    const p = profile({ backend: 'nats', natsUrl: 'nats://127.0.0.1:4222', natsToken: 'tok-secret-31' });
    const generated = generateDiscoveryConfig(p, { stateDir: path.join(dir, 'state'), cwd: dir });
    expect(generated.settings).toMatchObject({ backends: ['nats'], natsUrl: 'nats://127.0.0.1:4222' });
    expect(JSON.stringify(generated)).not.toContain('tok-secret-31');
    expect((await stat(generated.environment.STACK_DISCOVERY!)).mode & 0o777).toBe(0o600);
  });

  test('mkConfigTemplate: format from the destination; a bad template is invalid input naming the field', () => {
    expect(mkConfigTemplate({ destination: 'app.json', data: { a: '{{x}}' } })).toMatchObject({ destination: 'app.json', format: 'json', env: false });
    expect(() => mkConfigTemplate({ destination: '' })).toThrow(InvalidInputError);
    expect(() => mkConfigTemplate({ destination: 'x.txt' })).toThrow(/data.*template/);
  });

  test('mkConfigurationTemplating: the context of a profile with rendering bound to it', () => {
    const t = mkConfigurationTemplating(profile(), { cwd: dir, stateDir: dir });
    expect(t.render({ destination: 'x.txt', format: 'text', template: '{{greeting}} {{service.db.url}}' })).toBe('hi http://127.0.0.1:5432');
    expect(t.renderAll().files.map((f) => f.destination)).toEqual(['api.env']);
  });

  test('processTemplateWithDiscovery: renders against the live instances, not the planned addresses', async () => {
    const p = profile();
    const manager = await createDiscovery(p.discovery);
    try {
      await manager.register({ id: 'db-live', service: 'db', address: '127.0.0.9', port: 6543 });
      await manager.register({ id: 'api-live', service: 'api', address: '127.0.0.1', port: 8080 });
      const out = await processTemplateWithDiscovery('db at {{service.db.host}}:{{service.db.port}}', p, manager, { cwd: dir, stateDir: dir });
      expect(out).toBe('db at 127.0.0.9:6543');
      await expect(processTemplateWithDiscovery('{{service.nope.url}}', p, manager, { cwd: dir, stateDir: dir })).rejects.toBeInstanceOf(InvalidInputError);
    } finally {
      await manager.close();
    }
  });

  test("generateStackConfigs: every service's configs, rendered, nothing written", () => {
    const result = generateStackConfigs(profile(), { cwd: dir, stateDir: dir });
    expect(result.problems.filter((p) => p.severity !== 'warning')).toEqual([]);
    expect(result.files).toHaveLength(1);
    expect(result.files[0]).toMatchObject({ service: 'api', destination: 'api.env' });
    expect(result.files[0]!.content).toBe('DB=http://127.0.0.1:5432\nGREETING=hi\n');
  });
});
