/**
 * Leader election on a shared discovery backend (issue #15, item 1): several supervisors of one
 * stack campaign; one leads, with a term; the others observe it and take over when its lease
 * lapses. Each backend uses its own primitives, never a consensus of our own:
 *
 *   etcd    etcd3's `Election` (campaign / observe / resign) on a lease whose TTL is the stack's
 *           ttl; the term is the create revision of the leader's key (`election-etcd.ts`).
 *   NATS    a JetStream KV key created only if absent, refreshed by revision-checked updates,
 *           expiring with the bucket's TTL; the term is the revision of the create (`election-nats.ts`).
 *   Consul  a session with a TTL (half the stack's ttl: Consul lapses it within two) and a
 *           lock-delay, a KV lock on the leader key; the term is the lock's ModifyIndex, and a
 *           fenced write is a transaction with `check-index` and `check-session` (`election-consul.ts`).
 *
 * A term is a number that only grows for as long as the backend keeps its store. Everything a
 * leader writes through `fencedWrite` carries its term, and the backend refuses a write whose
 * term is not the current leader's, so a leader cut off by a partition and healed later cannot
 * act on stale authority.
 *
 * A leader steps down on its own (`onLost`) a margin before its lease can have lapsed on the
 * server when it has heard nothing from the backend, so by the time another candidate can win the
 * next term, the old one has already been told to stop.
 *
 * A backend elects when its definition carries an `election` (`drivers/consul.ts`, `drivers/etcd.ts`, `drivers/nats.ts`);
 * `createElection` picks the first configured one that does, and says clearly when none does.
 */
import { ExitCode, InvalidInputError, StackError, UnsupportedError, type Problem } from '../errors.js';
import { pause, realClock } from '../util/clock.js';
import { backoffAt } from '../util/retry.js';
import { DNS_LABEL } from '../util/names.js';
import { DISCOVERY_DRIVERS, type DiscoveryBackendName, type DiscoveryConfig } from './registry.js';
import { RECONNECT_BACKOFF } from './resync.js';

/** Who campaigns: one supervisor of the stack. */
export interface ElectionCandidate {
  /** Unique among the stack's supervisors (letters, digits, `-`, `_`, `.`, `:`). */
  id: string;
  /** The host it runs on (a name). */
  host: string;
  /** Where it (and the singletons it would run) can be reached. */
  address: string;
}

export interface ElectionOptions {
  /** The stack's name (a DNS label): one election per stack. */
  stack: string;
  candidate: ElectionCandidate;
  /**
   * How long a leader that stopped refreshing keeps its term: the stack's discovery `ttl`. At least
   * 1 s; etcd rounds it up to whole seconds (its leases count seconds), NATS follows its bucket's TTL.
   */
  ttlMs: number;
}

/** A leader and its term. */
export interface Leadership {
  leader: ElectionCandidate;
  term: number;
}

/**
 * Why a leader lost its term:
 * - `expired`: its lease (etcd) or key (NATS) is gone from the backend;
 * - `taken`: another candidate holds a newer term;
 * - `unreachable`: the backend has not confirmed the lease for so long that it may have lapsed
 *   (a partition, a server away): stepped down before anyone else could win.
 */
export type LostReason = 'expired' | 'taken' | 'unreachable';

export interface LeadershipLost {
  term: number;
  reason: LostReason;
  message: string;
}

/** A value written through `fencedWrite`, as stored. */
export interface FencedValue {
  value: string;
  /** The term it was written under. */
  term: number;
  /** The candidate id that wrote it. */
  writer: string;
  /** ISO-8601, the writer's clock. */
  writtenAt: string;
}

export interface Election {
  /** The backend's name (`consul`, `etcd`, `nats`). */
  readonly backend: string;
  readonly stack: string;
  readonly candidate: ElectionCandidate;
  /**
   * Campaign until this candidate leads; resolves with its term. Already leading: resolves at
   * once with the term it holds. Aborting the signal (or `resign`, or `close`) withdraws the
   * candidacy and rejects with the signal's reason. A backend away is waited out (with back-off);
   * only bad credentials or bad settings reject. After `onLost`, campaign again to stand anew.
   */
  campaign(signal?: AbortSignal): Promise<Leadership>;
  /** The term this candidate holds now, or null. No round trip. */
  held(): Leadership | null;
  /** The current leader as the backend has it now (one read), or null when nobody leads. */
  leader(): Promise<Leadership | null>;
  /**
   * The leader, then every change: a new leader or term, or null when nobody leads (a lease
   * lapsed, a resignation). Ends when the signal aborts or the election is closed.
   */
  observe(signal?: AbortSignal): AsyncIterable<Leadership | null>;
  /** Give up the term at once (the next candidate takes over without waiting a TTL), or withdraw a running campaign. */
  resign(): Promise<void>;
  /** Called once per term lost without resigning. Returns the unsubscribe. */
  onLost(listener: (lost: LeadershipLost) => void): () => void;
  /** Throws `StaleTermError` unless `term` is the current leader's term. */
  guard(term: number): Promise<void>;
  /**
   * Write `value` at `key` (segments of letters, digits, `-`, `_`, joined by `/`), carrying
   * `term`; the backend refuses it (`StaleTermError`) unless `term` is the current leader's.
   * etcd checks it in the same transaction as the write; NATS checks the leader key's term and
   * then writes with a revision check that never replaces a value of a newer term.
   */
  fencedWrite(key: string, value: string, term: number): Promise<void>;
  /** What `fencedWrite` stored at `key`, or null. */
  fencedRead(key: string): Promise<FencedValue | null>;
  /**
   * Let go without handing over, as a crash would: a held term lapses after one TTL (call
   * `resign` first to hand over at once); a pending candidacy is withdrawn.
   */
  close(): Promise<void>;
}

/** What a discovery driver's definition carries when its backend elects (`Electing<Config>`). */
export interface ElectionDriver<Config> {
  /** One line: the primitives it uses. */
  readonly description: string;
  /** Loads the implementation (and its client library) on call. */
  create(config: Config, options: ElectionOptions): Promise<Election>;
}

/** A discovery driver definition whose backend can elect. */
export interface Electing<Config> {
  readonly election: ElectionDriver<Config>;
}

/** A write or a check carried a term that is not the current leader's. */
export class StaleTermError extends StackError {
  readonly term: number;
  /** The current leader's term, when known; null when nobody leads. */
  readonly current: number | null | undefined;
  constructor(term: number, current: number | null | undefined, detail?: string) {
    const now = current === undefined ? '' : current === null ? ' (nobody leads now)' : ` (the current term is ${current})`;
    super(`term ${term} is not the current leader's term${now}${detail ? `: ${detail}` : ''}; the write is refused`, {
      code: 'stale_term',
      exitCode: ExitCode.stackFailed,
    });
    this.term = term;
    this.current = current;
  }
}

/** The backends whose definitions elect, in registry order. */
export function electionBackends(): DiscoveryBackendName[] {
  return DISCOVERY_DRIVERS.filter((d) => 'election' in d).map((d) => d.name);
}

/** Whether the named backend can elect. */
export function canElect(name: string): boolean {
  return electionBackends().some((n) => n === name);
}

export interface CreateElectionOptions extends Omit<ElectionOptions, 'ttlMs'> {
  /** Default: the discovery settings' `ttlMs`. */
  ttlMs?: number;
  /** Elect through this backend; default: the first of `config.backends` that elects. */
  backend?: DiscoveryBackendName;
}

/**
 * An election for a stack on its discovery settings. Throws `UnsupportedError` when the chosen
 * backend (or every configured one) cannot elect, naming the ones that can.
 */
export async function createElection(config: DiscoveryConfig, options: CreateElectionOptions): Promise<Election> {
  const names = options.backend ? [options.backend] : config.backends;
  const electing = electionBackends();
  const name = names.find((n) => electing.includes(n));
  const driver = DISCOVERY_DRIVERS.find((d) => d.name === name);
  if (!driver || !('election' in driver)) {
    const what = names.length === 0 ? 'discovery without a backend' : `discovery backend${names.length === 1 ? '' : 's'} ${names.join(', ')}`;
    throw new UnsupportedError(what, `leader election (backends that elect: ${electing.join(', ')})`);
  }
  const { backend: _, ttlMs, ...rest } = options;
  const electionOptions: ElectionOptions = { ...rest, ttlMs: ttlMs ?? config.ttlMs };
  validateElectionOptions(electionOptions);
  // Every electing driver takes the whole discovery settings (its own options are among them).
  return driver.election.create(config, electionOptions);
}

/** The shortest TTL an election takes: etcd's leases count whole seconds. */
export const MIN_ELECTION_TTL_MS = 1000;

/** Every problem with the options at once (InvalidInputError). */
export function validateElectionOptions(options: ElectionOptions): void {
  const problems: Problem[] = [];
  const problem = (path: string, message: string) => problems.push({ code: 'invalid_election', path, message });
  if (!DNS_LABEL.test(options.stack)) problem('stack', `'${options.stack}' is not a valid stack name (a DNS label: a-z, 0-9, '-')`);
  const { id, host, address } = options.candidate ?? {};
  if (typeof id !== 'string' || !/^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,252}$/.test(id) || id.includes('..')) {
    problem('candidate.id', `'${String(id)}' is not a valid candidate id (letters, digits, '-', '_', '.', ':')`);
  }
  if (typeof host !== 'string' || host === '') problem('candidate.host', 'the candidate needs a host name');
  if (typeof address !== 'string' || address === '') problem('candidate.address', 'the candidate needs an address');
  if (!Number.isFinite(options.ttlMs) || options.ttlMs < MIN_ELECTION_TTL_MS) {
    problem('discovery.ttl', `an election needs a ttl of at least ${MIN_ELECTION_TTL_MS} ms (got ${String(options.ttlMs)})`);
  }
  if (problems.length > 0) throw new InvalidInputError(problems, 'invalid election settings');
}

const FENCED_KEY = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;

export function assertFencedKey(key: string): void {
  if (!FENCED_KEY.test(key) || key.length > 200) {
    throw new InvalidInputError(
      [{ code: 'invalid_key', path: 'key', message: `'${key}' is not a valid fenced key (segments of letters, digits, '-', '_', joined by '/')` }],
      'invalid fenced write',
    );
  }
}

export function encodeFenced(value: string, term: number, writer: string): string {
  return JSON.stringify({ term, value, writer, writtenAt: new Date().toISOString() } satisfies FencedValue);
}

/** A stored fenced value; null for anything else (a value written by another tool). */
export function decodeFenced(text: string): FencedValue | null {
  try {
    const v = JSON.parse(text) as Partial<FencedValue>;
    if (typeof v.term !== 'number' || typeof v.value !== 'string') return null;
    return { value: v.value, term: v.term, writer: String(v.writer ?? ''), writtenAt: String(v.writtenAt ?? '') };
  } catch {
    return null;
  }
}

export function encodeCandidate(candidate: ElectionCandidate, term?: number): string {
  const { id, host, address } = candidate;
  return JSON.stringify(term === undefined ? { id, host, address } : { id, host, address, term });
}

/** A stored candidate (and the term stamped on it, if any); an unreadable value is named by its text. */
export function decodeCandidate(text: string): { candidate: ElectionCandidate; term?: number } {
  try {
    const v = JSON.parse(text) as Partial<ElectionCandidate> & { term?: unknown };
    if (typeof v.id === 'string') {
      const candidate = { id: v.id, host: String(v.host ?? ''), address: String(v.address ?? '') };
      return typeof v.term === 'number' ? { candidate, term: v.term } : { candidate };
    }
  } catch {
    // not ours: fall through
  }
  return { candidate: { id: text, host: '', address: '' } };
}

/**
 * How long before its lease can lapse on the server a leader that hears nothing steps down: a
 * tenth of the TTL, between 50 ms and 1 s. The next leader cannot be elected before the lapse,
 * so this is the time the old one has to stop what only a leader may do.
 */
export function stepDownMarginMs(ttlMs: number): number {
  return Math.min(1000, Math.max(50, Math.floor(ttlMs / 10)));
}

export function sameView(a: Leadership | null, b: Leadership | null): boolean {
  if (a === null || b === null) return a === b;
  return a.term === b.term && a.leader.id === b.leader.id;
}

/**
 * The leader as last seen, fanned out to any number of observers. Publishing the same view
 * again is not a change; a view read at an older backend revision than the last one is ignored.
 */
export class LeaderFeed {
  #current: Leadership | null | undefined = undefined;
  #revision = -Infinity;
  #listeners = new Set<(view: Leadership | null) => void>();
  #ended = false;
  #wakeAll = new Set<() => void>();

  /** The last view; undefined before the first. */
  get current(): Leadership | null | undefined {
    return this.#current;
  }

  publish(view: Leadership | null, revision?: number): void {
    if (this.#ended) return;
    if (revision !== undefined) {
      if (revision < this.#revision) return;
      this.#revision = revision;
    }
    if (this.#current !== undefined && sameView(this.#current, view)) return;
    this.#current = view;
    for (const listener of [...this.#listeners]) listener(view);
  }

  /** Ends every subscription. */
  end(): void {
    this.#ended = true;
    for (const wake of [...this.#wakeAll]) wake();
  }

  /** The current view (once known), then every change, until the signal aborts or the feed ends. */
  async *subscribe(signal?: AbortSignal): AsyncGenerator<Leadership | null> {
    const queue: (Leadership | null)[] = this.#current === undefined ? [] : [this.#current];
    let wake: (() => void) | undefined;
    const wakeUp = () => wake?.();
    const listener = (view: Leadership | null) => {
      queue.push(view);
      wakeUp();
    };
    this.#listeners.add(listener);
    this.#wakeAll.add(wakeUp);
    signal?.addEventListener('abort', wakeUp);
    try {
      while (!signal?.aborted && !this.#ended) {
        if (queue.length > 0) {
          yield queue.shift()!;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (queue.length > 0 || signal?.aborted || this.#ended) resolve();
        });
        wake = undefined;
      }
    } finally {
      this.#listeners.delete(listener);
      this.#wakeAll.delete(wakeUp);
      signal?.removeEventListener('abort', wakeUp);
    }
  }

  /**
   * The first view (the current one included) that passes `test`; undefined when `timeoutMs`
   * passes, the signal aborts or the feed ends first.
   */
  until(test: (view: Leadership | null) => boolean, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Leadership | null | undefined> {
    if (this.#current !== undefined && test(this.#current)) return Promise.resolve(this.#current);
    if (this.#ended || opts.signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (view: Leadership | null | undefined) => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
        this.#wakeAll.delete(onEnd);
        opts.signal?.removeEventListener('abort', onEnd);
        resolve(view);
      };
      const listener = (view: Leadership | null) => {
        if (test(view)) done(view);
      };
      const onEnd = () => done(undefined);
      this.#listeners.add(listener);
      this.#wakeAll.add(onEnd);
      opts.signal?.addEventListener('abort', onEnd);
      if (opts.timeoutMs !== undefined) timer = setTimeout(onEnd, opts.timeoutMs);
    });
  }
}

/** The `onLost` listeners; each lost term is told once. */
export class LostListeners {
  #listeners = new Set<(lost: LeadershipLost) => void>();
  #told = new Set<number>();

  add(listener: (lost: LeadershipLost) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(lost: LeadershipLost): void {
    if (this.#told.has(lost.term)) return;
    this.#told.add(lost.term);
    for (const listener of [...this.#listeners]) {
      try {
        listener(lost);
      } catch {
        // a listener's failure is its own; the others are still told
      }
    }
  }
}

/**
 * A watchdog: calls `onExpired` once when the monotonic clock passes the deadline, unless it was
 * extended first. `extend` only ever moves the deadline later.
 */
export interface Deadline {
  readonly at: number;
  extend(at: number): void;
  stop(): void;
}

export function createDeadline(at: number, onExpired: () => void): Deadline {
  let deadline = at;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = () => {
    clearTimeout(timer);
    if (stopped) return;
    timer = setTimeout(
      () => {
        if (stopped) return;
        if (realClock.now() < deadline) return arm(); // a timer may fire a little early
        stopped = true;
        onExpired();
      },
      Math.max(0, deadline - realClock.now()),
    );
    timer.unref?.();
  };
  arm();
  return {
    get at() {
      return deadline;
    },
    extend(next: number) {
      if (stopped || next <= deadline) return;
      deadline = next;
      arm();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** `promise`, or a rejection with the signal's reason as soon as it aborts. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** The error a closed election's calls fail with. */
export function electionClosed(backend: string): StackError {
  return new StackError(`the ${backend} election is closed`, { code: 'closed' });
}

/** Errors a campaign gives up on rather than waiting out: bad credentials, bad settings, a closed election. */
export function isFatalCampaignError(err: unknown): boolean {
  if (!(err instanceof StackError)) return false;
  return err.code === 'unauthorized' || err.code === 'closed' || err.exitCode === ExitCode.invalidInput;
}

/**
 * Every backend's campaign: try `once` until it wins. A backend that is away is waited out with
 * back-off (reset by every attempt that got an answer); a fatal error (bad settings, credentials,
 * closed) or an abort ends it.
 */
export async function campaignUntilWon(
  once: (signal: AbortSignal) => Promise<Leadership | undefined>,
  signal: AbortSignal,
  toError: (err: unknown) => unknown,
): Promise<Leadership> {
  for (let failures = 0; ;) {
    signal.throwIfAborted();
    try {
      const won = await once(signal);
      if (won) return won;
      failures = 0;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const e = toError(err);
      if (isFatalCampaignError(e)) throw e;
      failures += 1;
      await pause(backoffAt(failures, RECONNECT_BACKOFF), signal);
    }
  }
}
