/**
 * The consul backend against the in-repo double of Consul's HTTP API (always), and against a
 * real agent when CONSUL_HTTP_ADDR is set (CONSUL_HTTP_TOKEN is used as the ACL token if set).
 * What the double models of a real cluster (several agents, a catalog that converges a little
 * after a write, ACL filtering, reaping, index quirks) and the backend's answers to it are in
 * consul-fidelity.test.ts. Reads of the catalog are polled: a real catalog shows an agent's write
 * a little later, and so does the double (100 ms by default).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createConsulBackend } from '../../src/discovery/consul.js';
import { createDiscoveryManager } from '../../src/discovery/manager.js';
import type { DiscoveryBackend } from '../../src/discovery/types.js';
import { UnreachableError } from '../../src/errors.js';
import type { DiscoveryConfig } from '../../src/profile/types.js';
import { consulRequest, startConsulDouble, type ConsulDouble } from '../fixtures/consul-double.js';
import { freePort, waitFor } from '../helpers/net.js';
import { describeBackendConformance } from './conformance.js';
import { checkError, expectCloseEndsWatches, expectUnreachableWithout, ids, testDiscoveryConfig } from './helpers.js';

function config(overrides: Partial<DiscoveryConfig> = {}): DiscoveryConfig {
  return testDiscoveryConfig({ backends: ['consul'], ...overrides });
}

const http = (double: ConsulDouble, method: string, path: string, body?: unknown, token?: string) => consulRequest(double.address, method, path, body, token);
const json = async <T>(double: ConsulDouble, path: string): Promise<T> => (await http(double, 'GET', path)).json() as T;

describe('consul double (the API as documented)', () => {
  let double: ConsulDouble;
  beforeAll(async () => {
    // This suite reads the catalog right after writing through the agent: it says so.
    double = await startConsulDouble({ syncDelayMs: 0 });
  });
  afterAll(async () => {
    await double?.close();
  });

  test('a TTL check goes critical when not passed, and (fast reaping) the service is reaped after DeregisterCriticalServiceAfter', async () => {
    const fast = await startConsulDouble({ syncDelayMs: 0, fastReap: true });
    try {
      const reg = await http(fast, 'PUT', '/v1/agent/service/register', {
        ID: 'web-1',
        Name: 'web',
        Port: 80,
        Check: { TTL: '300ms', Status: 'passing', DeregisterCriticalServiceAfter: '300ms' },
      });
      expect(reg.status).toBe(200);
      const passing = await http(fast, 'GET', '/v1/health/service/web?passing');
      expect((passing.json() as unknown[]).length).toBe(1);
      expect(Number(passing.index)).toBeGreaterThan(0);
      await waitFor(
        async () => {
          const [entry] = await json<{ Checks: { CheckID: string; Status: string }[] }[]>(fast, '/v1/health/service/web');
          return entry?.Checks.find((c) => c.CheckID === 'service:web-1')?.Status === 'critical';
        },
        10_000,
        'the check to go critical',
      );
      expect(await json(fast, '/v1/health/service/web?passing')).toEqual([]);
      await waitFor(async () => (await json<unknown[]>(fast, '/v1/catalog/service/web')).length === 0, 10_000, 'the reaper');
      expect((await http(fast, 'PUT', '/v1/agent/check/pass/service:web-1')).status).toBe(404);
    } finally {
      await fast.close();
    }
  });

  test('check/fail turns a TTL check critical with the note as output: out of ?passing, still an agent service; check/pass passes it again', async () => {
    await http(double, 'PUT', '/v1/agent/service/register', { ID: 'sick-1', Name: 'sick', Check: { TTL: '30s', Status: 'passing' } });
    const failed = await http(double, 'PUT', `/v1/agent/check/fail/${encodeURIComponent('service:sick-1')}?note=${encodeURIComponent('HTTP 500')}`);
    expect(failed.status).toBe(200);
    const checks = await json<Record<string, { Status: string; Output: string }>>(double, '/v1/agent/checks');
    expect(checks['service:sick-1']).toMatchObject({ Status: 'critical', Output: 'HTTP 500' });
    expect(await json(double, '/v1/health/service/sick?passing')).toEqual([]);
    expect((await json<unknown[]>(double, '/v1/health/service/sick')).length).toBe(1);
    expect(Object.keys(await json<object>(double, '/v1/agent/services'))).toContain('sick-1');
    await http(double, 'PUT', '/v1/agent/check/pass/service:sick-1');
    expect((await json<unknown[]>(double, '/v1/health/service/sick?passing')).length).toBe(1);
    expect((await http(double, 'PUT', '/v1/agent/check/fail/service:nobody')).status).toBe(404);
  });

  test('a blocking query returns on the next change, with a larger X-Consul-Index', async () => {
    const first = await http(double, 'GET', '/v1/health/service/blocky');
    const pending = http(double, 'GET', `/v1/health/service/blocky?index=${first.index}&wait=30s`);
    await http(double, 'PUT', '/v1/agent/service/register', { ID: 'b-1', Name: 'blocky', Check: { TTL: '30s', Status: 'passing' } });
    const answer = await pending;
    expect(Number(answer.index)).toBeGreaterThan(Number(first.index));
    expect((answer.json() as { Service: { ID: string } }[]).map((e) => e.Service.ID)).toEqual(['b-1']);
  });

  test('a blocking query with nothing changing answers after `wait` with the same index', async () => {
    const first = await http(double, 'GET', '/v1/health/service/quiet');
    const again = await http(double, 'GET', `/v1/health/service/quiet?index=${first.index}&wait=50ms`);
    expect(again.index).toBe(first.index);
  });

  test('with ACLs on: a wrong token is refused with 403 (never echoed); without one, reads are filtered, not refused, and writes are refused', async () => {
    const secured = await startConsulDouble({ aclToken: 'the-token', syncDelayMs: 0 });
    try {
      expect((await http(secured, 'PUT', '/v1/agent/service/register', { ID: 'x-1', Name: 'x' }, 'the-token')).status).toBe(200);
      const anonymous = await http(secured, 'GET', '/v1/catalog/services');
      expect(anonymous.status).toBe(200);
      expect(anonymous.json()).toEqual({});
      expect(await json(secured, '/v1/health/service/x')).toEqual([]);
      expect((await http(secured, 'PUT', '/v1/agent/service/register', { ID: 'y-1', Name: 'y' })).status).toBe(403);
      const wrong = await http(secured, 'GET', '/v1/catalog/services', undefined, 'not-it');
      expect(wrong.status).toBe(403);
      expect(wrong.text).not.toContain('not-it');
      const right = await http(secured, 'GET', '/v1/catalog/services', undefined, 'the-token');
      expect(right.status).toBe(200);
      expect(Object.keys(right.json() as object).sort()).toEqual(['consul', 'x']);
      expect((await http(secured, 'GET', '/v1/status/leader')).status).toBe(200);
    } finally {
      await secured.close();
    }
  });
});

describe('consul backend (against the double)', () => {
  let double: ConsulDouble;
  const opened: DiscoveryBackend[] = [];
  const backend = (overrides: Partial<DiscoveryConfig> = {}) => {
    const b = createConsulBackend(config({ consulAddress: double.address, ...overrides }));
    opened.push(b);
    return b;
  };
  const eventually = (b: DiscoveryBackend, service: string, want: string[]) =>
    waitFor(async () => ids(await b.lookup(service)).join() === want.join(), 10_000, `${service} to be [${want.join()}]`);
  beforeAll(async () => {
    double = await startConsulDouble();
  });
  afterAll(async () => {
    await Promise.all(opened.map((b) => b.close()));
    await double?.close();
  });

  test('registers an agent service <service>:<id> with a passing TTL check service:<service>:<id>', async () => {
    const b = backend({ ttlMs: 5000 });
    await b.register({ id: 'pds-1', service: 'pds', address: '127.0.0.1', port: 3000, url: 'http://127.0.0.1:3000', meta: { v: '1' } });
    // Agent endpoints are the agent's own state: they show a registration at once.
    const services = await json<Record<string, { Service: string; Meta: Record<string, string> }>>(double, '/v1/agent/services');
    expect(services['pds:pds-1']).toMatchObject({ Service: 'pds', Meta: { v: '1', 'stack-id': 'pds-1', 'stack-url': 'http://127.0.0.1:3000' } });
    const checks = await json<Record<string, { Status: string }>>(double, '/v1/agent/checks');
    expect(checks['service:pds:pds-1']?.Status).toBe('passing');
  });

  test('two stacks on one agent: same instance id, different services, no clash', async () => {
    const b = backend();
    await b.register({ id: 'db', service: 'a-b', address: '127.0.0.1', port: 1 });
    await b.register({ id: 'b-db', service: 'a', address: '127.0.0.1', port: 2 });
    await eventually(b, 'a-b', ['db']);
    await eventually(b, 'a', ['b-db']);
    expect((await b.lookup('a-b')).map((i) => i.port)).toEqual([1]);
    expect((await b.lookup('a')).map((i) => i.port)).toEqual([2]);
  });

  test('finds services registered by other tools, with their Consul ID as id', async () => {
    await http(double, 'PUT', '/v1/agent/service/register', { ID: 'legacy-7', Name: 'legacy', Address: '127.0.0.9', Port: 7000 });
    await http(double, 'PUT', '/v1/agent/service/register', { ID: 'legacy-8', Name: 'legacy', Port: 7001 });
    const b = backend();
    await eventually(b, 'legacy', ['legacy-7', 'legacy-8']);
    expect((await b.lookup('legacy')).map((i) => [i.id, i.address, i.port])).toEqual([
      ['legacy-7', '127.0.0.9', 7000],
      ['legacy-8', '127.0.0.1', 7001], // no service address: the node's
    ]);
  });

  test('a watch waits in blocking queries (index + wait), not by polling', async () => {
    const b = backend();
    const ac = new AbortController();
    const it = b.watch('blocking-watch', { signal: ac.signal })[Symbol.asyncIterator]();
    try {
      expect((await it.next()).value).toEqual([]);
      const pending = it.next();
      await waitFor(
        () =>
          double.requests.some((r) => r.path === '/v1/health/service/blocking-watch' && /index=[1-9]\d*/.test(r.query) && /wait=/.test(r.query)) || undefined,
        5000,
        'a blocking query',
      );
      await b.register({ id: 'bw-1', service: 'blocking-watch', address: '127.0.0.1' });
      expect(((await pending).value as { id: string }[]).map((i) => i.id)).toEqual(['bw-1']);
    } finally {
      ac.abort();
    }
  });

  test('close() ends the watches of the backend', async () => {
    await expectCloseEndsWatches(backend());
  });

  test('a heartbeat after the agent forgot the service registers it again', async () => {
    const port = await freePort();
    let agent = await startConsulDouble({ port });
    const b = createConsulBackend(config({ consulAddress: agent.address }));
    try {
      await b.register({ id: 'r-1', service: 'amnesia', address: '127.0.0.1' });
      await agent.close();
      agent = await startConsulDouble({ port }); // a restarted agent with no state
      expect(await b.lookup('amnesia')).toEqual([]);
      await b.heartbeat('amnesia', 'r-1');
      await eventually(b, 'amnesia', ['r-1']);
      await expect(b.heartbeat('amnesia', 'someone-else')).rejects.toMatchObject({ code: 'not_registered' });
    } finally {
      await b.close();
      await agent.close();
    }
  });

  test('ACL token: accepted when right; refused as unreachable/unauthorized without echoing it', async () => {
    const secured = await startConsulDouble({ aclToken: 'acl-secret-1234' });
    try {
      const good = createConsulBackend(config({ consulAddress: secured.address, consulToken: 'acl-secret-1234' }));
      await good.check();
      await good.register({ id: 'a-1', service: 'acl', address: '127.0.0.1' });
      await eventually(good, 'acl', ['a-1']);
      await good.close();
      const bad = createConsulBackend(config({ consulAddress: secured.address, consulToken: 'wrong-secret-5678' }));
      const err = await checkError(bad);
      await bad.close();
      expectUnreachableWithout(err, ['wrong-secret-5678', 'acl-secret-1234']);
      expect(err?.code).toBe('unauthorized');
      expect(err?.exitCode).toBe(3);
    } finally {
      await secured.close();
    }
  });

  test('an agent that is not there: UnreachableError naming consul and the address', async () => {
    const port = await freePort();
    const b = createConsulBackend(config({ consulAddress: `127.0.0.1:${port}` }));
    const err = await checkError(b);
    await b.close();
    expect(err).toBeInstanceOf(UnreachableError);
    expect(err?.exitCode).toBe(3);
    expect(err?.message).toContain('consul');
    expect(err?.message).toContain(`127.0.0.1:${port}`);
  });
});

/** The agent's own view, over plain HTTP: what other Consul clients see. */
interface AgentView {
  address: string;
  token?: string;
  /** Agent calls made since the start, when the agent can tell (the double). */
  requests?: () => { method: string; path: string }[];
}

async function agentGet(agent: AgentView, path: string): Promise<unknown> {
  const res = await consulRequest(agent.address, 'GET', path, undefined, agent.token);
  if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status}`);
  return res.json();
}

/**
 * An unhealthy instance is withdrawn by failing its TTL check, not by deregistering it: other
 * clients (`?passing`) no longer find it, the agent still lists it, critical, with the reason;
 * heartbeats while withdrawn do not pass it; restore passes it again.
 */
function describeWithdrawal(name: string, agent: () => Promise<AgentView>): void {
  describe(`withdrawal marks the TTL check critical: ${name}`, () => {
    test('withdraw: critical and out of lookups, still an agent service; heartbeats do not pass it; restore: passing again', async () => {
      const view = await agent();
      const service = `withdraw-${process.pid}`;
      const id = 'w-1';
      const sid = `${service}:${id}`;
      const backend = createConsulBackend(config({ consulAddress: view.address, ttlMs: 30_000, ...(view.token ? { consulToken: view.token } : {}) }));
      const m = createDiscoveryManager({ backends: [backend], cacheTtlMs: 0 });
      const input = { id, service, address: '127.0.0.1', port: 4100 };
      const check = async () => ((await agentGet(view, '/v1/agent/checks')) as Record<string, { Status: string; Output: string }>)[`service:${sid}`];
      const passing = async () => (await agentGet(view, `/v1/health/service/${service}?passing`)) as unknown[];
      const passes = () => (view.requests?.() ?? []).filter((r) => decodeURIComponent(r.path) === `/v1/agent/check/pass/service:${sid}`).length;
      try {
        await m.register(input, { ttlMs: 30_000 });
        m.keepAlive(input, 20, { ttlMs: 30_000 });
        if (view.requests) await waitFor(() => passes() >= 2 || undefined, 10_000, 'the heartbeat loop to pass the check');
        await waitFor(async () => (await passing()).length === 1, 10_000, 'the instance in the catalog');

        await m.withdraw(service, id, 'unhealthy: HTTP 500');
        // The agent's own state changes at once; the catalog a little later.
        expect(await check()).toMatchObject({ Status: 'critical', Output: 'unhealthy: HTTP 500' });
        await waitFor(async () => (await passing()).length === 0, 10_000, 'the catalog to see it critical');
        expect(await m.lookup(service)).toEqual([]);
        const services = (await agentGet(view, '/v1/agent/services')) as Record<string, unknown>;
        expect(Object.keys(services)).toContain(sid);

        // Heartbeats while withdrawn (explicit, and the running loop's) leave it critical.
        const passesBefore = passes();
        await m.heartbeat(service, id);
        await new Promise((r) => setTimeout(r, 200)); // ten heartbeat intervals
        expect(passes()).toBe(passesBefore);
        expect(await check()).toMatchObject({ Status: 'critical' });
        expect(await passing()).toEqual([]);

        await m.restore(service, id);
        expect(await check()).toMatchObject({ Status: 'passing' });
        await waitFor(async () => ids(await m.lookup(service)).join() === id, 10_000, 'the instance back in lookups');
        if (view.requests) {
          const resumed = passes();
          await waitFor(() => passes() > resumed || undefined, 10_000, 'the heartbeat loop to resume');
        }
      } finally {
        await m.deregister(service, id).catch(() => undefined);
        await m.close();
      }
    });

    test('a backend asked to mark an unknown instance critical says it is not registered', async () => {
      const view = await agent();
      const backend = createConsulBackend(config({ consulAddress: view.address, ...(view.token ? { consulToken: view.token } : {}) }));
      try {
        await expect(backend.markCritical!(`withdraw-${process.pid}`, 'nobody', 'x')).rejects.toMatchObject({ code: 'not_registered' });
      } finally {
        await backend.close();
      }
    });
  });
}

let withdrawalDouble: ConsulDouble | undefined;
describeWithdrawal('double', async () => {
  withdrawalDouble ??= await startConsulDouble();
  const d = withdrawalDouble;
  return { address: d.address, requests: () => d.requests };
});
afterAll(async () => {
  await withdrawalDouble?.close();
});

// The double as it is by default: a catalog 100 ms behind the agent, reaping at Consul's pace.
let conformanceDouble: ConsulDouble | undefined;
describeBackendConformance('consul (double)', {
  make: async ({ ttlMs }) => {
    conformanceDouble ??= await startConsulDouble();
    return createConsulBackend(config({ consulAddress: conformanceDouble.address, ttlMs }));
  },
  cleanup: async () => {
    await conformanceDouble?.close();
  },
});

// Several agents: every backend talks to its own agent, and they meet in the catalog.
let clusterDouble: ConsulDouble | undefined;
let nextAgent = 0;
describeBackendConformance('consul (double, three agents)', {
  make: async ({ ttlMs }) => {
    clusterDouble ??= await startConsulDouble({ agents: 3 });
    const agent = clusterDouble.agents[nextAgent++ % clusterDouble.agents.length]!;
    return createConsulBackend(config({ consulAddress: agent.address, ttlMs }));
  },
  cleanup: async () => {
    await clusterDouble?.close();
  },
});

const realAgent = process.env.CONSUL_HTTP_ADDR;
if (realAgent) {
  describeBackendConformance(`consul (real agent at ${realAgent.replace(/\/\/[^/@]*@/, '//')})`, {
    make: async ({ ttlMs }) =>
      createConsulBackend(
        config({
          consulAddress: realAgent,
          ttlMs,
          ...(process.env.CONSUL_HTTP_TOKEN ? { consulToken: process.env.CONSUL_HTTP_TOKEN } : {}),
        }),
      ),
  });
  describeWithdrawal('real agent', async () => ({
    address: realAgent,
    ...(process.env.CONSUL_HTTP_TOKEN ? { token: process.env.CONSUL_HTTP_TOKEN } : {}),
  }));
}
