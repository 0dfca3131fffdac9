/**
 * Leader election on the Consul double (test/fixtures/consul-double.ts, its sessions and KV in
 * consul-double-kv.ts): the shared suite, on a double that invalidates sessions as Consul's
 * servers do (2×TTL after the last renew) and again on one that invalidates at exactly the TTL
 * (the earliest the documented contract allows: a leader must have stepped down by then), then
 * Consul's own cases. The double's session_ttl_min is lowered for the suite's 2 s ttl, as a
 * server's `session_ttl_min` would be; the default (10 s) is checked to be reported clearly.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createElection, StaleTermError, type Election } from '../../src/discovery/election.js';
import { consulLockDelayMs, consulSessionTtlMs } from '../../src/discovery/election-consul.js';
import { consulRequest, startConsulDouble, type ConsulDouble, type ConsulDoubleOptions } from '../fixtures/consul-double.js';
import { waitFor } from '../helpers/net.js';
import { describeElection, TTL_MS } from './election-suite.js';
import { testDiscoveryConfig } from './helpers.js';

const FAST: ConsulDoubleOptions = { sessionTtlMinMs: 500, syncDelayMs: 0 };

function config(address: string, overrides = {}) {
  return testDiscoveryConfig({ backends: ['consul'], consulAddress: address, ttlMs: TTL_MS, ...overrides });
}

const candidate = (id: string) => ({ id, host: `host-${id}`, address: `10.0.0.${id.length}` });

function suiteOn(name: string, opts: ConsulDoubleOptions) {
  let server: ConsulDouble;
  beforeAll(async () => {
    server = await startConsulDouble(opts);
  });
  afterAll(async () => {
    await server?.close();
  });
  describeElection(name, () => ({
    make: (stack, id, o) => createElection(config(o?.viaPort ? `127.0.0.1:${o.viaPort}` : server.address), { stack, candidate: candidate(id) }),
    port: () => server.port,
    stop: () => server.stop(),
    start: () => server.start(),
  }));
}

describe('as Consul servers time sessions (2×TTL)', () => {
  suiteOn('consul', FAST);
});

describe('sessions invalidated at exactly their TTL (the contract’s lower bound)', () => {
  suiteOn('consul-ttl1x', { ...FAST, sessionTtlMultiplier: 1 });
});

describe('consul election specifics', () => {
  let server: ConsulDouble;
  const opened: Election[] = [];
  const make = async (stack: string, id: string, overrides = {}, address?: string) => {
    const e = await createElection(config(address ?? server.address, overrides), { stack, candidate: candidate(id) });
    opened.push(e);
    return e;
  };
  beforeAll(async () => {
    server = await startConsulDouble({ ...FAST, agents: 2, aclToken: 'root', aclTokens: { reader: { key: { '': 'read' }, session: { '': 'write' } } } });
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((e) => e.close().catch(() => undefined)));
  });
  afterAll(async () => {
    await server?.close();
  });
  const root = { consulToken: 'root' };
  const kv = async (key: string) => {
    const res = await consulRequest(server.address, 'GET', `/v1/kv/${key}`, undefined, 'root');
    return res.status === 404 ? undefined : (res.json() as { Session?: string; LockIndex: number; ModifyIndex: number; Value: string | null }[])[0];
  };

  test("the leader key is atproto-stacks/stacks/<stack>/leader, locked by a session of TTL ttl/2 with no checks; the term is the lock's ModifyIndex", async () => {
    const a = await make('layout', 'a', root);
    const { term } = await a.campaign();
    const entry = await kv('atproto-stacks/stacks/layout/leader');
    expect(entry?.ModifyIndex).toBe(term);
    expect(entry?.LockIndex).toBe(1);
    expect(JSON.parse(Buffer.from(entry!.Value!, 'base64').toString())).toEqual(candidate('a'));
    const info = (await consulRequest(server.address, 'GET', `/v1/session/info/${entry!.Session}`, undefined, 'root')).json() as {
      TTL: string;
      Behavior: string;
      LockDelay: number;
      NodeChecks: unknown;
    }[];
    expect(info[0]).toMatchObject({
      TTL: `${consulSessionTtlMs(TTL_MS)}ms`,
      Behavior: 'release',
      LockDelay: consulLockDelayMs(TTL_MS) * 1e6,
      NodeChecks: [],
    });
    await a.fencedWrite('x', 'y', term);
    const stored = await kv('atproto-stacks/stacks/layout/fenced/x');
    expect(JSON.parse(Buffer.from(stored!.Value!, 'base64').toString())).toMatchObject({ value: 'y', term, writer: 'a' });
  });

  test('terms only grow across hand-overs, while LockIndex counts the locks of the key', async () => {
    const [a, b] = await Promise.all([make('grow', 'a', root), make('grow', 'b', root)]);
    const terms: number[] = [];
    for (let i = 0; i < 4; i++) {
      const e = i % 2 === 0 ? a : b;
      terms.push((await e.campaign()).term);
      await e.resign();
    }
    expect(terms).toEqual([...terms].sort((x, y) => x - y));
    expect(new Set(terms).size).toBe(4);
    expect((await kv('atproto-stacks/stacks/grow/leader'))?.LockIndex).toBe(4);
  });

  test('a session destroyed from outside: the leader loses its term, and the next candidate waits out the lock-delay', async () => {
    const [a, b] = await Promise.all([make('destroyed', 'a', root), make('destroyed', 'b', root)]);
    const t1 = (await a.campaign()).term;
    const lost: string[] = [];
    a.onLost((l) => lost.push(l.reason));
    let bWon: number | undefined;
    void b.campaign().then((w) => (bWon = w.term));
    const session = (await kv('atproto-stacks/stacks/destroyed/leader'))!.Session!;
    await consulRequest(server.address, 'PUT', `/v1/session/destroy/${session}`, undefined, 'root');
    await waitFor(() => lost.length > 0, 10_000, 'a to lose its term');
    expect(['expired', 'taken']).toContain(lost[0]);
    // Released by the invalidation, the key is under lock-delay for a moment (the double's own
    // tests show the refusal); b keeps trying and leads once it has passed.
    await waitFor(() => bWon, 10_000, 'b to lead');
    expect(bWon!).toBeGreaterThan(t1);
    expect(a.held()).toBeNull();
  });

  test('a write under a term whose leader key was changed behind its back is refused by check-index', async () => {
    const a = await make('tampered', 'a', root);
    const { term } = await a.campaign();
    const lost: string[] = [];
    a.onLost((l) => lost.push(l.reason));
    // A plain PUT keeps the Session but writes the key: its ModifyIndex is no longer the term.
    await consulRequest(server.address, 'PUT', '/v1/kv/atproto-stacks/stacks/tampered/leader', { id: 'intruder' }, 'root');
    await waitFor(() => lost.length > 0, 10_000, 'a to see its term end');
    await expect(a.fencedWrite('k', 'v', term)).rejects.toBeInstanceOf(StaleTermError);
    expect(await a.fencedRead('k')).toBeNull();
  });

  test("a candidate on another agent elects through the same servers' KV; a token without key:write cannot campaign (a clear error)", async () => {
    const [a, b] = await Promise.all([make('agents', 'a', root), make('agents', 'b', root, server.agents[1]!.address)]);
    const { term } = await a.campaign();
    expect((await b.leader())?.term).toBe(term);
    await b.guard(term);
    const reader = await make('agents', 'r', { consulToken: 'reader' });
    expect((await reader.leader())?.leader.id).toBe('a');
    const err = await reader.campaign().catch((e: unknown) => e);
    expect(String(err)).toMatch(/refused our ACL token/);
    expect((err as { code?: string }).code).toBe('unauthorized');
  });

  test("a stack ttl whose session TTL is below the servers' session_ttl_min is refused, naming the fix", async () => {
    const strict = await startConsulDouble({ syncDelayMs: 0 }); // Consul's default session_ttl_min, 10 s
    try {
      const e = await createElection(config(strict.address), { stack: 'strict', candidate: candidate('a') });
      opened.push(e);
      const err = await e.campaign().catch((x: unknown) => x);
      expect(String(err)).toMatch(/refused a session TTL of 1000 ms.*session_ttl_min/);
      expect((err as { exitCode?: number }).exitCode).toBe(2);
      const ok = await createElection(config(strict.address, { ttlMs: 20_000 }), { stack: 'strict20', candidate: candidate('a') });
      opened.push(ok);
      expect((await ok.campaign()).term).toBeGreaterThan(0);
    } finally {
      await Promise.all(opened.splice(0).map((x) => x.close().catch(() => undefined)));
      await strict.close();
    }
  });
});
