/**
 * Leader-follower (docs/architecture.md, "Leader-follower"; issue #15): every host's `stack up
 * --host NAME` runs its own share of the stack, as in peer-to-peer, and campaigns in the stack's
 * election (src/discovery/election.ts). The one that leads also runs the singletons
 * (`singleton: true`), on its own host, at its address.
 *
 * One host's supervisor is two runs of the engine over one state folder:
 * - the host's share (`StackRun`, the ordinary run): the services placed on the host; a singleton
 *   it depends on is a remote gate, this stack's record from whichever host leads (remote-gates.ts),
 *   so a dependent follows the singleton when it moves;
 * - while it leads, the leader's share: the singletons (`planStack(…, { share: 'leader' })`), in a
 *   run of their own (lock, state file and control channel under `<stateDir>/leader/`), health-
 *   gated, registered under one id for the whole stack (claimed exclusively, `meta.term`: the
 *   leader's term), watched, restarted and re-rendered like any service. Started when this
 *   supervisor wins a term, stopped at once when it loses it (`onLost`), before it resigns.
 *
 * A new leader, before it starts the singletons: writes the leader record under its term
 * (`fencedWrite`: refused when the term is no longer current, then it starts nothing), removes
 * the singletons' records of an older term that another host left ("fenced"), and waits (at most
 * one TTL and one heartbeat) until discovery holds no record of them from another host. A
 * follower stops any singleton instance an earlier supervisor of its own host left running.
 *
 * Campaigning begins once the host's share holds the lock (its `starting` phase), not after its
 * startup: a service of the host's share may wait for a singleton, and the singleton for it.
 */
import { isFatalCampaignError, StaleTermError, type Election, type ElectionCandidate, type Leadership, type LeadershipLost } from '../discovery/election.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import { planStack } from '../plan/plan.js';
import { errorText } from '../util/error-text.js';
import { processStartTime } from '../util/proc.js';
import type { StackController, StartStackInput, StartStackOptions } from './engine.js';
import {
  candidateInput,
  encodeLeaderRecord,
  decodeLeaderRecord,
  LEADER_KEY,
  removeLeadershipFile,
  writeLeadershipFile,
  type LeaderRecord,
  type LeadershipFile,
} from './leadership-state.js';
import { StackRun } from './run.js';
import { fixedRuntimeSet, runtimeSetFor, type RuntimeSet } from './runtimes.js';
import { leaderRunDir, removeStateFile, stateDirOf } from './state.js';
import { stopTargets, type StopTarget } from './stopper.js';
import type { CandidateView, EngineEvent, LeaderEvent, ServiceStatus } from './types.js';

/** How a host's supervisor joins its stack's election; default `createElection` on the profile's discovery. */
export type ElectionFactory = (options: { stack: string; candidate: ElectionCandidate; ttlMs: number }) => Promise<Election>;

const serial = new Map<string, number>();

/** `<host>-<pid>`; a second supervisor of the same host in one process (tests) gets `-2`, `-3`, … */
function candidateId(host: string): string {
  const n = (serial.get(host) ?? 0) + 1;
  serial.set(host, n);
  return n === 1 ? `${host}-${process.pid}` : `${host}-${process.pid}-${n}`;
}

/** Start a leader-follower host's supervisor: its share now, the singletons whenever it leads. */
export function startLeaderFollower(input: StartStackInput, opts: StartStackOptions): StackController {
  return new LeaderFollower(input, opts).controller();
}

/** The singletons' run: every singleton of the host's selection (and what it needs), the rest met from discovery. */
function leaderInput({ profile, graph, plan }: StartStackInput): StartStackInput {
  const unselected = new Set(plan.skipped.filter((s) => s.reason === 'not selected').map((s) => s.service));
  const services = unselected.size > 0 ? [...graph.services.keys()].filter((n) => !unselected.has(n)) : undefined;
  return { profile, graph, plan: planStack(profile, graph, { host: plan.host!, share: 'leader', ...(services ? { services } : {}) }) };
}

class LeaderFollower {
  private readonly stack: string;
  private readonly stateDir: string;
  private readonly runtimes: RuntimeSet;
  private readonly ownsRuntimes: boolean;
  private readonly hostRun: StackController;
  private readonly singletons: StartStackInput;
  private readonly self: CandidateView;
  private readonly listeners = new Set<(e: EngineEvent) => void>();
  /** Aborted when this supervisor lets go of the stack (stop, detach, its share ended). */
  private readonly ending = new AbortController();
  private election: Election | undefined;
  private campaigning: Promise<void> | undefined;
  private leaderRun: StackController | undefined;
  /** The term this supervisor leads with, while it does. */
  private leading: Leadership | undefined;
  /** The leader as last observed. */
  private seen: Leadership | null | undefined;
  /** The last leader known (never null once one was seen): what a hand-over is from. */
  private lastLeader: CandidateView | undefined;
  private file: LeadershipFile;
  /** Stopping singleton instances an earlier supervisor of this host left, while another leads. */
  private tidying: Promise<void> = Promise.resolve();
  private tidied = false;
  private stopTimeoutMs: number | undefined;
  /** The writes of `leadership.json`, one after another. */
  private writing: Promise<void> = Promise.resolve();
  private readonly finished: Promise<void>;

  constructor(
    input: StartStackInput,
    private readonly opts: StartStackOptions,
  ) {
    const { profile, plan } = input;
    this.stack = plan.stack;
    this.stateDir = opts.stateDir ?? stateDirOf(profile, opts.cwd);
    this.ownsRuntimes = !opts.runtimes;
    this.runtimes = runtimeSetOf(opts.runtimes, this.stateDir, profile);
    const host = plan.host!;
    this.self = { id: candidateId(host), host, address: profile.hosts[host]!.address };
    this.singletons = leaderInput(input);
    const startTime = processStartTime(process.pid);
    this.file = {
      version: 1,
      stack: this.stack,
      self: { ...this.self, pid: process.pid, ...(startTime ? { processStartTime: startTime } : {}) },
      role: 'candidate',
      leader: null,
      term: null,
      handovers: 0,
      updatedAt: new Date().toISOString(),
    };
    this.hostRun = new StackRun(input, {
      ...opts,
      stateDir: this.stateDir,
      runtimes: this.runtimes,
      onEvent: (e) => this.onHostEvent(e),
      // However the host's share stops (down, Ctrl-C, a failed start rolled back), the singletons go first.
      beforeTeardown: () => this.end(),
    }).controller();
    // Ctrl-C: the host's share stops itself (it has the signal); the singletons stop at once too.
    opts.signal?.addEventListener('abort', () => void this.end(), { once: true });
    this.finished = this.hostRun.done.then(async () => {
      await this.end();
      if (this.ownsRuntimes) await this.runtimes.close();
    });
  }

  controller(): StackController {
    return {
      stack: this.stack,
      stateDir: this.stateDir,
      ready: this.hostRun.ready,
      done: this.finished,
      status: (): ServiceStatus[] => [...this.hostRun.status(), ...(this.leaderRun?.status() ?? [])],
      subscribe: (listener) => {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
      },
      stop: async (stopOpts = {}) => {
        await this.end(stopOpts.timeoutMs);
        await this.hostRun.stop(stopOpts);
        await this.finished;
      },
      detach: async () => {
        // The next `up` of this host cannot inherit the term: hand the singletons over now.
        await this.end();
        await this.hostRun.detach();
        await this.finished;
      },
    };
  }

  private emit(event: EngineEvent): void {
    try {
      this.opts.onEvent?.(event);
    } catch {
      // a listener's bug must not break the engine
    }
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // likewise
      }
    }
  }

  private warn(message: string, service?: string): void {
    this.emit({ type: 'warning', message, ...(service ? { service } : {}) });
  }

  /** The host's share's events pass through; once it holds the lock, this supervisor campaigns. */
  private onHostEvent(event: EngineEvent): void {
    this.emit(event);
    if (event.type === 'stack' && event.phase === 'starting' && !this.campaigning && !this.ending.signal.aborted) this.campaigning = this.campaign();
  }

  /** Let go: stop the singletons (if it leads), resign, leave the election. Idempotent. */
  private async end(timeoutMs?: number): Promise<void> {
    if (timeoutMs !== undefined) this.stopTimeoutMs = timeoutMs;
    this.ending.abort();
    await this.campaigning;
  }

  // ---- the election ---------------------------------------------------------------------------

  private async createElection(): Promise<Election> {
    const { profile } = this.singletons;
    const options = { stack: this.stack, candidate: this.self, ttlMs: profile.discovery.ttlMs };
    if (this.opts.election) return this.opts.election(options);
    const { createElection } = await import('../discovery/election.js');
    return createElection(profile.discovery, options);
  }

  /** Campaign until this supervisor lets go: lead while it wins, campaign again when it loses. */
  private async campaign(): Promise<void> {
    const signal = this.ending.signal;
    try {
      this.election = await this.createElection();
    } catch (err) {
      this.warn(`cannot join the election of stack '${this.stack}': ${errorText(err)}; this host runs its own share only, never the singletons`);
      return;
    }
    const election = this.election;
    const withdraw = this.announce();
    void this.follow(election);
    let failures = 0;
    try {
      while (!signal.aborted) {
        let won: Leadership;
        try {
          won = await election.campaign(signal);
        } catch (err) {
          if (signal.aborted) break;
          if (isFatalCampaignError(err)) {
            this.warn(`stopped campaigning for stack '${this.stack}': ${errorText(err)}; this host runs its own share only`);
            break;
          }
          this.warn(`campaign for stack '${this.stack}' failed, trying again: ${errorText(err)}`);
          await this.pause(++failures, signal);
          continue;
        }
        // A term that ended on an error of the backend (not lost, not stale): the next campaign
        // would win at once (the term is still held) and fail the same way; wait with back-off.
        if ((await this.lead(election, won)) === 'error') await this.pause(++failures, signal);
        else failures = 0;
      }
    } finally {
      await this.letGo(election, withdraw);
    }
  }

  /** After the last term: resign a term still held, withdraw the candidacy, close the election. */
  private async letGo(election: Election, withdraw: () => Promise<void>): Promise<void> {
    const held = election.held();
    if (held) {
      await election.resign().catch((err: unknown) => this.warn(`could not resign term ${held.term}: ${errorText(err)}; it lapses after one TTL`));
      this.report('resigned', null, null, { reason: `this supervisor let go of the stack: term ${held.term} is handed over` });
    }
    await withdraw();
    await election.close().catch(() => undefined);
    await this.writing;
    await removeLeadershipFile(this.stateDir).catch(() => undefined);
  }

  /** The candidate record (followers are listed from these); returns its withdrawal. */
  private announce(): () => Promise<void> {
    const discovery = this.opts.discovery;
    if (!discovery?.canRegister) return async () => undefined;
    const input = candidateInput(this.stack, this.self);
    const { ttlMs, heartbeatIntervalMs } = this.singletons.profile.discovery;
    const registered = discovery.register(input, { ttlMs }).then(
      () => discovery.keepAlive(input, heartbeatIntervalMs, { ttlMs }),
      (err: unknown) => {
        this.warn(`could not announce this supervisor in discovery (status will not list it as a follower): ${errorText(err)}`);
        return undefined;
      },
    );
    return async () => {
      const stop = await registered;
      if (!stop) return;
      await stop().catch(() => undefined);
      await discovery.deregister(input.service, input.id).catch(() => undefined);
    };
  }

  /** Who leads, as it changes: every hand-over is an event; a follower tidies what its host left. */
  private async follow(election: Election): Promise<void> {
    try {
      for await (const view of election.observe(this.ending.signal)) {
        const before = this.seen;
        this.seen = view;
        if (view?.leader.id === this.self.id) continue; // its own term: `elected` says so
        if ((before === undefined && view === null) || (before !== undefined && sameLeader(before, view))) continue;
        if (view !== null && !this.leading && !this.tidied) {
          this.tidied = true;
          this.tidying = this.tidying.then(() => this.stopLeftovers(view));
        }
        const previous = before ? { ...before.leader, term: before.term } : undefined;
        this.report('observed', view?.leader ?? null, view?.term ?? null, previous && view ? { previous } : {});
      }
    } catch (err) {
      if (!this.ending.signal.aborted) this.warn(`stopped following the election of stack '${this.stack}': ${errorText(err)}`);
    }
  }

  // ---- leading --------------------------------------------------------------------------------

  /** One term: fence, run the singletons until the term is lost or this supervisor lets go. */
  private async lead(election: Election, won: Leadership): Promise<'error' | undefined> {
    const lost = new AbortController();
    const off = election.onLost((l) => lost.abort(l));
    const signal = AbortSignal.any([lost.signal, this.ending.signal]);
    this.leading = won;
    let stale = false;
    let failed = false;
    try {
      const record = await this.claimTerm(election, won);
      this.report('elected', won.leader, won.term, record.previous ? { previous: record.previous } : {});
      await this.tidying; // a follower's tidying of this host must not overlap the start
      await this.fence(won.term, signal);
      await this.runSingletons(election, record, signal, lost.signal);
    } catch (err) {
      if (err instanceof StaleTermError) stale = true;
      else if (!signal.aborted) {
        failed = true;
        this.warn(`leading stack '${this.stack}' (term ${won.term}): ${errorText(err)}`);
      }
    } finally {
      off();
      this.leading = undefined;
      this.tidied = false;
      if (lost.signal.aborted || stale) {
        const why = stale ? `term ${won.term} is no longer current (a fenced write was refused)` : (lost.signal.reason as LeadershipLost).message;
        this.report('stepped-down', null, null, { reason: `${why}; stopping its singletons` });
      }
      await this.stopSingletons(); // at once: another leader may start them once our lease has lapsed
      if (stale) await election.resign().catch(() => undefined); // so that the next campaign stands anew
    }
    return failed ? 'error' : undefined;
  }

  /** The leader record under the new term (refused, StaleTermError, if the term is no longer current). */
  private async claimTerm(election: Election, won: Leadership): Promise<LeaderRecord> {
    const before = decodeLeaderRecord((await election.fencedRead(LEADER_KEY).catch(() => null))?.value);
    const previous = before && before.term < won.term ? { ...before.leader, term: before.term } : undefined;
    const record: LeaderRecord = {
      leader: this.self,
      term: won.term,
      since: new Date().toISOString(),
      ...(previous ? { previous } : {}),
      singletons: this.singletons.plan.services.map((s) => s.name),
      state: 'starting',
    };
    await election.fencedWrite(LEADER_KEY, encodeLeaderRecord(record), won.term);
    return record;
  }

  /**
   * Before starting the singletons: remove their records of an older term from other hosts (that
   * leader's lease has lapsed: it has stopped them, or its supervisor is gone), then wait until
   * discovery holds none from another host — at most one TTL and one heartbeat, after which a record
   * left behind has expired wherever the backend expires them.
   */
  private async fence(term: number, signal: AbortSignal): Promise<void> {
    const discovery = this.opts.discovery;
    const names = new Set(this.singletons.plan.services.map((s) => s.name));
    if (!discovery || names.size === 0 || !discovery.backends.some((b) => b.capabilities.lookup)) return;
    const { ttlMs, heartbeatIntervalMs } = this.singletons.profile.discovery;
    const clock = this.opts.clock ?? (await import('../util/clock.js')).realClock;
    const deadline = clock.now() + ttlMs + heartbeatIntervalMs;
    const registered = async (): Promise<ServiceInstance[]> => {
      const lists = await Promise.all(
        [...names].map((name) => {
          discovery.invalidate(name);
          return discovery.lookup(name).catch(() => [] as ServiceInstance[]);
        }),
      );
      return lists.flat().filter((r) => r.meta.stack === this.stack);
    };
    let fenced = false;
    while (!signal.aborted) {
      const all = await registered();
      // This host's own record of an older term goes too: the new one is claimed afresh, exclusively.
      const older = all.filter((r) => !(Number(r.meta.term) >= term));
      const left = all.filter((r) => r.meta.host !== this.self.host);
      if (left.length === 0 && older.length === 0) return;
      if (!fenced && older.length > 0) {
        fenced = true;
        await Promise.all(older.map((r) => discovery.deregister(r.service, r.id).catch(() => undefined)));
        const what = older.map((r) => `${r.service} (${r.id} on host '${r.meta.host ?? '?'}', term ${r.meta.term ?? '?'})`).join(', ');
        this.report('fenced', this.self, term, { reason: `removed the records of an older term: ${what}` });
        continue;
      }
      if (left.length === 0) return;
      if (clock.now() >= deadline) {
        const what = left.map((r) => `${r.service} on host '${r.meta.host ?? '?'}'`).join(', ');
        this.warn(`still registered elsewhere after one TTL: ${what}; starting the singletons all the same`);
        return;
      }
      await clock.sleep(100, signal).catch(() => undefined);
    }
  }

  /**
   * Run the singletons until `signal` aborts; a start that fails is tried again, with a growing
   * pause. Their discovery is revoked once the term is lost (`revocable`).
   */
  private async runSingletons(election: Election, record: LeaderRecord, signal: AbortSignal, lost: AbortSignal): Promise<void> {
    const input = this.singletons;
    let failures = 0;
    while (!signal.aborted) {
      if (input.plan.services.length === 0 && input.plan.blocked.length === 0) break;
      const { signal: _s, onEvent: _e, beforeTeardown: _b, ...rest } = this.opts;
      const run = new StackRun(input, {
        ...rest,
        stateDir: this.stateDir,
        runDir: leaderRunDir(this.stateDir),
        runtimes: this.runtimes,
        ...(this.opts.discovery ? { discovery: revocable(this.opts.discovery, lost) } : {}),
        term: record.term,
        // Its phases are not the stack's (the host's share has those): `leader` events say what it does.
        onEvent: (e) => e.type !== 'stack' && this.emit(e),
      }).controller();
      this.leaderRun = run;
      const report = await Promise.race([run.ready.catch((err: unknown) => errorText(err)), untilAborted(signal)]);
      if (signal.aborted) return;
      const up = typeof report === 'object' && report?.outcome === 'up';
      // Only a stale term ends the term here; a backend that does not answer this once does not
      // stop healthy singletons (the record says `starting` a little longer).
      await election.fencedWrite(LEADER_KEY, encodeLeaderRecord({ ...record, state: up ? 'up' : 'failed' }), record.term).catch((err: unknown) => {
        if (err instanceof StaleTermError) throw err;
        this.warn(`could not record the singletons' state under term ${record.term}: ${errorText(err)}`);
      });
      if (up) break;
      await this.stopSingletons();
      const why = typeof report === 'string' ? report : (report?.failed.map((f) => `${f.service}: ${f.reason}`).join('; ') ?? 'interrupted');
      this.warn(`the singletons did not come up (${why}); trying again`);
      await this.pause(++failures, signal);
    }
    await untilAborted(signal);
  }

  private async stopSingletons(): Promise<void> {
    const run = this.leaderRun;
    this.leaderRun = undefined;
    await run?.stop(this.stopTimeoutMs !== undefined ? { timeoutMs: this.stopTimeoutMs } : {});
  }

  /** A follower: singleton instances an earlier supervisor of this host left running are stopped (another host runs them). */
  private async stopLeftovers(leader: Leadership): Promise<void> {
    const specs = this.singletons.plan.services.map((s) => this.singletons.graph.services.get(s.name)!);
    const names = new Set(specs.map((s) => s.name));
    const targets: StopTarget[] = [];
    for (const runtimeName of new Set(specs.map((s) => s.runtime))) {
      const runtime = await this.runtimes.get(runtimeName).catch(() => undefined);
      const handles = (await runtime?.discover(this.stack).catch(() => [])) ?? [];
      for (const spec of specs.filter((s) => s.runtime === runtimeName)) {
        const mine = handles.filter((h) => h.service === spec.name);
        if (mine.length === 0 || !runtime) continue;
        targets.push({
          name: spec.name,
          dependsOn: spec.dependencies.map((d) => d.name).filter((n) => names.has(n)),
          resolve: () => ({ instances: mine.map((handle) => ({ handle, runtime })), stopSignal: spec.stopSignal, gracePeriodMs: spec.stopGracePeriodMs }),
          onStopping: () =>
            this.warn(`left running on this host by an earlier leader; host '${leader.leader.host}' leads (term ${leader.term}): stopping it`, spec.name),
        });
      }
    }
    for (const { name, error } of await stopTargets(targets)) this.warn(`could not stop the leftover instance: ${errorText(error)}`, name);
    // What the earlier leader recorded of them is over too (`stack status` would show it).
    await removeStateFile(leaderRunDir(this.stateDir)).catch(() => undefined);
  }

  // ---- reporting ------------------------------------------------------------------------------

  /** A `leader` event, and this host's view on disk for `stack status`. */
  private report(change: LeaderEvent['change'], leader: CandidateView | null, term: number | null, extra: Pick<LeaderEvent, 'previous' | 'reason'> = {}): void {
    this.emit({ type: 'leader', stack: this.stack, change, self: this.self, leader, term, ...extra });
    const f = this.file;
    // A hand-over: a leader after another one (nobody may have led in between), or this supervisor winning.
    const known = this.lastLeader;
    const handover = leader !== null && (change === 'elected' || (change === 'observed' && known !== undefined && known.id !== leader.id));
    if (leader !== null && (change === 'elected' || change === 'observed')) this.lastLeader = leader;
    this.file = {
      ...f,
      role: this.leading && change !== 'stepped-down' ? 'leader' : leader === null ? 'candidate' : leader.id === this.self.id ? 'leader' : 'follower',
      leader: change === 'fenced' ? f.leader : leader,
      term: change === 'fenced' ? f.term : term,
      ...(handover ? { lastHandover: { at: new Date().toISOString(), to: leader, term: term!, ...(extra.previous ? { from: extra.previous } : {}) } } : {}),
      handovers: f.handovers + (handover ? 1 : 0),
      updatedAt: new Date().toISOString(),
    };
    const file = this.file;
    // In order: a later view must never be overwritten by an earlier one.
    if (change !== 'resigned') this.writing = this.writing.then(() => writeLeadershipFile(this.stateDir, file)).catch(() => undefined);
  }

  private async pause(failures: number, signal: AbortSignal): Promise<void> {
    const clock = this.opts.clock ?? (await import('../util/clock.js')).realClock;
    await clock.sleep(Math.min(30_000, 500 * 2 ** Math.min(failures - 1, 6)), signal).catch(() => undefined);
  }
}

function sameLeader(a: Leadership | null, b: Leadership | null): boolean {
  if (a === null || b === null) return a === b;
  return a.term === b.term && a.leader.id === b.leader.id;
}

/**
 * The discovery a leader's singletons use, revoked once its term is lost (most often because the
 * backend cannot be reached): from then on their deregistration and letting go of a heartbeat go
 * on in the background, and the instances stop at once. Whenever those calls land, they cannot
 * touch the record the next leader claimed meanwhile under the singleton's one id: the backends
 * renew and remove an exclusive claim only where it is still theirs (etcd: on its lease; NATS: at
 * its revision), and a stale record of ours expires, or the next leader fences it.
 */
export function revocable(discovery: DiscoveryManager, revoked: AbortSignal): DiscoveryManager {
  return new Proxy(discovery, {
    get(target, prop) {
      if (prop === 'deregister')
        return (service: string, id: string) => {
          const removing = target.deregister(service, id);
          if (!revoked.aborted) return removing;
          removing.catch(() => undefined);
          return Promise.resolve();
        };
      if (prop === 'keepAlive')
        return (...args: Parameters<DiscoveryManager['keepAlive']>) => {
          const stop = target.keepAlive(...args);
          return async () => {
            const stopping = stop();
            if (revoked.aborted) stopping.catch(() => undefined);
            else await stopping;
          };
        };
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function untilAborted(signal: AbortSignal): Promise<undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(undefined), { once: true }));
}

function runtimeSetOf(given: StartStackOptions['runtimes'], stateDir: string, profile: StartStackInput['profile']): RuntimeSet {
  if (!given) return runtimeSetFor(profile, { stateDir });
  if ('get' in given && typeof given.get === 'function') return given;
  return fixedRuntimeSet(given as Parameters<typeof fixedRuntimeSet>[0]);
}
