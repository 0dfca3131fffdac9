/** Leader election on a real etcd (test/fixtures/etcd.ts): the shared suite, and etcd's own layout. */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createElection } from '../../src/discovery/election.js';
import { startEtcd, type EtcdServer } from '../fixtures/etcd.js';
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
}));

describe('etcd election layout', () => {
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
