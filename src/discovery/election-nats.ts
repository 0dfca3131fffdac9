/**
 * Leader election on NATS JetStream KV (issue #15; the interface is in `election.ts`).
 *
 * Layout: bucket `<natsBucket>_leader_<stack>` (its TTL, the stream's max age, is the stack's
 * ttl; history 1) holds one key, `leader`: the leader as JSON. Bucket `<natsBucket>_fenced_<stack>`
 * (no TTL) holds what `fencedWrite` stores, each value carrying its term.
 *
 * - Campaign: `kv.create` (a put expecting no current value) — only one candidate's succeeds;
 *   the term is the revision (stream sequence) it was stored at, which only grows.
 * - Keep: the leader re-writes the key every TTL/3 with `kv.update` expecting its own last
 *   revision, so a refresh can never overwrite someone else's key. The value then carries the
 *   term, so every reader can tell a refresh from a new term.
 * - Lapse: the bucket's max age drops the key TTL after the last write. Servers before 2.11
 *   leave no marker for that and tell no watcher, so observers (and waiting candidates) look
 *   again when the key is due, from when they saw its last write.
 * - Resign: a delete expecting the leader's last revision (a marker every watcher sees at once).
 * - Fencing: the leader key must carry the term, then the value is written with a revision check
 *   that never replaces a value of a newer term. A write of a lapsed term is refused once the
 *   next leader holds the key; if it slips in just before the next leader's first write of that
 *   key, that write supersedes it (the usual guarantee of a fencing token at the store).
 *
 * Stepping down: each successful refresh proves the key lives until the refresh was sent plus
 * the bucket's TTL; when that time (less `stepDownMarginMs`) passes without another, the leader
 * steps down (`unreachable`) before the key can lapse and someone else be elected.
 *
 * The bucket's own TTL is the truth about expiry: a bucket created earlier with another TTL keeps
 * it, and the timing here follows it.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { KV, KvEntry, Kvm } from '@nats-io/kv';
import { ExitCode, StackError, UnsupportedError } from '../errors.js';
import { pause, realClock } from '../util/clock.js';
import { backoffAt } from '../util/retry.js';
import { natsDriver, type NatsConfig } from './drivers/nats.js';
import {
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
  type Deadline,
  type Election,
  type ElectionOptions,
  type FencedValue,
  type Leadership,
  type LostReason,
} from './election.js';
import { connectOptions, drainPending, sharedConnection, toStackError } from './nats.js';
import { RECONNECT_BACKOFF, redactUrl } from './resync.js';
import { anySignal } from './watch.js';

const LEADER_KEY = 'leader';
/** Looking again for a key that should have lapsed but was still there: this often. */
const RECHECK_MS = 100;
/** After the key's due time, a little grace for the server's expiry timer. */
const EXPIRY_SLACK_MS = 10;

interface Connected {
  nc: NatsConnection;
  leaders: KV;
  fenced: KV;
  /** The leader bucket's TTL (its max age), ms. */
  ttlMs: number;
}

interface HeldTerm {
  term: number;
  /** The revision of this leader's latest write of the key. */
  revision: number;
  /** The refresh in flight (settled when none). */
  inflight: Promise<void>;
  deadline: Deadline;
  stop: AbortController;
}

export async function createNatsElection(config: NatsConfig, options: ElectionOptions): Promise<Election> {
  validateElectionOptions(options);
  if (config.natsMode === 'subjects') {
    throw new UnsupportedError('the nats discovery backend in subjects mode (no JetStream)', 'leader election');
  }
  const [{ connect, credsAuthenticator }, { Kvm }] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/kv')]);
  const servers = config.natsUrl
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const where = servers.map(redactUrl).join(',');
  const bucket = config.natsBucket || natsDriver.defaults.natsBucket;
  const leaderBucket = `${bucket}_leader_${options.stack}`;
  const fencedBucket = `${bucket}_fenced_${options.stack}`;
  const candidate = { ...options.candidate };
  const feed = new LeaderFeed();
  const lost = new LostListeners();
  const ended = new Set<number>();
  const closing = new AbortController();
  const reconnectListeners = new Set<() => void>();
  let closed = false;
  let running: { abort: AbortController; done: Promise<unknown> } | undefined;
  let held: HeldTerm | undefined;
  let observing: Promise<void> | undefined;
  /** The latest entry of the leader key this candidate knows of. */
  let known: { revision: number; view: Leadership | null; dueAt?: number } | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;

  const shared = sharedConnection(open, where, () => closed);
  const connection = shared.get;

  async function open(): Promise<Connected> {
    const nc = await connect(connectOptions(config, servers, credsAuthenticator));
    try {
      if (nc.info?.jetstream !== true) throw new UnsupportedError(`the nats server at ${where} (it has no JetStream)`, 'leader election');
      const kvm = new Kvm(nc);
      const c = await buckets(nc, kvm);
      void followStatus(nc, kvm);
      return c;
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  async function buckets(nc: NatsConnection, kvm: Kvm): Promise<Connected> {
    const leaders = await kvm.create(leaderBucket, { ttl: options.ttlMs, history: 1 });
    const fenced = await kvm.create(fencedBucket, { history: 1 });
    const ttlMs = (await leaders.status()).ttl;
    if (!(ttlMs > 0)) {
      throw new StackError(`nats bucket ${leaderBucket} at ${where} has no TTL (max age), so a leader's key would never lapse; delete the bucket`, {
        code: 'invalid_bucket',
        exitCode: ExitCode.invalidInput,
      });
    }
    return { nc, leaders, fenced, ttlMs };
  }

  async function followStatus(nc: NatsConnection, kvm: Kvm): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type !== 'reconnect') continue;
      await buckets(nc, kvm).catch(() => undefined); // a server rebuilt without its store has none
      for (const listener of [...reconnectListeners]) listener();
    }
  }

  async function withNats<T>(what: string, op: (c: Connected) => Promise<T>): Promise<T> {
    if (closed) throw electionClosed('nats');
    const c = await connection();
    try {
      return await op(c);
    } catch (err) {
      throw toStackError(err, what, where);
    }
  }

  function viewOf(entry: KvEntry | null): Leadership | null {
    if (!entry || entry.operation !== 'PUT') return null;
    const { candidate: leader, term } = decodeCandidate(entry.string());
    return { leader, term: term ?? entry.revision };
  }

  /** What this candidate now knows of the leader key: published, and checked against the term it holds. */
  function learn(revision: number, view: Leadership | null, dueAt?: number): void {
    if (known && revision < known.revision) return;
    known = dueAt === undefined ? { revision, view } : { revision, view, dueAt };
    feed.publish(view);
    if (held && (view === null || view.term !== held.term)) {
      loseTerm(
        held.term,
        view ? 'taken' : 'expired',
        view ? `candidate '${view.leader.id}' holds term ${view.term}` : 'the leader key is gone from the bucket',
      );
    }
  }

  function apply(entry: KvEntry, ttlMs: number): void {
    if (known && entry.revision <= known.revision) return;
    if (entry.operation !== 'PUT') {
      clearTimeout(expiryTimer);
      learn(entry.revision, null);
      return;
    }
    // Due TTL after it was stored: by the server's stamp when it is earlier than our receipt
    // (a value read long after it was written), never later than TTL after we saw it.
    const now = realClock.now();
    const byServer = now + (entry.created.getTime() + ttlMs - Date.now());
    const dueAt = Math.min(now + ttlMs, Math.max(now, byServer)) + EXPIRY_SLACK_MS;
    learn(entry.revision, viewOf(entry), dueAt);
    scheduleCheck(dueAt - now);
  }

  function scheduleCheck(inMs: number): void {
    clearTimeout(expiryTimer);
    if (closed) return;
    expiryTimer = setTimeout(() => void check().catch(() => scheduleCheck(RECHECK_MS)), Math.max(0, inMs));
    expiryTimer.unref?.();
  }

  /** Read the key now: a lapse raises no event. */
  async function check(): Promise<void> {
    const c = await connection();
    const before = known?.revision;
    const entry = await c.leaders.get(LEADER_KEY);
    if (known?.revision !== before) return; // something newer arrived meanwhile; it scheduled its own check
    if (!entry) {
      learn(known?.revision ?? 0, null);
      return;
    }
    if (entry.revision === known?.revision) {
      const dueAt = known.dueAt;
      // Not yet due; or due, and not yet dropped by the server: look again shortly.
      if (entry.operation === 'PUT' && dueAt !== undefined) scheduleCheck(Math.max(RECHECK_MS, dueAt - realClock.now()));
      return;
    }
    apply(entry, c.ttlMs);
  }

  async function observeLoop(): Promise<void> {
    let failures = 0;
    while (!closed) {
      let watch: { stop(): void } | undefined;
      const onReconnect = () => watch?.stop();
      reconnectListeners.add(onReconnect);
      try {
        const c = await connection();
        const iter = await c.leaders.watch({ key: LEADER_KEY });
        watch = iter;
        failures = 0;
        void check().catch(() => scheduleCheck(RECHECK_MS)); // an absent key gives the watch nothing to say
        for await (const entry of iter) apply(entry, c.ttlMs);
        if (!closed) await pause(50, closing.signal); // it ended without us asking: subscribe again
      } catch {
        failures += 1;
        await pause(backoffAt(failures, RECONNECT_BACKOFF), closing.signal);
      } finally {
        reconnectListeners.delete(onReconnect);
        watch?.stop();
      }
    }
  }

  function readLeader(): Promise<Leadership | null> {
    return withNats('read the leader', async ({ leaders }) => viewOf(await leaders.get(LEADER_KEY)));
  }

  const ensureObserving = () => void (observing ??= observeLoop());

  function stopHeld(h: HeldTerm): void {
    h.stop.abort();
    h.deadline.stop();
  }

  /** After a term ends: once the refresh in flight settles, delete the key if it is still ours at that revision. */
  async function letGo(h: HeldTerm): Promise<void> {
    await h.inflight.catch(() => undefined);
    const c = await connection().catch(() => undefined);
    await c?.leaders.delete(LEADER_KEY, { previousSeq: h.revision }).catch(() => undefined);
  }

  function loseTerm(term: number, reason: LostReason, message: string): void {
    if (!held || held.term !== term) return;
    const gone = held;
    held = undefined;
    ended.add(term);
    stopHeld(gone);
    void letGo(gone);
    lost.emit({ term, reason, message });
  }

  async function refreshOnce(h: HeldTerm, c: Connected, timeoutMs: number): Promise<boolean> {
    const sentAt = realClock.now();
    try {
      h.revision = await c.leaders.update(LEADER_KEY, encodeCandidate(candidate, h.term), h.revision, timeoutMs);
      if (!h.stop.signal.aborted) h.deadline.extend(sentAt + c.ttlMs - stepDownMarginMs(c.ttlMs));
      return true;
    } catch (err) {
      if (h.stop.signal.aborted || !isWrongSequence(err)) return false;
      // Not at our last revision: our own refresh that timed out may have landed after all.
      const entry = await c.leaders.get(LEADER_KEY).catch(() => undefined);
      if (entry === undefined) return false;
      const view = viewOf(entry);
      if (view?.term === h.term && entry) {
        h.revision = entry.revision;
        return false;
      }
      loseTerm(h.term, view ? 'taken' : 'expired', view ? `candidate '${view.leader.id}' holds term ${view.term}` : 'the leader key lapsed');
      return false;
    }
  }

  async function keepRefreshing(h: HeldTerm, c: Connected): Promise<void> {
    const interval = Math.max(100, Math.floor(c.ttlMs / 3));
    let ok = true;
    while (!h.stop.signal.aborted) {
      await pause(ok ? interval : Math.min(interval, 200), h.stop.signal);
      if (h.stop.signal.aborted) return;
      const attempt = refreshOnce(h, c, interval);
      h.inflight = attempt.then(() => undefined);
      ok = await attempt;
    }
  }

  async function campaignOnce(signal: AbortSignal): Promise<Leadership | undefined> {
    const c = await connection();
    ensureObserving();
    const sentAt = realClock.now();
    let term: number;
    try {
      // Not abortable: a create that lands must be known, to be taken back below.
      term = await c.leaders.create(LEADER_KEY, encodeCandidate(candidate));
    } catch (err) {
      if (signal.aborted || !isWrongSequence(err)) throw err;
      // Someone leads: wait until nobody does (the observation follows lapses too), or one TTL.
      void check().catch(() => undefined);
      await feed.until((view) => view === null, { signal, timeoutMs: c.ttlMs });
      await pause(20, signal);
      return undefined;
    }
    const h: HeldTerm = {
      term,
      revision: term,
      inflight: Promise.resolve(),
      stop: new AbortController(),
      deadline: createDeadline(sentAt + c.ttlMs - stepDownMarginMs(c.ttlMs), () =>
        loseTerm(
          term,
          'unreachable',
          `nats at ${where} has not confirmed a refresh of the leader key in time (ttl ${c.ttlMs} ms); stepped down before it could lapse`,
        ),
      ),
    };
    if (signal.aborted) {
      stopHeld(h);
      await c.leaders.delete(LEADER_KEY, { previousSeq: term }).catch(() => undefined);
      throw signal.reason;
    }
    held = h;
    const dueAt = sentAt + c.ttlMs + EXPIRY_SLACK_MS;
    learn(term, { leader: { ...candidate }, term }, dueAt);
    scheduleCheck(dueAt - realClock.now());
    void keepRefreshing(h, c);
    return { leader: { ...candidate }, term };
  }

  return {
    backend: 'nats',
    stack: options.stack,
    candidate: { ...candidate },

    async campaign(signal?: AbortSignal): Promise<Leadership> {
      if (closed) throw electionClosed('nats');
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

    leader: readLeader,

    observe(signal?: AbortSignal): AsyncIterable<Leadership | null> {
      // Closed: the feed has ended, so this ends at once.
      if (!closed) ensureObserving();
      return feed.subscribe(anySignal([signal, closing.signal]));
    },

    async resign(): Promise<void> {
      running?.abort.abort(new StackError(`candidate '${candidate.id}' withdrew (resign)`, { code: 'withdrawn' }));
      await running?.done.catch(() => undefined);
      if (!held) return;
      const gone = held;
      held = undefined;
      ended.add(gone.term);
      stopHeld(gone);
      await gone.inflight.catch(() => undefined);
      await withNats('resign', async ({ leaders }) => {
        try {
          await leaders.delete(LEADER_KEY, { previousSeq: gone.revision });
        } catch (err) {
          if (!isWrongSequence(err)) throw err; // not ours any more: nothing to hand over
        }
      });
    },

    onLost: (listener) => lost.add(listener),

    async guard(term: number): Promise<void> {
      if (ended.has(term)) throw new StaleTermError(term, undefined, `candidate '${candidate.id}' no longer holds it`);
      const view = await readLeader();
      if (!view || view.term !== term) throw new StaleTermError(term, view ? view.term : null);
    },

    async fencedWrite(key: string, value: string, term: number): Promise<void> {
      assertFencedKey(key);
      if (ended.has(term)) throw new StaleTermError(term, undefined, `candidate '${candidate.id}' no longer holds it`);
      await withNats(`fenced write of ${key}`, async ({ leaders, fenced }) => {
        const view = viewOf(await leaders.get(LEADER_KEY));
        if (!view || view.term !== term) {
          if (held?.term === term) loseTerm(term, view ? 'taken' : 'expired', `the leader key no longer carries term ${term}`);
          throw new StaleTermError(term, view ? view.term : null);
        }
        const encoded = encodeFenced(value, term, candidate.id);
        for (let attempt = 0; attempt < 20; attempt++) {
          const entry = await fenced.get(key);
          const stored = entry?.operation === 'PUT' ? decodeFenced(entry.string()) : null;
          if (stored && stored.term > term) throw new StaleTermError(term, stored.term, `${key} was written under term ${stored.term}`);
          try {
            if (entry?.operation === 'PUT') await fenced.update(key, encoded, entry.revision);
            else await fenced.create(key, encoded);
            return;
          } catch (err) {
            if (!isWrongSequence(err)) throw err; // another write got in between: look again
          }
        }
        throw new StackError(`fenced write of ${key}: other writers kept changing it`, { code: 'contended' });
      });
    },

    async fencedRead(key: string): Promise<FencedValue | null> {
      assertFencedKey(key);
      return withNats(`read ${key}`, async ({ fenced }) => {
        const entry = await fenced.get(key);
        return entry?.operation === 'PUT' ? decodeFenced(entry.string()) : null;
      });
    },

    async close(): Promise<void> {
      if (closed) return;
      running?.abort.abort(electionClosed('nats'));
      await running?.done.catch(() => undefined);
      closed = true;
      closing.abort(electionClosed('nats'));
      feed.end();
      clearTimeout(expiryTimer);
      if (held) {
        ended.add(held.term);
        stopHeld(held); // no delete: the key lapses after one TTL
        held = undefined;
      }
      reconnectListeners.clear();
      const pending = shared.take();
      await drainPending(pending?.then((c) => c.nc));
      await observing;
    },
  };
}

/** JetStream's "wrong last sequence" (10071): the key is not at the revision the write expected. */
function isWrongSequence(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  return e?.code === 10071 || /wrong last sequence|10071/i.test(String(e?.message ?? err));
}
