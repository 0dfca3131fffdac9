/**
 * `stack down --all-hosts`: ask the `stack up` of every host to stop its share, through the
 * discovery they share (supervisor.ts, "stopping every host's share"), and wait until none of the
 * stack's registrations is left.
 *
 * 1. What is registered now (meta `stack`): the instances to see gone.
 * 2. The request: a control record every running `stack up` of the stack watches; each stops its
 *    own share, dependents first, deregistering as it goes.
 * 3. Wait, bounded: the services' grace periods one after another (or `timeoutMs` each), plus one
 *    TTL for the registrations of a host whose `stack up` is gone (they expire), plus slack.
 *    `onProgress` hears what is still registered whenever that changes.
 * 4. Remove the request; then the caller stops what this machine's state folder still holds
 *    (`downStack`), so a host whose `stack up` was killed is cleaned where it is run.
 */
import { realClock, type Clock } from '../util/clock.js';
import { errorText } from '../util/error-text.js';
import { poll, PollTimeoutError } from '../util/retry.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import type { Profile } from '../profile/types.js';
import os from 'node:os';
import { hostOfRecord, stackRegistrations } from './status-hosts.js';
import { publishDownRequest, withdrawDownRequest, type DownRequest } from './supervisor.js';

/** One registration of the stack, as the progress and the report show it. */
export interface RegistrationView {
  service: string;
  id: string;
  /** The declared host it runs on (`?` when its record does not say). */
  host: string;
  address: string;
  port?: number;
}

export interface AllHostsOptions {
  discovery: DiscoveryManager;
  /** Grace period for every service, passed on to every host's `stack up`. */
  timeoutMs?: number;
  /** Say what would be asked to stop; publish nothing. */
  dryRun?: boolean;
  /** How long to wait for the registrations to go; default from the grace periods and the TTL. */
  waitMs?: number;
  /** The request is out: what was registered when it was made. */
  onRequest?: (registered: RegistrationView[]) => void;
  /** What is still registered: first, then each time that changes while waiting. */
  onProgress?: (remaining: RegistrationView[], elapsedMs: number) => void;
  clock?: Clock;
}

export interface AllHostsReport {
  stack: string;
  /** When the request was made (ISO-8601); absent for a dry run. */
  requestedAt?: string;
  /** What was registered when the request was made. */
  registered: RegistrationView[];
  /** Still registered when the wait ended (empty: every host's share is down). */
  remaining: RegistrationView[];
  /** The request could not be removed (it expires on its own). */
  withdrawError?: string;
  dryRun: boolean;
}

const SLACK_MS = 10_000;
/** How often the registrations are read again while waiting. */
const POLL_MAX_MS = 500;

export function registrationViews(profile: Profile, records: readonly ServiceInstance[], now: number): RegistrationView[] {
  return stackRegistrations(records, profile.name, now)
    .map((r) => ({ service: r.service, id: r.id, host: hostOfRecord(profile, r), address: r.address, ...(r.port !== undefined ? { port: r.port } : {}) }))
    .sort((a, b) => a.host.localeCompare(b.host) || a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
}

/** The default bound of the wait: every service stopping in turn, one TTL for orphans to expire, slack. */
export function allHostsWaitMs(profile: Profile, timeoutMs?: number): number {
  const services = Object.values(profile.services).filter((s) => s.enable && !s.external);
  const stops = services.reduce((sum, s) => sum + (timeoutMs ?? s.stopGracePeriodMs) * Math.max(1, s.replicas), 0);
  return stops + profile.discovery.ttlMs + SLACK_MS;
}

export async function requestDownAllHosts(profile: Profile, opts: AllHostsOptions): Promise<AllHostsReport> {
  const { discovery } = opts;
  const clock = opts.clock ?? realClock;
  const stack = profile.name;
  const read = async () => registrationViews(profile, await discovery.list(), Date.now());
  const registered = await read();
  if (opts.dryRun) return { stack, registered, remaining: registered, dryRun: true };

  const waitMs = opts.waitMs ?? allHostsWaitMs(profile, opts.timeoutMs);
  const request: DownRequest = {
    stack,
    requestedAt: new Date().toISOString(),
    by: os.hostname(),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  };
  // It outlives the wait a little, and no more: a requester that dies leaves nothing for long.
  await publishDownRequest(discovery, request, waitMs + SLACK_MS);
  opts.onRequest?.(registered);
  const report: AllHostsReport = { stack, requestedAt: request.requestedAt, registered, remaining: registered, dryRun: false };
  const t0 = clock.now();
  let last: string | undefined;
  try {
    await poll(
      async () => {
        discovery.invalidate();
        report.remaining = await read().catch(() => report.remaining); // discovery hiccups: ask again
        const seen = report.remaining.map((r) => r.id).join(',');
        if (seen !== last) opts.onProgress?.(report.remaining, clock.now() - t0);
        last = seen;
        return report.remaining.length === 0 ? true : undefined;
      },
      { clock, deadlineMs: waitMs, initialDelayMs: 50, maxDelayMs: POLL_MAX_MS },
    );
  } catch (err) {
    if (!(err instanceof PollTimeoutError)) throw err;
  } finally {
    await withdrawDownRequest(discovery, stack).catch((err: unknown) => (report.withdrawError = errorText(err)));
  }
  return report;
}
