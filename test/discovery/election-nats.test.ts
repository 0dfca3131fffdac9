/** Leader election on a real nats-server with JetStream (test/fixtures/nats.ts): the shared suite, and NATS's own cases. */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createElection } from '../../src/discovery/election.js';
import { UnsupportedError } from '../../src/errors.js';
import { startNats, type NatsServer } from '../fixtures/nats.js';
import { describeElection, TTL_MS } from './election-suite.js';
import { testDiscoveryConfig } from './helpers.js';

let server: NatsServer;
let plain: NatsServer;

beforeAll(async () => {
  [server, plain] = await Promise.all([startNats(), startNats({ jetstream: false })]);
});

afterAll(async () => {
  await Promise.all([server?.destroy(), plain?.destroy()]);
});

function config(url: string, overrides = {}) {
  return testDiscoveryConfig({ backends: ['nats'], natsUrl: url, natsBucket: 'svc', natsMode: 'auto', ttlMs: TTL_MS, ...overrides });
}

const candidate = (id: string) => ({ id, host: `host-${id}`, address: `10.0.0.${id.length}` });

describeElection('nats', () => ({
  make: (stack, id, opts) => createElection(config(opts?.viaPort ? `nats://127.0.0.1:${opts.viaPort}` : server.url), { stack, candidate: candidate(id) }),
  port: () => server.port,
  stop: () => server.stop(),
  start: () => server.start(),
}));

describe('nats election specifics', () => {
  test('the leader key lives in <bucket>_leader_<stack>, whose TTL is the stack ttl; the term is the revision of its create', async () => {
    const election = await createElection(config(server.url), { stack: 'layout', candidate: candidate('a') });
    try {
      const { term } = await election.campaign();
      const [{ connect }, { Kvm }] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/kv')]);
      const nc = await connect({ servers: server.url });
      try {
        const kv = await new Kvm(nc).open('svc_leader_layout');
        expect((await kv.status()).ttl).toBe(TTL_MS);
        const entry = await kv.get('leader');
        expect(entry?.operation).toBe('PUT');
        expect(JSON.parse(entry!.string())).toMatchObject({ id: 'a', host: 'host-a', address: '10.0.0.1' });
        expect(entry!.revision).toBeGreaterThanOrEqual(term);
      } finally {
        await nc.close();
      }
    } finally {
      await election.close();
    }
  });

  test('a bucket made earlier with a shorter TTL keeps it, and the leader refreshes in time for that TTL, not the one asked for', async () => {
    const [{ connect }, { Kvm }] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/kv')]);
    const nc = await connect({ servers: server.url });
    try {
      await new Kvm(nc).create('svc_leader_shorter', { ttl: 1000, history: 1 });
    } finally {
      await nc.close();
    }
    const election = await createElection(config(server.url), { stack: 'shorter', candidate: candidate('a'), ttlMs: 5000 });
    try {
      const lost: unknown[] = [];
      election.onLost((l) => lost.push(l));
      const { term } = await election.campaign();
      for (let i = 0; i < 15; i++) {
        await new Promise((r) => setTimeout(r, 200));
        expect(election.held()?.term).toBe(term);
        expect((await election.leader())?.term).toBe(term);
      }
      expect(lost).toEqual([]);
    } finally {
      await election.close();
    }
  });

  test('a server without JetStream cannot elect, and neither can subjects mode: a clear UnsupportedError', async () => {
    const noJs = await createElection(config(plain.url), { stack: 'plain', candidate: candidate('a') });
    try {
      const err = await noJs.campaign().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsupportedError);
      expect(String(err)).toMatch(/no JetStream.*leader election/);
    } finally {
      await noJs.close();
    }
    await expect(createElection(config(server.url, { natsMode: 'subjects' }), { stack: 'plain', candidate: candidate('a') })).rejects.toThrow(
      /subjects mode.*does not support leader election/,
    );
  });
});
