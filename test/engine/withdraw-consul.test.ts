/**
 * Issue 12, item 3, the Consul form, through `upStack` with a real process and the in-repo Consul
 * double: while a service fails its HTTP check it stays in the agent's service list with its TTL
 * check critical (the failure as the check's output), so `?passing` lookups skip it; when it is
 * healthy again the check passes again, with no re-registration. Real time runs here, but no test
 * asserts a duration.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StackController } from '../../src/engine/engine.js';
import { upStack } from '../../src/engine/stack.js';
import { startConsulDouble } from '../fixtures/consul-double.js';
import { freePort, waitFor } from '../helpers/net.js';
import { EventLog, httpService, makeStack, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe('an unhealthy service, with Consul discovery', () => {
  it('is marked critical, not deregistered, while its check fails, and passes again when healthy', async () => {
    const { dir, cleanup } = await tempDir('withdraw-consul-');
    cleanups.push(cleanup);
    const agent = await startConsulDouble();
    cleanups.push(() => agent.close());
    const get = async (p: string): Promise<unknown> => (await fetch(`http://${agent.address}${p}`)).json();
    const check = async () => ((await get('/v1/agent/checks')) as Record<string, { Status: string; Output: string }>)['service:api:wc-api-0'];
    const passing = async () => (await get('/v1/health/service/api?passing')) as unknown[];

    const port = await freePort();
    const healthFile = path.join(dir, 'healthy');
    await writeFile(healthFile, '');
    // Not restarted for failing checks: this test is about discovery alone.
    const api = httpService(port, { HEALTH_FILE: healthFile }, { restart: { policy: 'on-failure', onUnhealthy: false } });
    Object.assign(api.healthCheck as Record<string, unknown>, { retries: 1, startPeriod: '10s' });
    const input = makeStack('wc', dir, { api }, { discovery: { backend: 'consul', consulAddress: agent.address, ttl: '10s', heartbeatInterval: '100ms' } });
    const log = new EventLog();
    const controller: StackController = upStack(input, { onEvent: log.push, cwd: dir });
    cleanups.push(() => controller.stop());
    const report = await controller.ready;
    expect(report.outcome, JSON.stringify(report.failed)).toBe('up');
    // The catalog shows an agent's write a little later (anti-entropy), in the double as in Consul.
    await waitFor(async () => (await passing()).length === 1, 20_000, 'the registration in the catalog');

    await rm(healthFile);
    await waitFor(() => log.events.find((e) => e.type === 'deregistered' && e.service === 'api'), 20_000, 'the withdrawal');
    expect(await check()).toMatchObject({ Status: 'critical', Output: expect.stringContaining('unhealthy') });
    await waitFor(async () => (await passing()).length === 0, 20_000, 'the catalog to see it critical');
    expect(Object.keys((await get('/v1/agent/services')) as object)).toContain('api:wc-api-0');
    const registrations = agent.requests.filter((r) => r.path === '/v1/agent/service/register').length;

    await writeFile(healthFile, '');
    await waitFor(async () => ((await passing()).length === 1 ? true : undefined), 20_000, 'the check to pass again');
    expect(await check()).toMatchObject({ Status: 'passing' });
    expect(agent.requests.filter((r) => r.path === '/v1/agent/service/register').length).toBe(registrations);
    expect(controller.status()[0]!.restarts).toBe(0);
  }, 60_000);
});
