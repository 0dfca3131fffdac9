import { describe, expect, it } from 'vitest';
import { createRuntimeSet } from '../../src/engine/runtimes.js';
import { healthTargetFor } from '../../src/runtime/target.js';
import { normalizeProfile } from '../../src/profile/normalize.js';
import { schemas } from '../../src/profile/schema.js';
import type { ServiceSpec } from '../../src/profile/types.js';
import { RUNTIMES, runtimeDefinition } from '../../src/drivers/runtime/registry.js';
import type { Runtime, ServiceHandle } from '../../src/runtime/types.js';

const source = { dir: '/', files: [] };

describe('the registry of runtimes', () => {
  it('an unknown runtime name is an input error, never Docker', async () => {
    const runtimes = createRuntimeSet({ stateDir: '/tmp/unused' });
    await expect(runtimes.get('podman' as never)).rejects.toMatchObject({ code: 'invalid_input', exitCode: 2 });
    expect(() => runtimeDefinition('podman')).toThrow(new RegExp(`unknown runtime 'podman' \\(known: ${RUNTIMES.map((r) => r.name).join(', ')}\\)`));
    const service = { name: 'a', runtime: 'podman', workingDir: '.' } as unknown as ServiceSpec;
    const runtime = { endpoint: (_h: ServiceHandle, port: number) => ({ host: '127.0.0.1', port }) } as unknown as Runtime;
    expect(() => healthTargetFor(runtime, {} as ServiceHandle, service, { strategy: 'tcp', port: 1 } as never, { profileDir: '/' })).toThrow(/unknown runtime/);
    await runtimes.close();
  });

  it('the profile schema takes runtime names and runtime sections from the definitions', () => {
    const { profileSchema } = schemas();
    for (const r of RUNTIMES) expect(profileSchema.safeParse({ runtime: r.name, services: { a: { runtime: r.name } } }).success).toBe(true);
    expect(profileSchema.safeParse({ services: { a: { runtime: 'podman' } } }).success).toBe(false);
    expect(profileSchema.safeParse({ runtime: 'podman', services: {} }).success).toBe(false);
    expect(profileSchema.safeParse({ docker: { host: 'unix:///run/docker.sock' }, services: {} }).success).toBe(true);
    expect(profileSchema.safeParse({ docker: { hots: 'x' }, services: {} }).success).toBe(false);
    expect(profileSchema.safeParse({ process: {}, services: {} }).success).toBe(false); // no settings, no section
  });

  it('a service naming no runtime gets the one that runs images when it has an image', () => {
    const profile = normalizeProfile({ services: { web: { image: 'nginx' }, tool: { command: ['true'] } } }, { defaultName: 't', source });
    expect(profile.services.web?.runtime).toBe('docker');
    expect(profile.services.tool?.runtime).toBe('process');
    expect(profile.docker).toEqual({});
  });

  it('the process runtime is created from its definition', async () => {
    const runtimes = createRuntimeSet({ stateDir: '/tmp/unused' });
    const runtime = await runtimes.get('process');
    expect(runtimes.created()).toEqual([runtime]);
    await runtimes.close();
  });

  it('every registered runtime has its implementation, src/runtime/<name>.ts exporting fromProfile', async () => {
    for (const r of RUNTIMES) {
      const module = (await import(`../../src/runtime/${r.name}.ts`)) as { fromProfile?: unknown };
      expect(typeof module.fromProfile, r.name).toBe('function');
    }
  });

  it('what plan says a service runs comes from its runtime', () => {
    expect(runtimeDefinition('docker').describeRun({ image: 'busybox', command: ['sh'] } as ServiceSpec)).toBe('busybox');
    expect(runtimeDefinition('process').describeRun({ command: ['node', 'server.js'] } as ServiceSpec)).toBe('node');
  });
});
