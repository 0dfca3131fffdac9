/** Leader election on a real etcd (test/fixtures/etcd.ts): the shared suite, and etcd's own layout. */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createElection, StaleTermError } from '../../src/discovery/election.js';
import { startEtcd, type EtcdServer } from '../fixtures/etcd.js';
import { waitFor } from '../helpers/net.js';
import { describeElection, TTL_MS } from './election-suite.js';
import { testDiscoveryConfig } from './helpers.js';

let server: EtcdServer;
const prefix = `/election-test-${process.pid}`;

beforeAll(async () => {
  server = await startEtcd();
});

afterAll(async () => {
  await server?.destroy();
});

function config(viaPort?: number) {
  const endpoint = viaPort ? `http://127.0.0.1:${viaPort}` : server.endpoint;
  return testDiscoveryConfig({ backends: ['etcd'], etcdEndpoints: [endpoint], etcdPrefix: prefix, ttlMs: TTL_MS });
}

describeElection('etcd', () => ({
  make: (stack, id, opts) => createElection(config(opts?.viaPort), { stack, candidate: { id, host: `host-${id}`, address: `10.0.0.${id.length}` } }),
  port: () => server.clientPort,
  stop: () => server.stop(),
  start: () => server.start(),
}));

describe('etcd election layout', () => {
  test("a waiting candidate's key is not a term: a write under its create revision is refused in etcd's transaction", async () => {
    const make = (id: string) => createElection(config(), { stack: 'waiting', candidate: { id, host: `host-${id}`, address: '10.0.0.1' } });
    const [a, b, c] = await Promise.all([make('a'), make('b'), make('c')]);
    try {
      const { term } = await a.campaign();
      void b.campaign().catch(() => undefined);
      const { Etcd3 } = await import('etcd3');
      const raw = new Etcd3({ hosts: server.endpoint });
      try {
        const keys = () => raw.getAll().prefix(`${prefix}/stacks/waiting/election/leader/`).sort('Create', 'Ascend').exec();
        const waiting = await waitFor(async () => (await keys()).kvs[1], 10_000, "b's candidate key");
        const bRevision = Number(waiting.create_revision);
        expect(bRevision).toBeGreaterThan(term);
        await expect(c.fencedWrite('k', 'forged', bRevision)).rejects.toBeInstanceOf(StaleTermError);
        await expect(c.guard(bRevision)).rejects.toBeInstanceOf(StaleTermError);
        expect(await raw.get(`${prefix}/stacks/waiting/fenced/k`).string()).toBeNull();
        await c.fencedWrite('k', 'by the leader term', term);
        expect((await c.fencedRead('k'))?.value).toBe('by the leader term');
      } finally {
        raw.close();
      }
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  test("the leader's key is its lease's key under <prefix>/stacks/<stack>/election/leader/, and the term is its create revision", async () => {
    const election = await createElection(config(), { stack: 'layout', candidate: { id: 'a', host: 'host-a', address: '10.0.0.1' } });
    try {
      const { term } = await election.campaign();
      const { Etcd3 } = await import('etcd3');
      const raw = new Etcd3({ hosts: server.endpoint });
      try {
        const res = await raw.getAll().prefix(`${prefix}/stacks/layout/election/leader/`).exec();
        expect(res.kvs).toHaveLength(1);
        const kv = res.kvs[0]!;
        expect(Number(kv.create_revision)).toBe(term);
        expect(kv.lease).not.toBe('0');
        expect(JSON.parse(kv.value.toString())).toEqual({ id: 'a', host: 'host-a', address: '10.0.0.1' });
        await election.fencedWrite('x', 'y', term);
        const stored = JSON.parse((await raw.get(`${prefix}/stacks/layout/fenced/x`).string())!);
        expect(stored).toMatchObject({ value: 'y', term, writer: 'a' });
      } finally {
        raw.close();
      }
    } finally {
      await election.close();
    }
  });
});
