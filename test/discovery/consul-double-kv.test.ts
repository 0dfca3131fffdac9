/**
 * The Consul double's sessions, KV store and transactions (test/fixtures/consul-double-kv.ts)
 * behave as Consul documents them and as its state store does: what the Consul election
 * (src/discovery/election-consul.ts) relies on, checked through the plain HTTP API.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { consulRequest, startConsulDouble, type ConsulDouble } from '../fixtures/consul-double.js';

let server: ConsulDouble;
beforeAll(async () => {
  server = await startConsulDouble({ syncDelayMs: 0, sessionTtlMinMs: 500 });
});
afterAll(async () => {
  await server?.close();
});

interface Entry {
  Key: string;
  Value: string | null;
  Session?: string;
  LockIndex: number;
  CreateIndex: number;
  ModifyIndex: number;
}

const put = (path: string, body?: unknown) => consulRequest(server.address, 'PUT', path, body);
const get = (path: string) => consulRequest(server.address, 'GET', path);
const entry = async (key: string): Promise<Entry | undefined> => {
  const res = await get(`/v1/kv/${key}`);
  return res.status === 404 ? undefined : (res.json() as Entry[])[0];
};
const session = async (body: Record<string, unknown> = {}) => {
  const res = await put('/v1/session/create', body);
  expect(res.status, res.text).toBe(200);
  return (res.json() as { ID: string }).ID;
};
/** PUT with a raw (non-JSON) body. */
const putRaw = async (path: string, body: string) => {
  const res = await fetch(`http://${server.address}${path}`, { method: 'PUT', body });
  return { status: res.status, text: await res.text() };
};
const txn = async (ops: unknown[]) => {
  const res = await put('/v1/txn', ops);
  return { status: res.status, body: res.json() as { Results: { KV: Entry }[] | null; Errors: { OpIndex: number; What: string }[] | null } };
};
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('sessions', () => {
  test("create: defaults as documented (release, 15s lock-delay, the agent's node, serfHealth); TTL and behaviour are validated", async () => {
    const id = await session({ Name: 'plain' });
    const [info] = (await get(`/v1/session/info/${id}`)).json() as Record<string, unknown>[];
    expect(info).toMatchObject({ ID: id, Name: 'plain', Node: 'agent-1', Behavior: 'release', LockDelay: 15e9, TTL: '', NodeChecks: ['serfHealth'] });
    // A number below 1000 counts seconds (FixupLockDelay); an empty Checks list drops serfHealth.
    const other = await session({ LockDelay: 5, Checks: [], TTL: '2s', Behavior: 'delete' });
    const [o] = (await get(`/v1/session/info/${other}`)).json() as Record<string, unknown>[];
    expect(o).toMatchObject({ LockDelay: 5e9, NodeChecks: [], TTL: '2s', Behavior: 'delete' });
    const short = await put('/v1/session/create', { TTL: '100ms' });
    expect(short.status).toBe(500);
    expect(short.text).toMatch(/Invalid Session TTL '100000000', must be between \[500ms=24h0m0s\]/);
    expect((await put('/v1/session/create', { Behavior: 'keep' })).text).toMatch(/Invalid Behavior setting 'keep'/);
    expect((await put('/v1/session/create', { Node: 'nowhere' })).text).toMatch(/Missing node registration/);
    expect((await put('/v1/session/create', { NodeChecks: ['no-such-check'] })).text).toMatch(/Missing check 'no-such-check' registration/);
  });

  test('a session bound to a service check is invalidated when that check turns critical', async () => {
    await put('/v1/agent/service/register', { Name: 'web', ID: 'web-1', Check: { TTL: '30s', Status: 'passing' } });
    const id = await session({ ServiceChecks: [{ ID: 'service:web-1' }] });
    expect(((await get(`/v1/session/info/${id}`)).json() as unknown[]).length).toBe(1);
    await put('/v1/agent/check/fail/service:web-1');
    expect((await get(`/v1/session/info/${id}`)).json()).toEqual([]);
    expect((await put('/v1/session/create', { ServiceChecks: [{ ID: 'service:web-1' }] })).text).toMatch(/Check 'service:web-1' is in critical state/);
    await put('/v1/agent/service/deregister/web-1');
  });

  test('renew answers the session, or 404 once it is gone; destroy is idempotent; list and node list what lives', async () => {
    const id = await session({ TTL: '10s' });
    const renewed = await put(`/v1/session/renew/${id}`);
    expect(renewed.status).toBe(200);
    expect((renewed.json() as { ID: string }[])[0]!.ID).toBe(id);
    expect(((await get('/v1/session/node/agent-1')).json() as { ID: string }[]).map((s) => s.ID)).toContain(id);
    expect((await put(`/v1/session/destroy/${id}`)).text).toBe('true');
    expect((await put(`/v1/session/destroy/${id}`)).text).toBe('true');
    const gone = await put(`/v1/session/renew/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.text).toBe(`Session id '${id}' not found`);
    expect((await get(`/v1/session/info/${id}`)).json()).toEqual([]);
    expect(((await get('/v1/session/list')).json() as { ID: string }[]).map((s) => s.ID)).not.toContain(id);
  });
});

describe('KV', () => {
  test('acquire and release: LockIndex counts acquisitions, ModifyIndex every change; another session cannot take a held lock', async () => {
    const [s1, s2] = [await session(), await session()];
    expect((await putRaw(`/v1/kv/lk/a?acquire=${s1}`, 'one')).text).toBe('true');
    const first = (await entry('lk/a'))!;
    expect(first).toMatchObject({ Session: s1, LockIndex: 1, Value: b64('one') });
    expect(first.CreateIndex).toBe(first.ModifyIndex);
    // The holder acquiring again updates the value, not LockIndex; the same value changes nothing.
    expect((await putRaw(`/v1/kv/lk/a?acquire=${s1}`, 'two')).text).toBe('true');
    const second = (await entry('lk/a'))!;
    expect(second.LockIndex).toBe(1);
    expect(second.ModifyIndex).toBeGreaterThan(first.ModifyIndex);
    await putRaw(`/v1/kv/lk/a?acquire=${s1}`, 'two');
    expect((await entry('lk/a'))!.ModifyIndex).toBe(second.ModifyIndex);
    expect((await putRaw(`/v1/kv/lk/a?acquire=${s2}`, 'x')).text).toBe('false');
    expect((await putRaw(`/v1/kv/lk/a?release=${s2}`, 'x')).text).toBe('false');
    expect((await putRaw(`/v1/kv/lk/a?release=${s1}`, 'two')).text).toBe('true');
    const released = (await entry('lk/a'))!;
    expect(released.Session).toBeUndefined();
    expect(released.LockIndex).toBe(1);
    expect(released.CreateIndex).toBe(first.CreateIndex);
    expect((await putRaw(`/v1/kv/lk/a?acquire=${s2}`, 'x')).text).toBe('true');
    expect((await entry('lk/a'))!.LockIndex).toBe(2);
    // A plain PUT keeps the lock's Session (and stores LockIndex 0, as Consul's kvsSetTxn does).
    await putRaw('/v1/kv/lk/a', 'plain');
    expect(await entry('lk/a')).toMatchObject({ Session: s2, LockIndex: 0, Value: b64('plain') });
    expect((await putRaw('/v1/kv/lk/a?acquire=nope', '')).status).toBe(500);
    expect((await putRaw(`/v1/kv/lk/a?acquire=${s1}&release=${s1}`, '')).status).toBe(400);
  });

  test('cas and delete: cas=0 only creates; a cas or delete-cas with a stale index is refused', async () => {
    expect((await putRaw('/v1/kv/cas/k?cas=0', 'v1')).text).toBe('true');
    expect((await putRaw('/v1/kv/cas/k?cas=0', 'v2')).text).toBe('false');
    const { ModifyIndex } = (await entry('cas/k'))!;
    expect((await putRaw(`/v1/kv/cas/k?cas=${ModifyIndex}`, 'v2')).text).toBe('true');
    expect((await putRaw(`/v1/kv/cas/k?cas=${ModifyIndex}`, 'v3')).text).toBe('false');
    expect((await consulRequest(server.address, 'DELETE', `/v1/kv/cas/k?cas=${ModifyIndex}`)).text).toBe('false');
    expect((await consulRequest(server.address, 'DELETE', '/v1/kv/cas/k')).text).toBe('true');
    const missing = await get('/v1/kv/cas/k');
    expect(missing.status).toBe(404);
    expect(Number(missing.index)).toBeGreaterThan(ModifyIndex);
  });

  test("invalidation releases a session's keys with its lock-delay; a key released first has none; Behavior delete deletes", async () => {
    const holder = await session({ LockDelay: '60s' });
    await putRaw(`/v1/kv/ld/held?acquire=${holder}`, 'x');
    await putRaw(`/v1/kv/ld/released?acquire=${holder}`, 'x');
    await putRaw(`/v1/kv/ld/released?release=${holder}`, 'x');
    const before = (await entry('ld/held'))!.ModifyIndex;
    await put(`/v1/session/destroy/${holder}`);
    const after = (await entry('ld/held'))!;
    expect(after.Session).toBeUndefined();
    expect(after.ModifyIndex).toBeGreaterThan(before);
    const next = await session();
    expect((await putRaw(`/v1/kv/ld/held?acquire=${next}`, 'y')).text).toBe('false');
    const refused = await txn([{ KV: { Verb: 'lock', Key: 'ld/held', Session: next } }]);
    expect(refused.status).toBe(409);
    expect(refused.body.Errors).toEqual([{ OpIndex: 0, What: 'failed to lock key "ld/held" due to lock delay' }]);
    expect((await putRaw(`/v1/kv/ld/released?acquire=${next}`, 'y')).text).toBe('true');
    const deleting = await session({ Behavior: 'delete', LockDelay: '1ms' });
    await putRaw(`/v1/kv/ld/ephemeral?acquire=${deleting}`, 'x');
    await put(`/v1/session/destroy/${deleting}`);
    expect(await entry('ld/ephemeral')).toBeUndefined();
  });

  test('a blocking read of a key waits until its ModifyIndex passes the index given, and answers it as X-Consul-Index', async () => {
    await putRaw('/v1/kv/blk/k', 'v1');
    const first = await get('/v1/kv/blk/k');
    expect(Number(first.index)).toBe((first.json() as Entry[])[0]!.ModifyIndex);
    let answered = false;
    const waiting = get(`/v1/kv/blk/k?index=${first.index}&wait=10s`).then((r) => {
      answered = true;
      return r;
    });
    await putRaw('/v1/kv/blk/other', 'unrelated');
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    await putRaw('/v1/kv/blk/k', 'v2');
    const changed = await waiting;
    expect(Number(changed.index)).toBeGreaterThan(Number(first.index));
    expect((changed.json() as Entry[])[0]!.Value).toBe(b64('v2'));
  });
});

describe('transactions', () => {
  test('check-index and check-session guard a set: all or nothing, with Consul’s messages; results carry no value', async () => {
    const s = await session();
    await putRaw(`/v1/kv/tx/leader?acquire=${s}`, 'me');
    const { ModifyIndex } = (await entry('tx/leader'))!;
    const ok = await txn([
      { KV: { Verb: 'check-index', Key: 'tx/leader', Index: ModifyIndex } },
      { KV: { Verb: 'check-session', Key: 'tx/leader', Session: s } },
      { KV: { Verb: 'set', Key: 'tx/data', Value: b64('written') } },
    ]);
    expect(ok.status).toBe(200);
    expect(ok.body.Errors).toBeNull();
    expect(ok.body.Results!.map((r) => r.KV.Key)).toEqual(['tx/leader', 'tx/leader', 'tx/data']);
    expect(ok.body.Results!.every((r) => r.KV.Value === null)).toBe(true);
    const stale = await txn([
      { KV: { Verb: 'set', Key: 'tx/data', Value: b64('stale') } },
      { KV: { Verb: 'check-index', Key: 'tx/leader', Index: ModifyIndex - 1 } },
      { KV: { Verb: 'check-session', Key: 'tx/leader', Session: 'someone-else' } },
    ]);
    expect(stale.status).toBe(409);
    expect(stale.body.Results).toBeNull();
    expect(stale.body.Errors).toEqual([
      { OpIndex: 1, What: `failed index check for key "tx/leader", current modify index ${ModifyIndex} != ${ModifyIndex - 1}` },
      { OpIndex: 2, What: `failed session check for key "tx/leader", current session "${s}" != "someone-else"` },
    ]);
    expect((await entry('tx/data'))!.Value).toBe(b64('written'));
    const get1 = await txn([{ KV: { Verb: 'get', Key: 'tx/data' } }]);
    expect(get1.body.Results![0]!.KV.Value).toBe(b64('written'));
  });

  test('a lock in a transaction answers the entry it wrote: its ModifyIndex is the write’s index; more than 64 operations is 413', async () => {
    const s = await session();
    const locked = await txn([{ KV: { Verb: 'lock', Key: 'tx/lock', Value: b64('v'), Session: s } }]);
    expect(locked.status).toBe(200);
    const kv = locked.body.Results![0]!.KV;
    expect(kv).toMatchObject({ Key: 'tx/lock', Session: s, LockIndex: 1 });
    expect((await entry('tx/lock'))!.ModifyIndex).toBe(kv.ModifyIndex);
    const held = await txn([{ KV: { Verb: 'lock', Key: 'tx/lock', Session: await session() } }]);
    expect(held.body.Errors![0]!.What).toBe('failed to lock key "tx/lock", lock is already held');
    const many = await put(
      '/v1/txn',
      Array.from({ length: 65 }, (_, i) => ({ KV: { Verb: 'get', Key: `k${i}` } })),
    );
    expect(many.status).toBe(413);
  });
});

test('stop and start: the cluster goes away and comes back with its sessions and keys', async () => {
  const s = await session({ TTL: '1s' });
  await putRaw(`/v1/kv/restart/k?acquire=${s}`, 'kept');
  await server.stop();
  await expect(get('/v1/kv/restart/k')).rejects.toThrow();
  await server.start();
  expect(await entry('restart/k')).toMatchObject({ Session: s, Value: b64('kept') });
  expect((await put(`/v1/session/renew/${s}`)).status).toBe(200);
});
