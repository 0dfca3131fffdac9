/**
 * Leader election on Consul (issue #15; the interface is in `election.ts`): a session with a TTL
 * and a lock on a KV key, as in Consul's leader-election pattern.
 *
 * Layout, in the KV store (`atproto-stacks/stacks/<stack>/…`):
 *   leader          the lock: held by the leader's session, its value the leader as JSON
 *   fenced/<key>    values written by `fencedWrite`, each carrying its term
 *
 * - Session: `PUT /v1/session/create` with TTL = half the stack's ttl, Behavior `release`, a
 *   short LockDelay, and no health checks. Consul only promises that a session is not
 *   invalidated before its TTL; its servers arm the timer with twice the TTL
 *   (SessionTTLMultiplier), so a session left unrenewed lapses between one and two TTLs after
 *   its last renew. Half the stack's ttl keeps that lapse — what a dead leader's successor waits
 *   for — within one stack ttl, as on etcd and NATS. The TTL must be at least the servers'
 *   `session_ttl_min` (10 s by default, so ttl ≥ 20 s there); Consul's refusal is reported so.
 *   No checks: the default `serfHealth` would let Consul invalidate the session of a leader cut
 *   off from the servers at a moment the leader cannot know, while TTL-only sessions lapse no
 *   sooner than the leader steps down (below). `release` (Consul's default) leaves the key with no
 *   Session, which observers read as "nobody leads"; `delete` would make every lock a fresh key,
 *   and LockIndex restart at 1.
 * - Campaign: a transaction with the `lock` verb on the leader key (the same operation as
 *   `PUT /v1/kv/<key>?acquire=<session>`, with the same lock-delay check) that answers the entry
 *   it wrote: the term is that write's ModifyIndex. ModifyIndex is the Raft index of the write, so
 *   a later acquire always has a greater one, for as long as the cluster keeps its Raft log; the
 *   leader never writes its key again during its term, so the key's ModifyIndex *is* the term
 *   for every reader. LockIndex counts acquisitions of one key and restarts if the key is
 *   deleted, so it is not used. A lock refused for the lock-delay is tried again shortly; one held
 *   by another session is tried again once the observation shows it free (or a TTL later).
 * - Keep: the session is renewed (`PUT /v1/session/renew/:id`) every third of its TTL; a 404 means
 *   Consul invalidated it (`expired`). Observers and the leader follow the key with blocking
 *   queries (index kept ≥ 1, paced by a token bucket like the backend's watch); a key whose
 *   Session or ModifyIndex is no longer the leader's ends its term (`taken`, `expired`).
 * - Stepping down: a renew (or the create) sent at t proves the session lives until t + TTL; when
 *   that time, less `stepDownMarginMs`, passes without a newer proof, the leader steps down
 *   (`unreachable`) before Consul may invalidate the session and let another candidate lock.
 * - Resign: release the key (`?release=<session>`), then destroy the session: released first, the
 *   key is free at once, with no lock-delay (Consul applies lock-delay to keys a session still
 *   holds when it is invalidated). A term lost or stepped down from is let go the same way, in
 *   the background. `close` lets a held term lapse, as a crash would.
 * - Fencing: a fenced write is one transaction — `check-index` (the leader key's ModifyIndex is the
 *   term), `check-session` (still locked by that term's session), then `set` — so Consul itself
 *   refuses a write from a term that has ended, whatever the writer believes.
 *
 * Every call has a timeout. Plain HTTP(S) through node's own client; nothing heavy is loaded.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { ExitCode, StackError } from '../errors.js';
import { pause, realClock } from '../util/clock.js';
import { backoffAt } from '../util/retry.js';
import { createTokenBucket, isStaleSocket, nextBlockingIndex, toStackError } from './consul-rules.js';
import { consulTarget } from './consul.js';
import type { ConsulConfig } from './drivers/consul.js';
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
import { RECONNECT_BACKOFF } from './resync.js';
import { anySignal } from './watch.js';

/** The KV root of everything the election writes. */
const KV_ROOT = 'atproto-stacks/stacks';
/** How long one blocking query on the leader key may wait before it is simply asked again. */
const BLOCKING_WAIT_S = 55;
/** Every other call: an agent that does not answer within this is unreachable. */
const CALL_TIMEOUT_MS = 5000;
/** Watch pacing, as the backend's: a burst of 3, then one every 250 ms while answers come back at once. */
const WATCH_BURST = 3;
const WATCH_REFILL_MS = 250;
/** How long a stepped-down or withdrawn candidate keeps trying to release its key and destroy its session. */
const LET_GO_MIN_MS = 10_000;

/** Knobs for tests; the profile does not set them. */
export interface ConsulElectionTuning {
  callTimeoutMs?: number;
  watchBurst?: number;
  watchRefillMs?: number;
}

/** The session TTL for a stack ttl: half of it (Consul lapses an unrenewed session between one and two TTLs). */
export function consulSessionTtlMs(ttlMs: number): number {
  return Math.max(500, Math.floor(ttlMs / 2));
}

/** The lock-delay the election's sessions carry: the step-down margin of the stack ttl (50 ms to 1 s). */
export function consulLockDelayMs(ttlMs: number): number {
  return stepDownMarginMs(ttlMs);
}

interface Reply {
  status: number;
  /** `X-Consul-Index`. */
  index: string | undefined;
  text: string;
}

interface KvEntry {
  Key: string;
  Value: string | null;
  Session?: string;
  LockIndex: number;
  CreateIndex: number;
  ModifyIndex: number;
}

interface TxnAnswer {
  Results: { KV?: KvEntry }[] | null;
  Errors: { OpIndex: number; What: string }[] | null;
}

/** A session this candidate created: renewed until it is let go. */
interface SessionLease {
  id: string;
  /** Consul keeps it at least until then: the send time of the create or of the latest renew it answered, plus the TTL. */
  confirmedUntil: number;
  gone: boolean;
  stop: AbortController;
  onConfirmed?: (until: number) => void;
  onGone?: () => void;
}

interface HeldTerm {
  term: number;
  lease: SessionLease;
  deadline: Deadline;
}

export async function createConsulElection(config: ConsulConfig, options: ElectionOptions, tuning: ConsulElectionTuning = {}): Promise<Election> {
  validateElectionOptions(options);
  const target = consulTarget(config);
  const where = target.display;
  const callTimeoutMs = tuning.callTimeoutMs ?? CALL_TIMEOUT_MS;
  const ttlMs = options.ttlMs;
  const sessionTtlMs = consulSessionTtlMs(ttlMs);
  const margin = stepDownMarginMs(sessionTtlMs);
  const lockDelayMs = consulLockDelayMs(ttlMs);
  const renewEveryMs = Math.max(100, Math.floor(sessionTtlMs / 3));
  const base = `${KV_ROOT}/${options.stack}`;
  const leaderKey = `${base}/leader`;
  const fencedPrefix = `${base}/fenced/`;
  const candidate = { ...options.candidate };
  const feed = new LeaderFeed();
  const lost = new LostListeners();
  /** Terms this candidate held and lost or gave up: writes under them are refused without asking. */
  const ended = new Set<number>();
  const closing = new AbortController();
  const lettingGo = new Set<Promise<void>>();
  let closed = false;
  let running: { abort: AbortController; done: Promise<unknown> } | undefined;
  let held: HeldTerm | undefined;
  /** The session of the campaign under way, once created. */
  let candidacy: SessionLease | undefined;
  let observing: Promise<void> | undefined;
  /** The newest view of the leader key this candidate has read, and the index it was read at. */
  let latest: { view: Leadership | null; revision: number } | undefined;

  const tls = config.tls;
  const agentOptions = {
    keepAlive: true,
    ...(tls?.ca ? { ca: readFileSync(tls.ca) } : {}),
    ...(tls?.cert ? { cert: readFileSync(tls.cert) } : {}),
    ...(tls?.key ? { key: readFileSync(tls.key) } : {}),
    ...(tls?.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
  };
  const agent = target.secure ? new https.Agent(agentOptions) : new http.Agent({ keepAlive: true });

  // ---- HTTP ----

  function send(
    method: string,
    path: string,
    opts: { query?: Record<string, string>; body?: string; timeoutMs?: number; signal?: AbortSignal },
  ): Promise<Reply> {
    const query = new URLSearchParams(opts.query ?? {}).toString();
    const timeoutMs = opts.timeoutMs ?? callTimeoutMs;
    return new Promise<Reply>((resolve, reject) => {
      const headers: Record<string, string | number> = {};
      if (config.consulToken) headers['X-Consul-Token'] = config.consulToken;
      if (opts.body !== undefined) headers['Content-Length'] = Buffer.byteLength(opts.body);
      const req = (target.secure ? https : http).request({
        host: target.host,
        port: target.port,
        method,
        path: `${path}${query ? `?${query}` : ''}`,
        headers,
        agent,
      });
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      const onAbort = () => req.destroy(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      req.on('error', (err) => {
        done();
        reject(err);
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => {
          done();
          reject(err);
        });
        res.on('end', () => {
          done();
          const index = res.headers['x-consul-index'];
          resolve({ status: res.statusCode ?? 0, index: Array.isArray(index) ? index[0] : index, text: Buffer.concat(chunks).toString('utf8') });
        });
      });
      if (opts.signal?.aborted) onAbort();
      req.end(opts.body);
    });
  }

  /** One call; a pooled keep-alive socket to an agent that restarted fails once, so it is tried once more. */
  async function call(method: string, path: string, opts: Parameters<typeof send>[2] = {}): Promise<Reply> {
    try {
      return await send(method, path, opts);
    } catch (err) {
      if (!isStaleSocket(err) || opts.signal?.aborted) throw err;
      return send(method, path, opts);
    }
  }

  /** An answer that is not a success, as the error the rest of `stack` understands. */
  function failure(reply: Reply, what: string): unknown {
    if (reply.status === 500 && /Invalid Session TTL/i.test(reply.text)) {
      return new StackError(
        `consul (${where}) refused a session TTL of ${sessionTtlMs} ms (half the stack's ttl of ${ttlMs} ms): ${reply.text.trim()}. ` +
          `Consul servers refuse TTLs below session_ttl_min (10 s unless configured): raise discovery.ttl to at least twice it, or lower session_ttl_min on the servers`,
        { code: 'invalid_election', exitCode: ExitCode.invalidInput },
      );
    }
    const err = Object.assign(new Error(`HTTP ${reply.status}: ${reply.text.trim().slice(0, 300)}`), {
      statusCode: reply.status,
      response: { statusCode: reply.status, body: reply.text },
    });
    return toStackError(err, what, where);
  }

  async function withConsul<T>(what: string, op: () => Promise<T>): Promise<T> {
    if (closed) throw electionClosed('consul');
    try {
      return await op();
    } catch (err) {
      throw toStackError(err, what, where);
    }
  }

  async function txn(ops: unknown[], what: string): Promise<{ ok: true; results: { KV?: KvEntry }[] } | { ok: false; errors: string[] }> {
    const reply = await call('PUT', '/v1/txn', { body: JSON.stringify(ops) });
    if (reply.status === 200) return { ok: true, results: (JSON.parse(reply.text) as TxnAnswer).Results ?? [] };
    if (reply.status !== 409) throw failure(reply, what);
    const errors = ((JSON.parse(reply.text) as TxnAnswer).Errors ?? []).map((e) => e.What);
    // A refused right is a 409 inside a transaction (kvsPreApply): it is no conflict of terms.
    if (errors.some((e) => /permission denied|ACL not found/i.test(e))) {
      throw failure({ status: 403, index: undefined, text: errors.join('; ') }, what);
    }
    return { ok: false, errors };
  }

  const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
  const kvPath = (key: string) => `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`;

  function viewOf(entry: KvEntry | undefined): Leadership | null {
    if (!entry?.Session) return null;
    const text = entry.Value ? Buffer.from(entry.Value, 'base64').toString('utf8') : '';
    return { leader: decodeCandidate(text).candidate, term: entry.ModifyIndex };
  }

  async function readLeaderEntry(): Promise<KvEntry | undefined> {
    return withConsul('read the leader', async () => {
      const reply = await call('GET', kvPath(leaderKey));
      if (reply.status === 404) return undefined;
      if (reply.status !== 200) throw failure(reply, 'read the leader');
      return (JSON.parse(reply.text) as KvEntry[])[0];
    });
  }

  async function readLeader(): Promise<Leadership | null> {
    return viewOf(await readLeaderEntry());
  }

  async function currentTerm(): Promise<number | null | undefined> {
    return readLeader().then(
      (view) => view?.term ?? null,
      () => undefined,
    );
  }

  // ---- sessions ----

  async function openSession(): Promise<SessionLease> {
    const sentAt = realClock.now();
    const reply = await call('PUT', '/v1/session/create', {
      body: JSON.stringify({
        Name: `atproto-stacks ${options.stack} leader: ${candidate.id}`,
        TTL: `${sessionTtlMs}ms`,
        Behavior: 'release',
        LockDelay: `${lockDelayMs}ms`,
        // No health checks (not even the default serfHealth): only the TTL and a destroy end it.
        Checks: [],
        NodeChecks: [],
      }),
    });
    if (reply.status !== 200) throw failure(reply, 'create a session');
    const { ID } = JSON.parse(reply.text) as { ID: string };
    const lease: SessionLease = { id: ID, confirmedUntil: sentAt + sessionTtlMs, gone: false, stop: new AbortController() };
    void keepRenewing(lease);
    return lease;
  }

  async function renewOnce(lease: SessionLease): Promise<boolean> {
    const sentAt = realClock.now();
    try {
      const reply = await call('PUT', `/v1/session/renew/${lease.id}`, { timeoutMs: renewEveryMs, signal: lease.stop.signal });
      if (reply.status === 404) {
        lease.gone = true;
        lease.stop.abort();
        lease.onGone?.();
        return false;
      }
      if (reply.status !== 200) return false;
      const until = sentAt + sessionTtlMs;
      if (until > lease.confirmedUntil && !lease.stop.signal.aborted) {
        lease.confirmedUntil = until;
        lease.onConfirmed?.(until);
      }
      return true;
    } catch {
      return false;
    }
  }

  async function keepRenewing(lease: SessionLease): Promise<void> {
    let ok = true;
    while (!lease.stop.signal.aborted) {
      await pause(ok ? renewEveryMs : Math.min(renewEveryMs, 200), lease.stop.signal);
      if (lease.stop.signal.aborted) return;
      ok = await renewOnce(lease);
    }
  }

  /** Release the key if `release` (it may still hold it) and destroy the session: tried again with back-off for a while. */
  function letGo(lease: SessionLease, release: boolean): void {
    lease.stop.abort();
    const job = (async () => {
      const giveUpAt = realClock.now() + Math.max(LET_GO_MIN_MS, 2 * ttlMs);
      for (let attempt = 0; !lease.gone; attempt++) {
        try {
          if (release) {
            const r = await send('PUT', kvPath(leaderKey), { query: { release: lease.id }, body: encodeCandidate(candidate) });
            if (r.status !== 200) throw failure(r, 'release the leader key');
          }
          const d = await send('PUT', `/v1/session/destroy/${lease.id}`, {});
          if (d.status !== 200) throw failure(d, 'destroy the session');
          lease.gone = true;
        } catch {
          if (closed || realClock.now() >= giveUpAt) return; // it lapses by its TTL
          await pause(backoffAt(attempt, RECONNECT_BACKOFF), closing.signal);
        }
      }
    })();
    lettingGo.add(job);
    void job.finally(() => lettingGo.delete(job));
  }

  // ---- the term ----

  /** What this candidate now knows of the leader key (read at `revision`): published, and checked against the term it holds. */
  function learn(view: Leadership | null, revision: number): void {
    if (!latest || revision >= latest.revision) latest = { view, revision };
    feed.publish(view, revision);
    if (held && revision >= held.term && (view === null || view.term !== held.term)) {
      const why = view ? `the leader key is now held under term ${view.term} (candidate '${view.leader.id}')` : 'the leader key is no longer locked';
      loseTerm(held.term, view ? 'taken' : 'expired', why);
    }
  }

  function loseTerm(term: number, reason: LostReason, message: string): void {
    if (!held || held.term !== term) return;
    const gone = held;
    held = undefined;
    ended.add(term);
    gone.deadline.stop();
    gone.lease.onConfirmed = undefined;
    gone.lease.onGone = undefined;
    letGo(gone.lease, true);
    lost.emit({ term, reason, message });
  }

  function win(lease: SessionLease, term: number): Leadership {
    const deadline = createDeadline(lease.confirmedUntil - margin, () =>
      loseTerm(
        term,
        'unreachable',
        `consul at ${where} has not confirmed a renewal of the leader's session in time (session ttl ${sessionTtlMs} ms); stepped down before it could lapse`,
      ),
    );
    lease.onConfirmed = (until) => deadline.extend(until - margin);
    lease.onGone = () => loseTerm(term, 'expired', `consul invalidated the leader's session (a renew answered 404)`);
    held = { term, lease, deadline };
    candidacy = undefined;
    const seen = latest;
    learn({ leader: { ...candidate }, term }, term);
    // The observation may already have read the key after this lock (say, released again): that decides.
    if (seen && seen.revision > term) learn(seen.view, seen.revision);
    return { leader: { ...candidate }, term };
  }

  const attempts = createTokenBucket(WATCH_BURST, WATCH_REFILL_MS);

  /** One attempt to lock the leader key: the term once elected; undefined to try again. */
  async function campaignOnce(signal: AbortSignal): Promise<Leadership | undefined> {
    ensureObserving();
    await attempts(signal);
    signal.throwIfAborted();
    if (!candidacy || candidacy.gone) candidacy = await openSession();
    const lease = candidacy;
    // Not abortable: a lock that lands must be known, to be let go below.
    const res = await txn([{ KV: { Verb: 'lock', Key: leaderKey, Value: b64(encodeCandidate(candidate)), Session: lease.id } }], 'campaign');
    if (res.ok) {
      const term = res.results[0]?.KV?.ModifyIndex;
      if (typeof term !== 'number') throw new StackError(`consul (${where}) answered a lock without the entry it wrote`, { code: 'discovery_error' });
      if (signal.aborted || lease.gone) throw signal.reason ?? new StackError('the session lapsed while locking', { code: 'discovery_error' });
      return win(lease, term);
    }
    const what = res.errors.join('; ');
    if (/lock delay/i.test(what)) {
      // A session holding the key was invalidated a moment ago: Consul refuses it for the lock-delay.
      await pause(Math.min(100, Math.max(25, Math.floor(lockDelayMs / 4))), signal);
    } else if (/invalid session|missing session/i.test(what)) {
      lease.gone = true; // lapsed or destroyed: a fresh one next time
      lease.stop.abort();
      candidacy = undefined;
    } else if (/already held/i.test(what)) {
      // Someone leads: wait until nobody does (the observation follows releases and lapses), or one TTL.
      await feed.until((view) => view === null, { signal, timeoutMs: ttlMs });
    } else {
      throw new StackError(`consul (${where}) refused the leader lock: ${what}`, { code: 'discovery_error' });
    }
    return undefined;
  }

  async function observeLoop(): Promise<void> {
    let index = 0n;
    let failures = 0;
    const take = createTokenBucket(tuning.watchBurst ?? WATCH_BURST, tuning.watchRefillMs ?? WATCH_REFILL_MS);
    while (!closed) {
      await take(closing.signal);
      if (closed) break;
      try {
        const reply = await call('GET', kvPath(leaderKey), {
          query: { index: index.toString(), wait: `${BLOCKING_WAIT_S}s` },
          timeoutMs: (BLOCKING_WAIT_S + 10) * 1000,
          signal: closing.signal,
        });
        if (reply.status !== 200 && reply.status !== 404) throw failure(reply, 'watch the leader');
        index = nextBlockingIndex(index, reply.index);
        learn(reply.status === 404 ? null : viewOf((JSON.parse(reply.text) as KvEntry[])[0]), Number(index));
        failures = 0;
      } catch {
        if (closed) break;
        failures += 1;
        index = 0n; // after an outage, start over with a fresh, non-blocking read
        await pause(backoffAt(failures, RECONNECT_BACKOFF), closing.signal);
      }
    }
  }

  const ensureObserving = () => void (observing ??= observeLoop());

  /** The session a fenced write checks: this candidate's own for a term it holds; otherwise whoever's holds the key at that term. */
  async function sessionOfTerm(term: number): Promise<string> {
    if (held?.term === term) return held.lease.id;
    const entry = await readLeaderEntry();
    if (!entry?.Session || entry.ModifyIndex !== term) throw new StaleTermError(term, entry?.Session ? entry.ModifyIndex : null);
    return entry.Session;
  }

  return {
    backend: 'consul',
    stack: options.stack,
    candidate: { ...candidate },

    async campaign(signal?: AbortSignal): Promise<Leadership> {
      if (closed) throw electionClosed('consul');
      if (held) return { leader: { ...candidate }, term: held.term };
      if (running) throw new StackError(`candidate '${candidate.id}' is already campaigning`, { code: 'campaigning' });
      const abort = new AbortController();
      const any = anySignal([signal, abort.signal, closing.signal]);
      const done = (async () => {
        try {
          return await campaignUntilWon(campaignOnce, any, (err) => toStackError(err, 'campaign', where));
        } finally {
          // Withdrawn or failed: its session goes (released first, in case a lock landed unseen).
          if (candidacy) {
            letGo(candidacy, true);
            candidacy = undefined;
          }
        }
      })();
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
      gone.deadline.stop();
      gone.lease.stop.abort();
      try {
        await withConsul('resign', async () => {
          // Released first: the key is free at once, with no lock-delay; then the session goes.
          const r = await call('PUT', kvPath(leaderKey), { query: { release: gone.lease.id }, body: encodeCandidate(candidate) });
          if (r.status !== 200) throw failure(r, 'resign');
          const d = await call('PUT', `/v1/session/destroy/${gone.lease.id}`);
          if (d.status !== 200) throw failure(d, 'resign');
          gone.lease.gone = true;
        });
      } catch (err) {
        letGo(gone.lease, true); // keeps trying in the background; the session lapses otherwise
        throw err;
      }
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
      const session = await sessionOfTerm(term);
      const res = await withConsul(`fenced write of ${key}`, () =>
        txn(
          [
            // The leader key is as that term's lock left it (any change bumps its ModifyIndex) …
            { KV: { Verb: 'check-index', Key: leaderKey, Index: term } },
            // … and still locked by that term's session: it leads.
            { KV: { Verb: 'check-session', Key: leaderKey, Session: session } },
            { KV: { Verb: 'set', Key: fencedPrefix + key, Value: b64(encodeFenced(value, term, candidate.id)) } },
          ],
          `fenced write of ${key}`,
        ),
      );
      if (res.ok) return;
      const current = await currentTerm();
      if (held?.term === term) loseTerm(term, current ? 'taken' : 'expired', `consul refused a fenced write under term ${term}`);
      throw new StaleTermError(term, current, `consul refused it (${res.errors.join('; ')})`);
    },

    async fencedRead(key: string): Promise<FencedValue | null> {
      assertFencedKey(key);
      return withConsul(`read ${key}`, async () => {
        const reply = await call('GET', kvPath(fencedPrefix + key));
        if (reply.status === 404) return null;
        if (reply.status !== 200) throw failure(reply, `read ${key}`);
        const entry = (JSON.parse(reply.text) as KvEntry[])[0];
        return entry?.Value ? decodeFenced(Buffer.from(entry.Value, 'base64').toString('utf8')) : null;
      });
    },

    async close(): Promise<void> {
      if (closed) return;
      running?.abort.abort(electionClosed('consul'));
      await running?.done.catch(() => undefined); // a pending candidacy is withdrawn (its session let go)
      closed = true;
      closing.abort(electionClosed('consul'));
      feed.end();
      if (held) {
        ended.add(held.term);
        held.deadline.stop();
        held.lease.stop.abort(); // no more renewals, no release: the term lapses with the session
        held = undefined;
      }
      await Promise.all([...lettingGo]);
      await observing;
      agent.destroy();
    },
  };
}
