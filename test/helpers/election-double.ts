/**
 * An in-process election for engine tests: the `Election` interface of src/discovery/election.ts
 * over one shared hub, with no timers. The test moves it: `expire(id)` is a leader's lease lapsing
 * (its process gone: nobody is told), `cut(id)` a leader that stops hearing the backend (told
 * `unreachable`, then its lease lapses), each handing the term to the longest-waiting candidate,
 * with a greater term. Fenced writes are checked against the current leader's term, as the real
 * backends do.
 */
import {
  LeaderFeed,
  LostListeners,
  StaleTermError,
  type Election,
  type ElectionCandidate,
  type FencedValue,
  type Leadership,
  type LostReason,
} from '../../src/discovery/election.js';

interface Entry {
  candidate: ElectionCandidate;
  lost: LostListeners;
  win: (l: Leadership) => void;
  waiting: boolean;
  closed: boolean;
}

export class ElectionHub {
  /** Grows with every term (and every fenced write), as a backend's revision does. */
  revision = 0;
  current: Leadership | null = null;
  readonly queue: Entry[] = [];
  readonly holders = new Map<string, Entry>();
  readonly feed = new LeaderFeed();
  readonly store = new Map<string, FencedValue>();
  /** Every term granted, in order. */
  readonly terms: Leadership[] = [];
  /** Fenced writes whose value this matches fail once, as a backend that did not answer (not a stale term). */
  failWriteOnce: ((value: string) => boolean) | undefined;

  constructor() {
    this.feed.publish(null);
  }

  /** The leader's lease lapses without its being told (its process is gone); the next candidate leads. */
  expire(id: string): void {
    this.drop(id, null);
  }

  /** The leader stops hearing the backend: it is told (`unreachable`), then its lease lapses and the next leads. */
  cut(id: string): void {
    this.drop(id, 'unreachable');
  }

  private drop(id: string, tell: LostReason | null): void {
    const entry = this.holders.get(id);
    if (!entry || this.current?.leader.id !== id) return;
    const term = this.current.term;
    this.holders.delete(id);
    this.current = null;
    if (tell) entry.lost.emit({ term, reason: tell, message: `term ${term} lost: the backend has not confirmed the lease (${tell})` });
    this.feed.publish(null);
    this.promote();
  }

  promote(): void {
    if (this.current) return;
    const next = this.queue.findIndex((e) => e.waiting && !e.closed);
    if (next < 0) return;
    const [entry] = this.queue.splice(next, 1);
    entry!.waiting = false;
    const won: Leadership = { leader: { ...entry!.candidate }, term: ++this.revision };
    this.current = won;
    this.terms.push(won);
    this.holders.set(won.leader.id, entry!);
    this.feed.publish(won);
    entry!.win(won);
  }

  join(candidate: ElectionCandidate): Election {
    return joinHub(this, candidate);
  }
}

function joinHub(hub: ElectionHub, candidate: ElectionCandidate): Election {
  const lost = new LostListeners();
  let closed = false;
  let entry: Entry | undefined;
  const isMine = () => hub.current?.leader.id === candidate.id && hub.holders.get(candidate.id) === entry;
  const election: Election = {
    backend: 'double',
    stack: 'double',
    candidate,
    campaign(signal) {
      if (closed) return Promise.reject(new Error('closed'));
      if (isMine()) return Promise.resolve(hub.current!);
      return new Promise<Leadership>((resolve, reject) => {
        const mine: Entry = { candidate, lost, win: resolve, waiting: true, closed: false };
        entry = mine;
        hub.queue.push(mine);
        signal?.addEventListener(
          'abort',
          () => {
            if (!mine.waiting) return;
            mine.waiting = false;
            hub.queue.splice(hub.queue.indexOf(mine), 1);
            reject(signal.reason as Error);
          },
          { once: true },
        );
        hub.promote();
      });
    },
    held: () => (isMine() ? hub.current : null),
    leader: async () => hub.current,
    observe: (signal) => hub.feed.subscribe(signal),
    async resign() {
      if (isMine()) {
        hub.holders.delete(candidate.id);
        hub.current = null;
        hub.feed.publish(null);
        hub.promote();
      }
    },
    onLost: (listener) => lost.add(listener),
    async guard(term) {
      if (hub.current?.term !== term) throw new StaleTermError(term, hub.current?.term ?? null);
    },
    async fencedWrite(key, value, term) {
      if (hub.current?.term !== term) throw new StaleTermError(term, hub.current?.term ?? null);
      if (hub.failWriteOnce?.(value)) {
        hub.failWriteOnce = undefined;
        throw new Error('the backend did not answer (deadline exceeded)');
      }
      hub.revision++;
      hub.store.set(key, { value, term, writer: candidate.id, writtenAt: new Date().toISOString() });
    },
    fencedRead: async (key) => hub.store.get(key) ?? null,
    async close() {
      closed = true;
      if (entry?.waiting) {
        entry.waiting = false;
        hub.queue.splice(hub.queue.indexOf(entry), 1);
      }
      // A held term lapses later, as after a crash: `expire` it.
    },
  };
  return election;
}
