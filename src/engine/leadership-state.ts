/**
 * What a leader-follower stack's supervisors leave for others to read (docs/architecture.md,
 * "Leader-follower"):
 *
 * - the leader record, written by the leader through the election's `fencedWrite` under its term
 *   (key `leader`): who leads, since when, whom it took over from, which singletons it runs. A
 *   write from an older term is refused by the backend, so the record never goes back to a
 *   leader that lost its term;
 * - a candidate record per supervisor in discovery (service `CANDIDATE_SERVICE`, meta `election`:
 *   the stack), renewed like any registration: the followers `stack status` lists;
 * - `<stateDir>/leadership.json`: this host's supervisor's own view (its role, the leader, the
 *   last hand-over it saw), for `stack status` when the backend cannot be asked.
 *
 * `readLeadership` puts them together for `stack status`.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import type { Profile } from '../profile/types.js';
import { errorText } from '../util/error-text.js';
import { atomicWrite } from '../util/fs.js';
import { isProcessAlive } from '../util/proc.js';
import type { CandidateView } from './types.js';

/** The fenced key of the leader record. */
export const LEADER_KEY = 'leader';

/** The discovery service under which every supervisor of a leader-follower stack announces itself. */
export const CANDIDATE_SERVICE = 'stack-candidates';

/** What the leader writes (fenced by its term) at `LEADER_KEY`. */
export interface LeaderRecord {
  leader: CandidateView;
  term: number;
  /** ISO-8601: when it took over (the last hand-over). */
  since: string;
  /** The leader before it, when known. */
  previous?: CandidateView & { term: number };
  /** The singletons it runs, and how their start went. */
  singletons: string[];
  state: 'starting' | 'up' | 'failed';
}

export function encodeLeaderRecord(record: LeaderRecord): string {
  return JSON.stringify(record);
}

export function decodeLeaderRecord(text: string | undefined): LeaderRecord | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Partial<LeaderRecord>;
    if (typeof v.term !== 'number' || typeof v.leader?.id !== 'string' || typeof v.since !== 'string') return undefined;
    return {
      leader: candidateOf(v.leader),
      term: v.term,
      since: v.since,
      ...(v.previous && typeof v.previous.term === 'number' ? { previous: { ...candidateOf(v.previous), term: v.previous.term } } : {}),
      singletons: Array.isArray(v.singletons) ? v.singletons.filter((s): s is string => typeof s === 'string') : [],
      state: v.state === 'up' || v.state === 'failed' ? v.state : 'starting',
    };
  } catch {
    return undefined;
  }
}

function candidateOf(v: Partial<CandidateView>): CandidateView {
  return { id: String(v.id ?? ''), host: String(v.host ?? ''), address: String(v.address ?? '') };
}

// ---- candidate records ------------------------------------------------------------------------

export function candidateRecordId(stack: string, candidate: CandidateView): string {
  return `${stack}-${candidate.id}`;
}

export function candidateInput(stack: string, candidate: CandidateView) {
  return {
    id: candidateRecordId(stack, candidate),
    service: CANDIDATE_SERVICE,
    address: candidate.address,
    meta: { election: stack, host: candidate.host, candidate: candidate.id },
  };
}

/** The supervisors of `stack` that announce themselves in discovery now. */
export function candidatesOf(records: readonly ServiceInstance[], stack: string): CandidateView[] {
  return records
    .filter((r) => r.service === CANDIDATE_SERVICE && r.meta.election === stack && r.meta.candidate !== undefined)
    .map((r) => ({ id: r.meta.candidate!, host: r.meta.host ?? '?', address: r.address }))
    .sort((a, b) => a.host.localeCompare(b.host) || a.id.localeCompare(b.id));
}

// ---- this host's supervisor's view -----------------------------------------------------------

export interface LeadershipFile {
  version: 1;
  stack: string;
  /** This host's supervisor. */
  self: CandidateView & { pid: number; processStartTime?: string };
  role: 'leader' | 'follower' | 'candidate';
  leader: CandidateView | null;
  term: number | null;
  /** The last hand-over this supervisor saw (or made). */
  lastHandover?: { at: string; to: CandidateView; term: number; from?: CandidateView & { term: number } };
  /** Hand-overs it saw while it ran. */
  handovers: number;
  updatedAt: string;
}

export function leadershipFilePath(stateDir: string): string {
  return path.join(stateDir, 'leadership.json');
}

export async function writeLeadershipFile(stateDir: string, file: LeadershipFile): Promise<void> {
  await atomicWrite(leadershipFilePath(stateDir), `${JSON.stringify(file, null, 2)}\n`, 0o600);
}

export async function removeLeadershipFile(stateDir: string): Promise<void> {
  await rm(leadershipFilePath(stateDir), { force: true });
}

export async function readLeadershipFile(stateDir: string, stack: string): Promise<LeadershipFile | undefined> {
  try {
    const v = JSON.parse(await readFile(leadershipFilePath(stateDir), 'utf8')) as Partial<LeadershipFile>;
    return v.version === 1 && v.stack === stack && typeof v.self?.pid === 'number' ? (v as LeadershipFile) : undefined;
  } catch {
    return undefined;
  }
}

// ---- what `stack status` shows ----------------------------------------------------------------

export interface LeadershipStatusView {
  /** Who leads now: from the backend (`source: 'election'`), else as this host's supervisor last saw it. */
  leader: CandidateView | null;
  term: number | null;
  /** When the current leader took over (ISO-8601), and from whom. */
  since?: string;
  previous?: CandidateView & { term: number };
  /** The other supervisors that announce themselves in discovery. */
  followers: CandidateView[];
  /** The singletons, and the state of their start on the leader (its leader record). */
  singletons: string[];
  singletonsState?: LeaderRecord['state'];
  /** This host's supervisor, when one ran here: its role, and whether it still runs. */
  self?: CandidateView & { role: LeadershipFile['role']; alive: boolean; lastHandover?: LeadershipFile['lastHandover']; handovers: number };
  source: 'election' | 'supervisor' | 'none';
  /** The backend could not be asked. */
  error?: string;
}

/** What the election answers (one read each), for `readLeadership`; absent or rejecting: only the local view. */
export interface ElectionReader {
  leader(): Promise<{ leader: CandidateView; term: number } | null>;
  /** The leader record's text. */
  leaderRecord(): Promise<string | undefined>;
}

export interface ReadLeadershipOptions {
  profile: Profile;
  stateDir: string;
  reader?: ElectionReader;
  /** Where the candidates' records are looked up. */
  discovery?: Pick<DiscoveryManager, 'lookup'>;
}

/** The leadership of a leader-follower stack, from the backend where it answers, else from this host's last view. */
export async function readLeadership(opts: ReadLeadershipOptions): Promise<LeadershipStatusView> {
  const { profile } = opts;
  const local = await readLeadershipFile(opts.stateDir, profile.name);
  const singletons = Object.values(profile.services)
    .filter((s) => s.singleton && s.enable && !s.external)
    .map((s) => s.name)
    .sort();
  const self = local
    ? {
        ...candidateOf(local.self),
        role: local.role,
        alive: isProcessAlive(local.self.pid, local.self.processStartTime),
        ...(local.lastHandover ? { lastHandover: local.lastHandover } : {}),
        handovers: local.handovers,
      }
    : undefined;
  let live: { leader: CandidateView; term: number } | null | undefined;
  let record: LeaderRecord | undefined;
  let error: string | undefined;
  let records: readonly ServiceInstance[] = [];
  try {
    if (opts.reader) {
      live = await opts.reader.leader();
      record = decodeLeaderRecord(await opts.reader.leaderRecord());
    }
    if (opts.discovery) records = await opts.discovery.lookup(CANDIDATE_SERVICE);
  } catch (err) {
    error = errorText(err);
  }
  const fromElection = live !== undefined;
  const leader = fromElection ? (live?.leader ?? null) : self?.alive && local ? local.leader : null;
  const term = fromElection ? (live?.term ?? null) : self?.alive && local ? local.term : null;
  // The record belongs to the current term only; an older one says nothing of the current leader.
  const current = record && term !== null && record.term === term ? record : undefined;
  const since = current?.since ?? (self?.lastHandover && self.lastHandover.term === term ? self.lastHandover.at : undefined);
  const previous = current?.previous ?? (self?.lastHandover?.term === term ? self?.lastHandover?.from : undefined);
  return {
    leader,
    term,
    ...(since !== undefined ? { since } : {}),
    ...(previous ? { previous } : {}),
    followers: candidatesOf(records, profile.name).filter((c) => c.id !== leader?.id),
    singletons,
    ...(current ? { singletonsState: current.state } : {}),
    ...(self ? { self } : {}),
    source: fromElection ? 'election' : self?.alive ? 'supervisor' : 'none',
    ...(error !== undefined ? { error } : {}),
  };
}
