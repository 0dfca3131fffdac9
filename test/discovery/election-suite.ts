/**
 * The election suite every electing backend runs (test/discovery/election-<backend>.test.ts),
 * against a real server, and a TCP proxy that can cut one candidate off (a partition: nothing
 * flows either way, what was sent is delivered when it heals, as TCP would after retransmits).
 *
 * Waits poll (waitFor) with generous deadlines; no test asserts how long anything took. What is
 * asserted is order where it is the point: a cut-off leader steps down before anyone else is
 * elected.
 */
import net from 'node:net';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { StaleTermError, type Election, type Leadership, type LeadershipLost } from '../../src/discovery/election.js';
import { waitFor } from '../helpers/net.js';

export const TTL_MS = 2000;
/** Long enough for any hand-over here (a TTL plus slack), on a loaded machine. */
const DEADLINE_MS = 30_000;

export interface ElectionTarget {
  /** A candidate of `stack`; `via`: connect through this proxy port instead of the server. */
  make(stack: string, id: string, opts?: { viaPort?: number }): Promise<Election>;
  /** The server's loopback port (what a proxy forwards to). */
  port(): number;
  /** Stop the server (keeping its data); `start` brings the same one back. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

let stacks = 0;

export function describeElection(name: string, target: () => ElectionTarget): void {
  const opened: Election[] = [];
  const proxies: Proxy[] = [];
  const make = async (stack: string, id: string, opts?: { viaPort?: number }) => {
    const e = await target().make(stack, id, opts);
    opened.push(e);
    return e;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((e) => e.close().catch(() => undefined)));
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });
  afterAll(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });

  /** Three candidates of a fresh stack, all campaigning; resolves once one leads. */
  async function threeCampaigning() {
    const stack = `${name}-e${process.pid % 10000}-${++stacks}`;
    const candidates = await Promise.all(['a', 'b', 'c'].map((id) => make(stack, id)));
    const campaigns = candidates.map((c) => track(c.campaign()));
    await waitFor(() => campaigns.some((c) => c.won), DEADLINE_MS, 'a leader');
    return { stack, candidates, campaigns };
  }

  describe(`${name} election`, () => {
    test('three candidates: exactly one leads, with a term; the others observe it', async () => {
      const { candidates, campaigns } = await threeCampaigning();
      const leaders = candidates.filter((c) => c.held() !== null);
      expect(leaders).toHaveLength(1);
      const leader = leaders[0]!;
      const term = leader.held()!.term;
      expect(term).toBeGreaterThan(0);
      expect(campaigns.filter((c) => c.won)).toHaveLength(1);
      for (const c of candidates) {
        const seen = await firstView(c);
        expect(seen).toEqual({ leader: leader.candidate, term });
        expect(await c.leader()).toEqual({ leader: leader.candidate, term });
        await c.guard(term);
      }
      // Across several TTLs the leader keeps its term (it refreshes) and nobody else is elected.
      for (let i = 0; i < 30; i++) {
        await sleep(TTL_MS / 10);
        expect(candidates.filter((c) => c.held() !== null)).toEqual([leader]);
        expect(leader.held()?.term).toBe(term);
      }
      expect(campaigns.filter((c) => c.won)).toHaveLength(1);
      expect(await candidates[0]!.leader()).toEqual({ leader: leader.candidate, term });
    });

    test('the leader closed without resigning: after its lease lapses a new leader is elected, with a greater term', async () => {
      const { stack, candidates, campaigns } = await threeCampaigning();
      const observer = await make(stack, 'observer');
      const views = collect(observer);
      const old = candidates.find((c) => c.held() !== null)!;
      const oldTerm = old.held()!.term;
      await waitFor(() => views.list.some((v) => v?.term === oldTerm), DEADLINE_MS, 'the observer to see the leader');
      await old.close(); // no resign: its connection goes away, its lease or key lapses after one TTL
      const next = await waitFor(() => campaigns.find((c, i) => c.won && candidates[i] !== old), DEADLINE_MS, 'a new leader');
      expect(next.won!.term).toBeGreaterThan(oldTerm);
      expect(candidates.filter((c) => c !== old && c.held() !== null)).toHaveLength(1);
      await waitFor(() => views.list.some((v) => v?.term === next.won!.term), DEADLINE_MS, 'the observer to see the new leader');
      // Every view the observer got names a leader of a term never lower than the one before.
      const terms = views.list.filter((v): v is Leadership => v !== null).map((v) => v.term);
      expect(terms).toEqual([...terms].sort((x, y) => x - y));
      expect(await observer.leader()).toEqual(next.won);
    });

    test('resign hands over: the key goes at once, the next candidate leads with a greater term; with nobody left, observers see no leader', async () => {
      const stack = `${name}-r${process.pid % 10000}-${++stacks}`;
      const [a, b, observer] = await Promise.all([make(stack, 'a'), make(stack, 'b'), make(stack, 'observer')]);
      const first = await a.campaign();
      const second = track(b.campaign());
      const views = collect(observer);
      await waitFor(() => views.list.some((v) => v?.term === first.term), DEADLINE_MS, 'the observer to see a lead');
      const lost: LeadershipLost[] = [];
      a.onLost((l) => lost.push(l));
      await a.resign();
      expect(a.held()).toBeNull();
      // The leader's key is gone at once: whoever leads now is not a.
      expect((await observer.leader())?.term).not.toBe(first.term);
      const won = await waitFor(() => second.won, DEADLINE_MS, 'b to lead');
      expect(won.leader.id).toBe('b');
      expect(won.term).toBeGreaterThan(first.term);
      await b.resign();
      await waitFor(() => views.list.at(-1) === null, DEADLINE_MS, 'the observer to see nobody lead');
      expect(await observer.leader()).toBeNull();
      expect(lost).toEqual([]); // resigning is not losing
      // A campaign after resigning stands again, with a newer term.
      const again = await a.campaign();
      expect(again.term).toBeGreaterThan(won.term);
    });

    test('fencing: writes carry the term; after a hand-over the old term is refused, by the writer and by the backend', async () => {
      const stack = `${name}-f${process.pid % 10000}-${++stacks}`;
      const [a, b, c] = await Promise.all([make(stack, 'a'), make(stack, 'b'), make(stack, 'c')]);
      const t1 = (await a.campaign()).term;
      const bCampaign = track(b.campaign());
      await a.fencedWrite('singletons/db', 'on host a', t1);
      expect(await c.fencedRead('singletons/db')).toMatchObject({ value: 'on host a', term: t1, writer: 'a' });
      // A term nobody holds is refused, from anyone.
      await expect(c.fencedWrite('singletons/db', 'forged', t1 + 1000)).rejects.toBeInstanceOf(StaleTermError);
      await expect(c.guard(t1 + 1000)).rejects.toBeInstanceOf(StaleTermError);

      await a.resign();
      const t2 = (await waitFor(() => bCampaign.won, DEADLINE_MS, 'b to lead')).term;
      expect(t2).toBeGreaterThan(t1);
      await b.fencedWrite('singletons/db', 'on host b', t2);
      // The old leader knows its term ended: refused without asking.
      const refused = await a.fencedWrite('singletons/db', 'stale', t1).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(StaleTermError);
      expect((refused as StaleTermError).code).toBe('stale_term');
      // Candidates that never held t1 ask the backend, which refuses it.
      await expect(b.fencedWrite('singletons/db', 'stale', t1)).rejects.toBeInstanceOf(StaleTermError);
      const byBackend = await c.fencedWrite('singletons/db', 'stale', t1).catch((e: unknown) => e);
      expect(byBackend).toBeInstanceOf(StaleTermError);
      expect((byBackend as StaleTermError).current).toBe(t2);
      await expect(c.guard(t1)).rejects.toBeInstanceOf(StaleTermError);
      await c.guard(t2);
      expect(await a.fencedRead('singletons/db')).toMatchObject({ value: 'on host b', term: t2, writer: 'b' });
      await expect(b.fencedWrite('../etc', 'x', t2)).rejects.toThrow(/not a valid fenced key/);
    });

    test('a leader cut off from the backend steps down before anyone else is elected; healed, its old term is refused', async () => {
      const stack = `${name}-p${process.pid % 10000}-${++stacks}`;
      const proxy = await startProxy(target().port());
      proxies.push(proxy);
      const a = await make(stack, 'a', { viaPort: proxy.port });
      const t1 = (await a.campaign()).term;
      await a.fencedWrite('state', 'before the partition', t1);
      const events: string[] = [];
      const lost: LeadershipLost[] = [];
      a.onLost((l) => {
        lost.push(l);
        events.push('a lost');
      });
      const [b, c] = await Promise.all([make(stack, 'b'), make(stack, 'c')]);
      const others = [b, c].map((e) =>
        track(
          e.campaign().then((won) => {
            events.push(`${won.leader.id} elected`);
            return won;
          }),
        ),
      );
      await waitFor(async () => (await b.leader())?.term === t1, DEADLINE_MS, 'b to see a lead');
      proxy.pause();
      const next = await waitFor(() => others.find((o) => o.won)?.won, DEADLINE_MS, 'a new leader');
      expect(next.term).toBeGreaterThan(t1);
      expect(lost).toEqual([expect.objectContaining({ term: t1 })]);
      expect(['unreachable', 'expired']).toContain(lost[0]!.reason);
      // The safety property: the old leader stood down before the new one began.
      expect(events[0]).toBe('a lost');
      expect(a.held()).toBeNull();

      proxy.resume();
      await expect(a.fencedWrite('state', 'after the heal', t1)).rejects.toBeInstanceOf(StaleTermError);
      await expect(a.guard(t1)).rejects.toBeInstanceOf(StaleTermError);
      // The backend refuses t1 too (asked by a candidate that never held it).
      const other = next.leader.id === 'b' ? c : b;
      await expect(other.fencedWrite('state', 'after the heal', t1)).rejects.toBeInstanceOf(StaleTermError);
      // Healed, a follows the new leader and stands again without winning.
      const views = collect(a);
      await waitFor(() => views.list.at(-1)?.term === next.term, DEADLINE_MS, 'a to see the new leader');
      const again = track(a.campaign());
      await sleep(TTL_MS);
      expect(again.won).toBeUndefined();
      expect((await a.fencedRead('state'))?.value).toBe('before the partition');
      const winner = next.leader.id === 'b' ? b : c;
      await winner.fencedWrite('state', 'by the new leader', next.term);
      expect(await a.fencedRead('state')).toMatchObject({ value: 'by the new leader', term: next.term });
      expect(lost).toHaveLength(1);
    });

    test('the server goes away for longer than a TTL: the leader steps down, and once it is back exactly one candidate leads, with a greater term', async () => {
      const stack = `${name}-o${process.pid % 10000}-${++stacks}`;
      const [a, b] = await Promise.all([make(stack, 'a'), make(stack, 'b')]);
      const t1 = (await a.campaign()).term;
      const events: string[] = [];
      a.onLost(() => events.push('a lost'));
      const bCampaign = track(
        b.campaign().then((won) => {
          events.push('b elected');
          return won;
        }),
      );
      await waitFor(async () => (await b.leader())?.term === t1, DEADLINE_MS, 'b to see a lead');
      await target().stop();
      try {
        await waitFor(() => events.includes('a lost'), DEADLINE_MS, 'a to step down');
      } finally {
        await target().start();
      }
      const won = await waitFor(() => bCampaign.won, DEADLINE_MS, 'b to lead after the outage');
      expect(won.term).toBeGreaterThan(t1);
      expect(events).toEqual(['a lost', 'b elected']);
      const again = track(a.campaign());
      await sleep(TTL_MS);
      expect(again.won).toBeUndefined();
      expect(b.held()?.term).toBe(won.term);
      expect(await a.leader()).toEqual(won);
    });

    test('an aborted campaign withdraws the candidacy: it never leads', async () => {
      const stack = `${name}-w${process.pid % 10000}-${++stacks}`;
      const [a, b, c] = await Promise.all([make(stack, 'a'), make(stack, 'b'), make(stack, 'c')]);
      const t1 = (await a.campaign()).term;
      const ac = new AbortController();
      const bCampaign = track(b.campaign(ac.signal));
      const cCampaign = track(c.campaign());
      await sleep(200);
      ac.abort(new Error('no longer wanted'));
      await waitFor(() => bCampaign.error, DEADLINE_MS, 'the aborted campaign to end');
      expect(String(bCampaign.error)).toMatch(/no longer wanted/);
      await a.resign();
      const won = await waitFor(() => cCampaign.won, DEADLINE_MS, 'c to lead');
      expect(won.term).toBeGreaterThan(t1);
      expect(b.held()).toBeNull();
      expect((await b.leader())?.leader.id).toBe('c');
    });
  });
}

/** A campaign's outcome, readable without awaiting. */
export function track(p: Promise<Leadership>): { won?: Leadership; error?: unknown } {
  const state: { won?: Leadership; error?: unknown } = {};
  p.then(
    (won) => (state.won = won),
    (err: unknown) => (state.error = err ?? 'rejected'),
  );
  return state;
}

/** Every view an election's observe() yields, collected in the background. */
export function collect(e: Election): { list: (Leadership | null)[] } {
  const out = { list: [] as (Leadership | null)[] };
  void (async () => {
    try {
      for await (const view of e.observe()) out.list.push(view);
    } catch {
      // closed
    }
  })();
  return out;
}

async function firstView(e: Election): Promise<Leadership | null> {
  const ac = new AbortController();
  try {
    for await (const view of e.observe(ac.signal)) if (view !== null) return view;
    return null;
  } finally {
    ac.abort();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface Proxy {
  readonly port: number;
  /** Nothing flows either way (both directions are held back) until `resume`. */
  pause(): void;
  /** Deliver what was held back, in order, and flow again. */
  resume(): void;
  close(): Promise<void>;
}

/** A TCP proxy on loopback to `targetPort`, which can hold traffic back as a partition would. */
export async function startProxy(targetPort: number): Promise<Proxy> {
  let paused = false;
  const pipes = new Set<{ flush(): void; destroy(): void }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const held: { to: net.Socket; data: Buffer }[] = [];
    const forward = (to: net.Socket) => (data: Buffer) => {
      if (paused) held.push({ to, data });
      else to.write(data);
    };
    client.on('data', forward(upstream));
    upstream.on('data', forward(client));
    const pipe = {
      flush() {
        for (const { to, data } of held.splice(0)) if (!to.destroyed) to.write(data);
      },
      destroy() {
        client.destroy();
        upstream.destroy();
        pipes.delete(pipe);
      },
    };
    pipes.add(pipe);
    // A side closing is passed on once nothing is held back (a close is data too).
    const onEnd = () => {
      const finish = () => (paused ? setTimeout(finish, 20) : pipe.destroy());
      finish();
    };
    client.on('close', onEnd).on('error', onEnd);
    upstream.on('close', onEnd).on('error', onEnd);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      for (const pipe of pipes) pipe.flush();
    },
    async close() {
      for (const pipe of [...pipes]) pipe.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
