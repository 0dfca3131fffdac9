/**
 * Leader election on etcd (issue #15; the interface is in `election.ts`), with etcd3's `Election`.
 *
 * Layout, under `<etcdPrefix>/stacks/<stack>/`:
 *   election/leader/<lease id>   one key per candidate, on its own lease (TTL = the stack's ttl),
 *                                holding the candidate as JSON; the key created first leads
 *                                (etcd3's `Election`, the Go client's `concurrency.Election`)
 *   fenced/<key>                 values written by `fencedWrite`, carrying their term
 *
 * The term is the create revision of the leader's key: etcd's revision only grows, and a key
 * created later always has a greater one, so every new leader has a greater term.
 *
 * A fenced write is one transaction: it succeeds only if the key of its term still exists with
 * that create revision and no candidate key is older (that key leads), so a write from a leader
 * whose lease lapsed is refused by etcd itself, whatever the writer believes.
 *
 * Stepping down: etcd3 keeps a campaign's lease alive on its own (a keep-alive every TTL/3) and
 * only gives up after twice the TTL without etcd. The leader here watches the answers: each one
 * says how long the lease lives from the moment its request was sent, and when that time (less
 * a margin, `stepDownMarginMs`) passes without a newer answer, it steps down (`onLost`,
 * `unreachable`) before etcd can expire the lease and elect someone else. A lease etcd reports
 * gone (`expired`) and the leader key deleted end the term at once.
 */
import type { Campaign, Lease, Watcher } from 'etcd3';
import { UnsupportedError } from '../errors.js';
import { pause, realClock } from '../util/clock.js';
import { errorText } from '../util/error-text.js';
import { backoffAt } from '../util/retry.js';
import { etcdDriver, type EtcdConfig } from './drivers/etcd.js';
import { clientOptions, prefixEnd, toStackError } from './etcd.js';
import {
  abortable,
  assertFencedKey,
  createDeadline,
  decodeCandidate,
  decodeFenced,
  electionClosed,
  encodeCandidate,
  encodeFenced,
  campaignUntilWon,
  LeaderFeed,
  LostListeners,
  StaleTermError,
  stepDownMarginMs,
  validateElectionOptions,
  type Election,
  type ElectionOptions,
  type FencedValue,
  type Leadership,
  type LeadershipLost,
  type LostReason,
} from './election.js';
import { createKeyedQueue, RECONNECT_BACKOFF, redactUrl } from './resync.js';
import { anySignal } from './watch.js';
import { StackError } from '../errors.js';

/** The election's name under the stack's prefix. */
const ELECTION_NAME = 'leader';

/** The term this candidate holds, and what keeps it. */
interface HeldTerm {
  term: number;
  /** The leader key (full path). */
  key: string;
  campaign: Campaign;
  lease: Lease;
  stop(): void;
}

export async function createEtcdElection(config: EtcdConfig, options: ElectionOptions): Promise<Election> {
  validateElectionOptions(options);
  const etcd3 = await import('etcd3');
  const endpoints = config.etcdEndpoints.length > 0 ? config.etcdEndpoints : etcdDriver.defaults.etcdEndpoints;
  const where = endpoints.map(redactUrl).join(',');
  const ttlSeconds = Math.max(1, Math.ceil(options.ttlMs / 1000));
  const ttlMs = ttlSeconds * 1000;
  const margin = stepDownMarginMs(ttlMs);
  // A client of its own: closing it is this candidate's connection going away, nobody else's.
  const client = new etcd3.Etcd3(clientOptions(config, endpoints));
  const base = `${config.etcdPrefix.replace(/\/+$/, '')}/stacks/${options.stack}/`;
  const election = client.namespace(base).election(ELECTION_NAME, ttlSeconds);
  const candidatesPrefix = `${base}${etcd3.Election.prefix}/${ELECTION_NAME}/`;
  const fencedPrefix = `${base}fenced/`;
  const candidate = { ...options.candidate };
  const feed = new LeaderFeed();
  const lost = new LostListeners();
  /** Terms this candidate held and lost or gave up: writes under them are refused without asking. */
  const ended = new Set<number>();
  const closing = new AbortController();
  let closed = false;
  let running: { abort: AbortController; done: Promise<unknown> } | undefined;
  let held: HeldTerm | undefined;
  let observing: Promise<void> | undefined;
  const oneAtATime = createKeyedQueue();

  async function withEtcd<T>(what: string, op: () => Promise<T>): Promise<T> {
    if (closed) throw electionClosed('etcd');
    try {
      return await op();
    } catch (err) {
      throw toStackError(err, what, where);
    }
  }

  /** The leader (the oldest candidate key) and the store revision of the read. */
  function readLeader(): Promise<{ view: Leadership | null; revision: number }> {
    return withEtcd('read the leader', async () => {
      const res = await client.getAll().prefix(candidatesPrefix).sort('Create', 'Ascend').limit(1).exec();
      const kv = res.kvs[0];
      const revision = Number(res.header.revision);
      if (!kv) return { view: null, revision };
      return { view: { leader: decodeCandidate(kv.value.toString()).candidate, term: Number(kv.create_revision) }, revision };
    });
  }

  /** Reads are serialised, and the feed drops one older than the last: views never go back in time. */
  const publishLeader = () =>
    oneAtATime('leader', async () => {
      const { view, revision } = await readLeader();
      feed.publish(view, revision);
    });

  function loseTerm(term: number, reason: LostReason, message: string): void {
    if (!held || held.term !== term) return;
    const gone = held;
    held = undefined;
    ended.add(term);
    gone.stop();
    // Stops the keep-alives at once; tells etcd if it can hear us (otherwise the lease lapses).
    void gone.campaign.resign().catch(() => undefined);
    lost.emit({ term, reason, message } satisfies LeadershipLost);
  }

  /**
   * Follow a campaign lease's keep-alives: each answer says the lease lives `TTL` seconds from
   * when its request was sent (answers come in the order of the requests on one stream).
   */
  function followLease(lease: Lease, grantSentAt: number) {
    let confirmedUntil = grantSentAt + ttlMs;
    const sent: number[] = [];
    const listeners = new Set<(until: number) => void>();
    const reset = () => void (sent.length = 0); // a new stream: the old one's requests get no answers
    const fired = () => void sent.push(realClock.now());
    const answered = (res: { TTL: string }) => {
      const at = sent.shift();
      if (at === undefined || Number(res.TTL) <= 0) return;
      const until = at + Number(res.TTL) * 1000;
      if (until <= confirmedUntil) return;
      confirmedUntil = until;
      for (const listener of listeners) listener(until);
    };
    lease.on('keepaliveEstablished', reset);
    lease.on('keepaliveFailed', reset);
    lease.on('keepaliveFired', fired);
    lease.on('keepaliveSucceeded', answered);
    return {
      confirmedUntil: () => confirmedUntil,
      onConfirmed: (listener: (until: number) => void) => void listeners.add(listener),
      dispose: () => {
        listeners.clear();
        lease.removeListener('keepaliveEstablished', reset);
        lease.removeListener('keepaliveFailed', reset);
        lease.removeListener('keepaliveFired', fired);
        lease.removeListener('keepaliveSucceeded', answered);
      },
    };
  }

  /** One campaign on a fresh lease: the term once elected; undefined if the key vanished before it could be read. */
  async function campaignOnce(signal: AbortSignal): Promise<Leadership | undefined> {
    const grantSentAt = realClock.now();
    const campaign = election.campaign(encodeCandidate(candidate));
    campaign.on('error', () => undefined); // reported through wait() and the term's own listener, never as an unhandled 'error'
    const lease = leaseOf(campaign, etcd3.Lease);
    const timing = followLease(lease, grantSentAt);
    const withdraw = async () => {
      timing.dispose();
      await campaign.resign().catch(() => undefined);
    };
    let key: string;
    let found: { createRevision: number; revision: number } | undefined;
    try {
      await abortable(campaign.wait(), signal);
      key = await campaign.getCampaignKey();
      const res = await client.kv.range({ key: Buffer.from(key) });
      const kv = res.kvs[0];
      if (kv) found = { createRevision: Number(kv.create_revision), revision: Number(res.header.revision) };
    } catch (err) {
      await withdraw();
      throw err;
    }
    if (signal.aborted) {
      await withdraw();
      throw signal.reason;
    }
    if (!found) {
      await withdraw();
      return undefined;
    }
    const term = found.createRevision;
    const deadline = createDeadline(timing.confirmedUntil() - margin, () =>
      loseTerm(term, 'unreachable', `etcd at ${where} has not confirmed the leader's lease in time (ttl ${ttlMs} ms); stepped down before it could lapse`),
    );
    timing.onConfirmed((until) => deadline.extend(until - margin));
    const onError = (err: Error) => loseTerm(term, 'expired', `the leader's lease is gone: ${errorText(err)}`);
    campaign.on('error', onError);
    let watcher: Watcher | undefined;
    let stopped = false;
    held = {
      term,
      key,
      campaign,
      lease,
      stop: () => {
        stopped = true;
        deadline.stop();
        timing.dispose();
        campaign.removeListener('error', onError);
        void watcher?.cancel().catch(() => undefined);
      },
    };
    // The leader key deleted (revoked, expired, removed by hand) ends the term at once.
    void client
      .watch()
      .key(key)
      .startRevision(String(found.revision + 1))
      .only('delete')
      .create()
      .then((w) => {
        watcher = w;
        w.on('error', () => undefined); // it reconnects by itself
        w.on('delete', () => loseTerm(term, 'expired', 'the leader key was deleted from etcd'));
        if (stopped) void w.cancel().catch(() => undefined);
      })
      .catch(() => undefined); // the lease's own watchdog still covers the term
    feed.publish({ leader: { ...candidate }, term }, found.revision);
    return { leader: { ...candidate }, term };
  }

  /** The key of the candidate whose key was created at revision `term`, if it still exists. */
  async function keyOfTerm(term: number): Promise<string | undefined> {
    const keys = await withEtcd('find the leader key', () =>
      client.getAll().prefix(candidatesPrefix).minCreateRevision(String(term)).maxCreateRevision(String(term)).keys(),
    );
    return keys[0];
  }

  async function currentTerm(): Promise<number | null | undefined> {
    return readLeader().then(
      ({ view }) => view?.term ?? null,
      () => undefined,
    );
  }

  async function observeLoop(): Promise<void> {
    let failures = 0;
    while (!closed) {
      let observer: Awaited<ReturnType<typeof election.observe>> | undefined;
      let failed = false;
      try {
        observer = await election.observe();
        const watching = observer;
        // Listeners first: an 'error' without one would be thrown.
        const ended = new Promise<void>((resolve) => {
          watching.on('error', () => {
            failed = true;
            resolve();
          });
          watching.on('change', () => void publishLeader().catch(() => undefined));
          if (closing.signal.aborted) resolve();
          closing.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        await publishLeader().catch(() => undefined);
        failures = 0;
        await ended;
      } catch {
        failed = true;
      } finally {
        await observer?.cancel().catch(() => undefined);
      }
      if (failed) {
        failures += 1;
        await pause(backoffAt(failures, RECONNECT_BACKOFF), closing.signal);
      }
    }
  }

  return {
    backend: 'etcd',
    stack: options.stack,
    candidate: { ...candidate },

    async campaign(signal?: AbortSignal): Promise<Leadership> {
      if (closed) throw electionClosed('etcd');
      if (held) return { leader: { ...candidate }, term: held.term };
      if (running) throw new StackError(`candidate '${candidate.id}' is already campaigning`, { code: 'campaigning' });
      const abort = new AbortController();
      const any = anySignal([signal, abort.signal, closing.signal]);
      const done = campaignUntilWon(campaignOnce, any, (err) => toStackError(err, 'campaign', where));
      running = { abort, done };
      try {
        return await done;
      } finally {
        running = undefined;
      }
    },

    held: () => (held ? { leader: { ...candidate }, term: held.term } : null),

    async leader(): Promise<Leadership | null> {
      return (await readLeader()).view;
    },

    observe(signal?: AbortSignal): AsyncIterable<Leadership | null> {
      // Closed: the feed has ended, so this ends at once.
      if (!closed) observing ??= observeLoop();
      return feed.subscribe(anySignal([signal, closing.signal]));
    },

    async resign(): Promise<void> {
      running?.abort.abort(new StackError(`candidate '${candidate.id}' withdrew (resign)`, { code: 'withdrawn' }));
      await running?.done.catch(() => undefined);
      if (!held) return;
      const gone = held;
      held = undefined;
      ended.add(gone.term);
      gone.stop();
      await withEtcd('resign', () => gone.campaign.resign());
    },

    onLost: (listener) => lost.add(listener),

    async guard(term: number): Promise<void> {
      if (ended.has(term)) throw new StaleTermError(term, undefined, `candidate '${candidate.id}' no longer holds it`);
      const { view } = await readLeader();
      if (!view || view.term !== term) throw new StaleTermError(term, view ? view.term : null);
    },

    async fencedWrite(key: string, value: string, term: number): Promise<void> {
      assertFencedKey(key);
      if (ended.has(term)) throw new StaleTermError(term, undefined, `candidate '${candidate.id}' no longer holds it`);
      const leaderKey = held?.term === term ? held.key : await keyOfTerm(term);
      if (!leaderKey) throw new StaleTermError(term, await currentTerm());
      const res = await withEtcd(`fenced write of ${key}`, () =>
        client.kv.txn({
          compare: [
            // The key of that term still exists (its lease lives) …
            { key: Buffer.from(leaderKey), target: etcd3.CompareTarget.Create, result: etcd3.CompareResult.Equal, create_revision: term },
            // … and no candidate key is older: it leads.
            {
              key: Buffer.from(candidatesPrefix),
              range_end: prefixEnd(candidatesPrefix),
              target: etcd3.CompareTarget.Create,
              result: etcd3.CompareResult.Greater,
              create_revision: term - 1,
            },
          ],
          success: [{ request_put: { key: Buffer.from(fencedPrefix + key), value: Buffer.from(encodeFenced(value, term, candidate.id)) } }],
          failure: [],
        }),
      );
      if (res.succeeded) return;
      const current = await currentTerm();
      if (held?.term === term) loseTerm(term, current ? 'taken' : 'expired', `etcd refused a fenced write under term ${term}`);
      throw new StaleTermError(term, current);
    },

    async fencedRead(key: string): Promise<FencedValue | null> {
      assertFencedKey(key);
      const text = await withEtcd(`read ${key}`, () => client.get(fencedPrefix + key).string());
      return text === null ? null : decodeFenced(text);
    },

    async close(): Promise<void> {
      if (closed) return;
      running?.abort.abort(electionClosed('etcd'));
      await running?.done.catch(() => undefined); // a pending candidacy is withdrawn (its key revoked)
      closed = true;
      closing.abort(electionClosed('etcd'));
      feed.end();
      if (held) {
        const gone = held;
        held = undefined;
        ended.add(gone.term);
        gone.stop();
        gone.lease.release(); // no more keep-alives, no revoke: the term lapses after one TTL
      }
      await observing;
      await detachWatchers(election, etcd3.Watcher);
      client.close();
    },
  };
}

/**
 * etcd3's `Campaign` never cancels the watch it waits on (the key of the candidate before it)
 * when it resigns, and a watch left attached when the client closes retries forever on a timer,
 * keeping the process alive. Closing therefore cancels every watch of the election's namespace
 * (found through private fields: nothing else reaches them), within a second.
 */
async function detachWatchers(election: object, WatcherClass: typeof Watcher): Promise<void> {
  const manager = (election as { namespace?: { watchManager?: { watchers?: unknown } } }).namespace?.watchManager;
  const watchers = Array.isArray(manager?.watchers) ? (manager.watchers as unknown[]).filter((w): w is Watcher => w instanceof WatcherClass) : [];
  if (watchers.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(watchers.map((w) => w.cancel().catch(() => undefined))),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000))),
  ]);
  clearTimeout(timer);
}

/**
 * etcd3's `Campaign` keeps its lease in a private field; its keep-alive events are what tells a
 * leader how long its lease surely lives. A client version without it cannot run elections here.
 */
function leaseOf(campaign: Campaign, LeaseClass: typeof Lease): Lease {
  const lease = (campaign as unknown as { lease?: unknown }).lease;
  if (!(lease instanceof LeaseClass)) {
    throw new UnsupportedError('the installed etcd3 client (its Campaign keeps no lease field)', 'leader election with step-down timing');
  }
  return lease;
}
