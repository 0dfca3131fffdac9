/**
 * What a real Consul cluster does that a naive client gets wrong, read from Consul's
 * documentation and agent source, modelled by the double (test/fixtures/consul-double.ts) and
 * answered by the backend (src/discovery/consul.ts, consul-rules.ts). Each backend test here
 * fails without the fix it names:
 *
 * - re-registering keeps a check's status: the backend passes after every register;
 * - one agent per host: exclusive claims are checked against the catalog, and heartbeats go to
 *   the agent that registered (another one answers 404 and gets a registration of its own);
 * - the catalog converges after a write (the double delays it; nothing here reads right after
 *   writing without polling);
 * - ACLs filter reads instead of refusing them: check() proves it can see what it needs;
 * - DeregisterCriticalServiceAfter is at least a minute and reaping is slow: the backend asks for
 *   at least a minute and relies on TTL status and its own re-registration;
 * - a blocking query's index is at least 1 and the watch is paced (a proxy answering index 0 at
 *   once must not make a busy loop);
 * - meta limits are checked before anything is sent;
 * - every call has a timeout; an older agent's 500 for an unknown check counts as the 404.
 */
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { createConsulBackend, PROBE_SERVICE, type ConsulTuning } from '../../src/discovery/consul.js';
import { createTokenBucket, deregisterAfterMs, metaProblems, nextBlockingIndex } from '../../src/discovery/consul-rules.js';
import type { DiscoveryBackend, InstanceInput } from '../../src/discovery/types.js';
import { StackError, UnreachableError } from '../../src/errors.js';
import type { DiscoveryConfig } from '../../src/profile/types.js';
import { createManualClock } from '../../src/util/clock.js';
import { consulRequest, parseGoDuration, startConsulDouble, type ConsulDouble, type ConsulDoubleOptions } from '../fixtures/consul-double.js';
import { freePort, waitFor } from '../helpers/net.js';
import { checkError, ids, testDiscoveryConfig } from './helpers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function double(opts: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  const d = await startConsulDouble(opts);
  cleanups.push(() => d.close());
  return d;
}

function backend(address: string, overrides: Partial<DiscoveryConfig> = {}, tuning: ConsulTuning = {}): DiscoveryBackend {
  const b = createConsulBackend(testDiscoveryConfig({ backends: ['consul'], consulAddress: address, ...overrides }), tuning);
  cleanups.push(() => b.close());
  return b;
}

const instance = (service: string, id: string, port = 4000, extra: Partial<InstanceInput> = {}): InstanceInput => ({
  id,
  service,
  address: '127.0.0.1',
  port,
  ...extra,
});

async function get<T>(address: string, path: string, token?: string): Promise<T> {
  const res = await consulRequest(address, 'GET', path, undefined, token);
  if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status} ${res.text}`);
  return res.json() as T;
}

const agentChecks = (address: string) => get<Record<string, { Status: string; Output: string }>>(address, '/v1/agent/checks');
const agentServices = (address: string) => get<Record<string, { Service: string }>>(address, '/v1/agent/services');

function eventually(b: DiscoveryBackend, service: string, want: string[]): Promise<unknown> {
  return waitFor(async () => ids(await b.lookup(service)).join() === want.join(), 10_000, `lookup of ${service} to be [${want.join()}]`);
}

/** Rejects with "no answer" when `p` has not settled within `ms`: a call that hangs fails the test instead of timing it out. */
function within<T>(p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/** A TCP forwarder whose target can be switched, standing in for a load balancer in front of several agents. */
async function switchableProxy(targetPort: number): Promise<{ address: string; switchTo(port: number): void }> {
  let target = targetPort;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    switchTo(p: number) {
      target = p;
      for (const s of sockets) s.destroy(); // kept-alive connections end, as a balancer's would
    },
  };
}

describe('the double models a cluster', () => {
  test('agent endpoints are agent-local: another agent neither lists a service nor knows its check (404); the catalog has it on its node', async () => {
    const d = await double({ agents: 2, syncDelayMs: 0 });
    const [one, two] = d.agents as [(typeof d.agents)[0], (typeof d.agents)[0]];
    await consulRequest(one.address, 'PUT', '/v1/agent/service/register', { ID: 'web-1', Name: 'web', Check: { TTL: '30s', Status: 'passing' } });
    expect(Object.keys(await agentServices(one.address))).toEqual(['web-1']);
    expect(await agentServices(two.address)).toEqual({});
    expect((await consulRequest(two.address, 'PUT', '/v1/agent/check/pass/service:web-1')).status).toBe(404);
    const entries = await get<{ Node: { Node: string }; Service: { ID: string } }[]>(two.address, '/v1/health/service/web');
    expect(entries.map((e) => [e.Node.Node, e.Service.ID])).toEqual([[one.node, 'web-1']]);
  });

  test('the catalog shows an agent write only after anti-entropy (syncDelayMs); the agent shows it at once', async () => {
    const d = await double({ syncDelayMs: 1000 });
    await consulRequest(d.address, 'PUT', '/v1/agent/service/register', { ID: 'late-1', Name: 'late', Check: { TTL: '30s', Status: 'passing' } });
    expect(Object.keys(await agentServices(d.address))).toEqual(['late-1']);
    expect(await get(d.address, '/v1/health/service/late')).toEqual([]);
    await waitFor(async () => (await get<unknown[]>(d.address, '/v1/health/service/late')).length === 1, 10_000, 'the catalog to converge');
  });

  test('re-registering keeps a critical check critical (and its output) until the next pass', async () => {
    const d = await double({ syncDelayMs: 0 });
    const register = () => consulRequest(d.address, 'PUT', '/v1/agent/service/register', { ID: 'r-1', Name: 'r', Check: { TTL: '30s', Status: 'passing' } });
    await register();
    await consulRequest(d.address, 'PUT', '/v1/agent/check/fail/service:r-1?note=broken');
    await register();
    expect((await agentChecks(d.address))['service:r-1']).toMatchObject({ Status: 'critical', Output: 'broken' });
    await consulRequest(d.address, 'PUT', '/v1/agent/check/pass/service:r-1');
    expect((await agentChecks(d.address))['service:r-1']).toMatchObject({ Status: 'passing' });
  });

  test('a critical service is not reaped before a minute, however short its DeregisterCriticalServiceAfter (unless fastReap)', async () => {
    const d = await double({ syncDelayMs: 0, reapIntervalMs: 20 });
    await consulRequest(d.address, 'PUT', '/v1/agent/service/register', {
      ID: 'keep-1',
      Name: 'keep',
      Check: { TTL: '50ms', Status: 'passing', DeregisterCriticalServiceAfter: '100ms' },
    });
    await waitFor(async () => (await agentChecks(d.address))['service:keep-1']?.Status === 'critical', 10_000, 'the TTL to expire');
    const runs = d.agents[0]!.reaperRuns;
    await waitFor(() => d.agents[0]!.reaperRuns >= runs + 15, 10_000, 'fifteen reaper runs (300 ms, three times the 100 ms asked for)');
    expect(Object.keys(await agentServices(d.address))).toContain('keep-1');
  });

  test('meta is validated as Consul does: 64 pairs, keys of [A-Za-z0-9_-] up to 128, no consul- prefix, values up to 512 bytes', async () => {
    const d = await double({ syncDelayMs: 0 });
    const put = (meta: Record<string, string>) => consulRequest(d.address, 'PUT', '/v1/agent/service/register', { ID: 'm-1', Name: 'm', Meta: meta });
    const pairs = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
    expect((await put({ ...pairs(63), [`k${'x'.repeat(127)}`]: 'é'.repeat(256) })).status).toBe(200);
    expect((await put(pairs(65))).status).toBe(400);
    expect((await put({ 'a.b': 'x' })).status).toBe(400);
    expect((await put({ 'consul-x': 'x' })).status).toBe(400);
    expect((await put({ [`k${'x'.repeat(128)}`]: 'x' })).status).toBe(400);
    expect((await put({ v: 'é'.repeat(257) })).status).toBe(400);
  });

  test('ACLs: a token without node:read sees no health entries (filtered, with X-Consul-Results-Filtered-By-ACLs), and is refused writes it lacks', async () => {
    const d = await double({ syncDelayMs: 0, aclToken: 'root', aclTokens: { reader: { service: { '': 'read' } } } });
    await consulRequest(d.address, 'PUT', '/v1/agent/service/register', { ID: 'x-1', Name: 'x' }, 'root');
    const filtered = await consulRequest(d.address, 'GET', '/v1/health/service/x', undefined, 'reader');
    expect(filtered.status).toBe(200);
    expect(filtered.json()).toEqual([]);
    expect(filtered.headers.get('x-consul-results-filtered-by-acls')).toBe('true');
    expect((await consulRequest(d.address, 'GET', '/v1/catalog/nodes', undefined, 'reader')).json()).toEqual([]);
    expect((await consulRequest(d.address, 'PUT', '/v1/agent/service/register', { ID: 'y-1', Name: 'y' }, 'reader')).status).toBe(403);
    expect((await consulRequest(d.address, 'GET', '/v1/agent/self', undefined, 'reader')).status).toBe(403);
    expect(((await consulRequest(d.address, 'GET', '/v1/health/service/x', undefined, 'root')).json() as unknown[]).length).toBe(1);
  });

  test('zeroIndex: a blocking read answers at once with X-Consul-Index 0, as a misbehaving proxy would', async () => {
    const d = await double({ zeroIndex: true });
    const res = await consulRequest(d.address, 'GET', '/v1/health/service/any?index=5&wait=30s');
    expect(res.status).toBe(200);
    expect(res.index).toBe('0');
  });
});

describe('re-registering keeps the check status: the backend passes after every register', () => {
  test('registering again an instance whose check is critical (withdrawn, or its TTL expired) makes it passing at once', async () => {
    const d = await double();
    const b = backend(d.address, { ttlMs: 1500 });
    await b.register(instance('again', 'a-1'));
    await b.markCritical!('again', 'a-1', 'unhealthy');
    expect((await agentChecks(d.address))['service:again:a-1']?.Status).toBe('critical');
    await b.register(instance('again', 'a-1'));
    expect((await agentChecks(d.address))['service:again:a-1']?.Status).toBe('passing');
    await eventually(b, 'again', ['a-1']);

    // TTL expiry: critical after one TTL without heartbeats, still held by the agent (no reaping yet).
    await waitFor(async () => (await agentChecks(d.address))['service:again:a-1']?.Status === 'critical', 10_000, 'the TTL to expire');
    await eventually(b, 'again', []);
    await b.register(instance('again', 'a-1'));
    expect((await agentChecks(d.address))['service:again:a-1']?.Status).toBe('passing');
    await eventually(b, 'again', ['a-1']);
  });

  test('a heartbeat after the TTL expired passes the check the agent still holds (no reaping assumed)', async () => {
    const d = await double();
    const b = backend(d.address, { ttlMs: 1500 });
    await b.register(instance('late-beat', 'l-1'));
    await waitFor(async () => (await agentChecks(d.address))['service:late-beat:l-1']?.Status === 'critical', 10_000, 'the TTL to expire');
    await b.heartbeat('late-beat', 'l-1');
    expect((await agentChecks(d.address))['service:late-beat:l-1']?.Status).toBe('passing');
    await eventually(b, 'late-beat', ['l-1']);
  });

  test('DeregisterCriticalServiceAfter is never below Consul’s one-minute minimum', async () => {
    expect(deregisterAfterMs(2000)).toBe(60_000);
    expect(deregisterAfterMs(90_000)).toBe(90_000);
    const d = await double();
    const b = backend(d.address, { ttlMs: 2000 });
    await b.register(instance('reap', 'r-1'));
    const put = d.requests.find((r) => r.method === 'PUT' && r.path === '/v1/agent/service/register' && r.body?.includes('"reap:r-1"'));
    const check = (JSON.parse(put!.body!) as { Check: { TTL: string; DeregisterCriticalServiceAfter: string } }).Check;
    expect(parseGoDuration(check.TTL)).toBe(2000);
    expect(parseGoDuration(check.DeregisterCriticalServiceAfter)).toBeGreaterThanOrEqual(60_000);
  });
});

describe('one agent per host', () => {
  test('an exclusive claim held through another agent is a collision (checked against the catalog), and free again once the holder is critical', async () => {
    const d = await double({ agents: 2 });
    const a = backend(d.agents[0]!.address);
    const b = backend(d.agents[1]!.address);
    await a.register(instance('claimed', 'c-1', 4001), { exclusive: true });
    await eventually(b, 'claimed', ['c-1']); // the catalog has converged
    const err = await b.register(instance('claimed', 'c-1', 4002), { exclusive: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StackError);
    expect((err as StackError).code).toBe('collision');
    expect(Object.keys(await agentServices(d.agents[1]!.address))).not.toContain('claimed:c-1');

    await a.markCritical!('claimed', 'c-1', 'going away');
    await waitFor(
      () =>
        b.register(instance('claimed', 'c-1', 4002), { exclusive: true }).then(
          () => true,
          (e: unknown) => {
            if ((e as StackError).code === 'collision') return false;
            throw e;
          },
        ),
      10_000,
      'the claim to be free once the holder is critical in the catalog',
    );
    await eventually(b, 'claimed', ['c-1']);
    expect((await b.lookup('claimed')).map((i) => i.port)).toEqual([4002]);
  });

  test('the local agent answers for its own node: a claim right after a local deregistration wins though the catalog still lags', async () => {
    const d = await double({ syncDelayMs: 1500 });
    const b = backend(d.address);
    await b.register(instance('mine', 'm-1'), { exclusive: true });
    await eventually(b, 'mine', ['m-1']);
    await b.deregister('mine', 'm-1');
    expect((await get<unknown[]>(d.address, '/v1/health/service/mine')).length).toBe(1); // the catalog still has it
    await expect(b.register(instance('mine', 'm-1'), { exclusive: true })).resolves.toMatchObject({ id: 'm-1' });
  });

  test('a heartbeat that lands on another agent gets a 404 and registers there; the first copy goes critical after one TTL', async () => {
    const d = await double({ agents: 2 });
    const [one, two] = d.agents as [(typeof d.agents)[0], (typeof d.agents)[0]];
    const balancer = await switchableProxy(one.port);
    const b = backend(balancer.address, { ttlMs: 1000 });
    await b.register(instance('roaming', 'h-1'));
    await eventually(b, 'roaming', ['h-1']);

    balancer.switchTo(two.port);
    await b.heartbeat('roaming', 'h-1');
    const seen = two.requests.map((r) => `${r.method} ${decodeURIComponent(r.path)}`);
    expect(seen).toEqual(['PUT /v1/agent/check/pass/service:roaming:h-1', 'PUT /v1/agent/service/register', 'PUT /v1/agent/check/pass/service:roaming:h-1']);
    expect(Object.keys(await agentServices(two.address))).toEqual(['roaming:h-1']);
    expect(Object.keys(await agentServices(one.address))).toEqual(['roaming:h-1']); // nobody passes this one any more

    type Entry = { Node: { Node: string }; Checks: { Status: string }[] };
    const byNode = async () => {
      const entries = await get<Entry[]>(two.address, '/v1/health/service/roaming');
      return Object.fromEntries(entries.map((e) => [e.Node.Node, e.Checks.every((c) => c.Status === 'passing') ? 'passing' : 'critical']));
    };
    await waitFor(
      async () => JSON.stringify(await byNode()) === JSON.stringify({ [one.node]: 'critical', [two.node]: 'passing' }),
      10_000,
      'the copy on the first agent to expire',
    );
    expect(ids(await b.lookup('roaming'))).toEqual(['h-1']);
  });
});

describe('ACLs filter reads: check() proves the token sees what the backend needs', () => {
  const tokens = {
    enough: { service: { '': 'write' as const }, node: { '': 'read' as const } },
    'no-node-read': { service: { '': 'write' as const } },
    'other-node-only': { service: { '': 'write' as const }, node: { 'agent-2': 'read' as const } },
    'no-probe-write': { service: { pds: 'write' as const }, node: { '': 'read' as const } },
  };

  test('a token that can read nodes and services passes, and leaves no probe behind', async () => {
    const d = await double({ agents: 2, aclTokens: tokens });
    const b = backend(d.address, { consulToken: 'enough' });
    await expect(b.check()).resolves.toBeUndefined();
    expect(d.requests.some((r) => r.method === 'PUT' && r.path === '/v1/agent/service/register' && r.body?.includes(PROBE_SERVICE))).toBe(true);
    await waitFor(
      async () => Object.keys(await get(d.address, '/v1/catalog/services', 'enough')).every((s) => s !== PROBE_SERVICE),
      10_000,
      'the probe to be gone',
    );
    expect(Object.keys(await get(d.address, '/v1/agent/services', 'enough'))).toEqual([]);
  });

  test('a token without node:read: lookups would silently be empty; check() says so', async () => {
    const d = await double({ agents: 2, aclTokens: tokens, aclToken: 'root' });
    const b = backend(d.address, { consulToken: 'no-node-read' });
    // What check() prevents: everything seems to work, and nothing is ever found.
    await b.register(instance('blind', 'b-1'));
    await waitFor(async () => (await get<unknown[]>(d.address, '/v1/health/service/blind', 'root')).length === 1, 10_000, 'the catalog to have it');
    expect(await b.lookup('blind')).toEqual([]);

    const err = await checkError(b);
    expect(err).toBeInstanceOf(UnreachableError);
    expect(err?.code).toBe('unauthorized');
    expect(err?.message).toContain('node:read');
    expect(err?.message).not.toContain('no-node-read');
  });

  test('a token that cannot read the node its agent registers on: the probe never shows up, check() fails naming the rights', async () => {
    const d = await double({ agents: 2, aclTokens: tokens });
    const b = backend(d.agents[0]!.address, { consulToken: 'other-node-only' }, { probeWaitMs: 500 });
    const err = await checkError(b);
    expect(err?.code).toBe('unauthorized');
    expect(err?.message).toMatch(/probe/);
    expect(err?.message).toContain('service:read and node:read');
    expect(err?.message).toContain('filtered by ACLs');
    expect(await get(d.address, '/v1/agent/services', 'other-node-only')).toEqual({}); // the probe was removed
  });

  test('no token at all under default deny: the anonymous token sees nothing, check() fails', async () => {
    const d = await double({ aclTokens: tokens });
    const err = await checkError(backend(d.address));
    expect(err?.code).toBe('unauthorized');
  });

  test('a token that may not write the probe’s name: check() vouches for what it can (nodes are visible) and passes', async () => {
    const d = await double({ aclTokens: tokens });
    await expect(backend(d.address, { consulToken: 'no-probe-write' }).check()).resolves.toBeUndefined();
  });
});

describe('blocking queries: index at least 1, reset when it goes backwards, and a paced watch', () => {
  test('nextBlockingIndex follows Consul’s implementation notes', () => {
    expect(nextBlockingIndex(0n, '0')).toBe(1n); // never 0: 0 does not block
    expect(nextBlockingIndex(0n, undefined)).toBe(1n);
    expect(nextBlockingIndex(0n, 'garbage')).toBe(1n);
    expect(nextBlockingIndex(0n, '42')).toBe(42n);
    expect(nextBlockingIndex(42n, '43')).toBe(43n);
    expect(nextBlockingIndex(42n, '42')).toBe(42n);
    expect(nextBlockingIndex(42n, '7')).toBe(1n); // went backwards: start over
    expect(nextBlockingIndex(42n, '0')).toBe(1n);
  });

  test('the token bucket lets a burst through, then paces', async () => {
    const clock = createManualClock();
    const take = createTokenBucket(2, 100, clock);
    await take();
    await take();
    let third = false;
    const pending = take().then(() => {
      third = true;
    });
    await clock.advance(50);
    expect(third).toBe(false);
    await clock.advance(50);
    await pending;
    expect(third).toBe(true);
  });

  test('against a proxy that answers index 0 at once, the watch sends a bounded number of requests (not hundreds a second)', async () => {
    const d = await double({ zeroIndex: true });
    const b = backend(d.address);
    const ac = new AbortController();
    cleanups.push(async () => ac.abort());
    const it = b.watch('churn', { signal: ac.signal })[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual([]);
    void it.next(); // never answered: the list does not change
    const sent = () => d.requests.filter((r) => r.path === '/v1/health/service/churn');
    const before = sent().length;
    await new Promise((r) => setTimeout(r, 1000));
    const during = sent().length - before;
    expect(during).toBeGreaterThan(0); // it keeps asking…
    expect(during).toBeLessThanOrEqual(10); // …paced: a burst of 3, then one per 250 ms
    expect(
      sent()
        .slice(1)
        .every((r) => /[?&]index=[1-9]\d*/.test(r.query)),
    ).toBe(true); // and never with index 0 after the first
    ac.abort();
  });
});

describe('meta limits are checked before registering', () => {
  test('all problems at once, nothing sent', async () => {
    const d = await double();
    const b = backend(d.address);
    const meta: Record<string, string> = Object.fromEntries(Array.from({ length: 62 }, (_, i) => [`k${i}`, 'v']));
    meta['bad.key'] = 'x';
    meta['consul-mine'] = 'x';
    meta.long = 'é'.repeat(300);
    meta['stack-id'] = 'x';
    const err = await b.register(instance('metas', 'x-1', 4000, { url: 'http://127.0.0.1:4000', meta })).then(
      () => undefined,
      (e: unknown) => e as StackError,
    );
    expect(err?.code).toBe('invalid_input');
    expect(err?.exitCode).toBe(2);
    for (const part of ['metas/x-1', '69 meta pairs', "'bad.key'", "'consul-mine'", "'long' is 600 bytes", "'stack-id' is reserved"])
      expect(err?.message).toContain(part);
    expect(d.requests.filter((r) => r.method === 'PUT')).toEqual([]);
  });

  test('right at the limits is accepted', () => {
    const user = Object.fromEntries(Array.from({ length: 61 }, (_, i) => [`k${i}`, 'v']));
    user[`k${'x'.repeat(127)}`] = 'é'.repeat(256);
    delete user.k0;
    expect(metaProblems(user, ['stack-id', 'stack-registered-at', 'stack-url'])).toEqual([]);
  });
});

describe('every call has a timeout; an older agent’s 500 for an unknown check is a 404', () => {
  test('register, heartbeat, lookup and check against an agent that never answers fail as unreachable instead of hanging', async () => {
    const d = await double({
      stall: (_method, path) => path.startsWith('/v1/agent/check/') || path.startsWith('/v1/health/') || path.startsWith('/v1/status/'),
    });
    const b = backend(d.address, {}, { callTimeoutMs: 300 });
    const calls: (() => Promise<unknown>)[] = [
      () => b.register(instance('stuck', 's-1')),
      () => b.heartbeat('stuck', 's-1'),
      () => b.lookup('stuck'),
      () => b.check(),
    ];
    for (const call of calls) {
      const err = await within(call()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UnreachableError);
      expect((err as Error).message).toMatch(/timed out/);
    }
  });

  test('a restarted old agent answers 500 "does not have associated TTL": the heartbeat registers again, and so does a withdrawal', async () => {
    const port = await freePort();
    let agent = await startConsulDouble({ port, legacyUnknownCheck500: true });
    const b = backend(agent.address);
    try {
      await b.register(instance('oldagent', 'o-1'));
      await b.register(instance('oldagent', 'o-2'));
      await agent.close();
      agent = await startConsulDouble({ port, legacyUnknownCheck500: true });
      expect((await consulRequest(agent.address, 'PUT', '/v1/agent/check/pass/service:oldagent:o-1')).status).toBe(500);
      await b.heartbeat('oldagent', 'o-1');
      await b.markCritical!('oldagent', 'o-2', 'unhealthy');
      const checks = await agentChecks(agent.address);
      expect(checks['service:oldagent:o-1']?.Status).toBe('passing');
      expect(checks['service:oldagent:o-2']).toMatchObject({ Status: 'critical', Output: 'unhealthy' });
      await eventually(b, 'oldagent', ['o-1']);
    } finally {
      await agent.close();
    }
  });
});
