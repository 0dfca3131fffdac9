/** The election's front door and shared pieces, without a server: which backends elect, settings checks, the leader feed. */
import { describe, expect, test } from 'vitest';
import {
  canElect,
  createElection,
  decodeCandidate,
  decodeFenced,
  electionBackends,
  encodeCandidate,
  encodeFenced,
  LeaderFeed,
  LostListeners,
  StaleTermError,
  stepDownMarginMs,
  type Leadership,
} from '../../src/discovery/election.js';
import { DISCOVERY_DRIVERS } from '../../src/discovery/registry.js';
import { InvalidInputError, UnsupportedError } from '../../src/errors.js';
import { testDiscoveryConfig } from './helpers.js';

const candidate = { id: 'sup-1', host: 'host-1', address: '10.0.0.1' };
const lead = (term: number, id = 'a'): Leadership => ({ leader: { id, host: `host-${id}`, address: '10.0.0.1' }, term });

describe('which backends elect', () => {
  test('Consul, etcd and NATS declare an election on their definitions; the others do not', () => {
    expect(electionBackends()).toEqual(['consul', 'etcd', 'nats']);
    expect(canElect('consul')).toBe(true);
    expect(canElect('etcd')).toBe(true);
    expect(canElect('file')).toBe(false);
    for (const driver of DISCOVERY_DRIVERS) {
      if ('election' in driver) expect(driver.election.description).not.toBe('');
    }
  });

  test('a backend that cannot elect is a clear UnsupportedError naming those that can', async () => {
    const config = testDiscoveryConfig({ backends: ['file', 'memory'] });
    const err = await createElection(config, { stack: 'app', candidate }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedError);
    expect(String(err)).toMatch(/discovery backends file, memory does not support leader election \(backends that elect: consul, etcd, nats\)/);
    await expect(createElection(config, { stack: 'app', candidate, backend: 'dns' })).rejects.toThrow(/discovery backend dns does not support leader election/);
    await expect(createElection(testDiscoveryConfig({ backends: [] }), { stack: 'app', candidate })).rejects.toThrow(
      /discovery without a backend does not support/,
    );
  });

  test('the first configured backend that elects is used (nothing connects before the first call)', async () => {
    const election = await createElection(testDiscoveryConfig({ backends: ['file', 'etcd'], etcdEndpoints: ['http://127.0.0.1:9'] }), {
      stack: 'app',
      candidate,
    });
    expect(election.backend).toBe('etcd');
    expect(election.held()).toBeNull();
    await election.close();
    const nats = await createElection(testDiscoveryConfig({ backends: ['etcd', 'nats'], natsUrl: 'nats://127.0.0.1:9' }), {
      stack: 'app',
      candidate,
      backend: 'nats',
    });
    expect(nats.backend).toBe('nats');
    await nats.close();
  });

  test('bad settings: every problem at once, as invalid input', async () => {
    const config = testDiscoveryConfig({ backends: ['etcd'] });
    const err = await createElection(config, { stack: 'Bad/Stack', candidate: { id: '../x', host: '', address: '' }, ttlMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    const paths = (err as InvalidInputError).problems.map((p) => p.path);
    expect(paths).toEqual(['stack', 'candidate.id', 'candidate.host', 'candidate.address', 'discovery.ttl']);
    expect((err as InvalidInputError).exitCode).toBe(2);
  });
});

describe('the pieces every backend shares', () => {
  test('a stale term error says which term and which is current', () => {
    expect(new StaleTermError(3, 5).message).toBe("term 3 is not the current leader's term (the current term is 5); the write is refused");
    expect(new StaleTermError(3, null).message).toMatch(/nobody leads now/);
    expect(new StaleTermError(3, 5).exitCode).toBe(1);
  });

  test('candidates and fenced values round-trip; foreign values do not break readers', () => {
    expect(decodeCandidate(encodeCandidate(candidate))).toEqual({ candidate });
    expect(decodeCandidate(encodeCandidate(candidate, 42))).toEqual({ candidate, term: 42 });
    expect(decodeCandidate('not json').candidate.id).toBe('not json');
    expect(decodeFenced(encodeFenced('v', 7, 'w'))).toMatchObject({ value: 'v', term: 7, writer: 'w' });
    expect(decodeFenced('{"value":1}')).toBeNull();
    expect(decodeFenced('nope')).toBeNull();
  });

  test('the step-down margin is a tenth of the TTL, between 50 ms and 1 s', () => {
    expect(stepDownMarginMs(2000)).toBe(200);
    expect(stepDownMarginMs(100)).toBe(50);
    expect(stepDownMarginMs(60_000)).toBe(1000);
  });

  test('the feed: the current view first, then changes only; older reads are dropped; it ends', async () => {
    const feed = new LeaderFeed();
    feed.publish(lead(1), 10);
    const ac = new AbortController();
    const seen: (Leadership | null)[] = [];
    const reading = (async () => {
      for await (const view of feed.subscribe(ac.signal)) seen.push(view);
    })();
    feed.publish(lead(1), 11); // the same view: not a change
    feed.publish(lead(2, 'b'), 12);
    feed.publish(lead(1), 11); // read before the last one: dropped
    feed.publish(null, 13);
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual([lead(1), lead(2, 'b'), null]);
    expect(await feed.until((v) => v === null)).toBeNull();
    const waiting = feed.until((v) => v?.term === 3);
    feed.publish(lead(3, 'c'));
    expect(await waiting).toEqual(lead(3, 'c'));
    expect(await feed.until(() => false, { timeoutMs: 10 })).toBeUndefined();
    feed.end();
    await reading;
    expect(seen).toEqual([lead(1), lead(2, 'b'), null, lead(3, 'c')]);
  });

  test('lost listeners hear each term once, and one failing listener does not stop the others', () => {
    const lost = new LostListeners();
    const heard: number[] = [];
    lost.add(() => {
      throw new Error('boom');
    });
    const off = lost.add((l) => heard.push(l.term));
    lost.emit({ term: 4, reason: 'expired', message: '' });
    lost.emit({ term: 4, reason: 'taken', message: '' });
    off();
    lost.emit({ term: 5, reason: 'expired', message: '' });
    expect(heard).toEqual([4]);
  });
});
