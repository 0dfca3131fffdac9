/**
 * What the page is fed, gathered in one process from everything that outlives a `stack up`:
 * - status: `stackStatus` (the state file checked against the runtimes), polled;
 * - events: from the engine itself when `stack up --ui` serves the page, else from the control
 *   channel of whoever runs the stack (engine/control.ts: a foreground `up` or a detached
 *   supervisor), re-tried while nobody does; the detached supervisor's earlier events come from
 *   its log (supervisor.log), so the page starts with the stack's history;
 * - registrations: discovery, polled; render records: `renders.json`, polled.
 * After the `stack up` that ran the stack has died, status, registrations and renders go on
 * (the page shows what the runtimes say); only new events stop, until a new `up` takes over.
 */
import { errorText } from '../util/error-text.js';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { DiscoveryManager } from '../discovery/manager.js';
import { controlSocketPath, readRenderRecords, subscribeControl, type ControlSubscription } from '../engine/control.js';
import type { RuntimeSet } from '../engine/runtimes.js';
import { stackStatus } from '../engine/stack.js';
import { readStateFile } from '../engine/state.js';
import type { ServiceStatusView } from '../engine/status.js';
import { parseSupervisorLine, supervisorLogPath } from '../engine/supervisor.js';
import type { EngineEvent } from '../engine/types.js';
import { buildGraph } from '../graph/graph.js';
import type { Profile } from '../profile/types.js';
import type { GraphView, Registration, ServiceSnapshot, StatusSnapshot, TimedEvent, UiMessage } from './view.js';

export interface Feed {
  /** Get the current picture (hello, status, history…), then every message as it comes. */
  subscribe(listener: (msg: UiMessage) => void): () => void;
  /** Poll status now (after an action). */
  refresh(): void;
  /** An event of this process's own doing (the stop action stopping a stack nobody runs). */
  publish(event: EngineEvent): void;
  close(): Promise<void>;
}

export interface FeedOptions {
  profile: Profile;
  stateDir: string;
  cwd: string;
  runtimes: RuntimeSet;
  /** Registrations are listed from it; none without. */
  discovery?: DiscoveryManager;
  /** The engine's own events (`stack up --ui`); default: the stack's control channel. */
  events?: (listener: (event: EngineEvent) => void) => () => void;
  /** Status polling interval; default 400 ms (the page must follow within a second). */
  pollMs?: number;
}

const HISTORY = 300;

export function graphView(profile: Profile): GraphView {
  const { graph } = buildGraph(profile);
  const enabled = [...graph.services.values()].filter((s) => s.enable);
  const names = new Set(enabled.map((s) => s.name));
  const dockerHost = profile.docker?.host ? hostOf(profile.docker.host) : undefined;
  return {
    nodes: enabled.map((s) => {
      const group = graph.groupOf(s.name);
      return {
        name: s.name,
        kind: s.kind,
        runtime: s.runtime,
        host: s.runtime === 'docker' && dockerHost ? `${s.address} (docker on ${dockerHost})` : s.address,
        ...(s.port !== undefined ? { port: s.port } : {}),
        ...(group !== undefined ? { group } : {}),
      };
    }),
    edges: graph.edges.filter((e) => names.has(e.from) && names.has(e.to)).map((e) => ({ from: e.from, to: e.to, type: e.type })),
    groups: graph.groups,
  };
}

/** The host part of a Docker endpoint, without credentials. */
function hostOf(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    return url.hostname || url.pathname;
  } catch {
    return 'a remote engine';
  }
}

export function snapshotOf(
  view: { phase?: StatusSnapshot['phase']; owner?: StatusSnapshot['owner']; services: ServiceStatusView[] },
  asOf?: string,
): StatusSnapshot {
  return {
    ...(asOf ? { asOf } : {}),
    ...(view.phase ? { phase: view.phase } : {}),
    ...(view.owner ? { owner: view.owner } : {}),
    services: view.services.map((s): ServiceSnapshot => ({
      name: s.name,
      kind: s.kind,
      state: s.state,
      health: s.health,
      ...(s.reason ? { reason: s.reason } : {}),
      restarts: s.restarts,
      running: s.running,
      ...(s.running && s.startedAt ? { startedAt: s.startedAt } : {}),
      ...(s.handle?.pid !== undefined ? { pid: s.handle.pid } : {}),
      ...(s.handle?.containerName ? { container: s.handle.containerName } : {}),
      ...(s.lastHealth ? { lastHealth: s.lastHealth } : {}),
    })),
  };
}

export function createFeed(opts: FeedOptions): Feed {
  const { profile, stateDir } = opts;
  const listeners = new Set<(msg: UiMessage) => void>();
  const hello: UiMessage = { kind: 'hello', stack: profile.name, graph: graphView(profile) };
  let status: UiMessage | undefined;
  let registrations: UiMessage | undefined;
  let renders: UiMessage | undefined;
  const history: UiMessage[] = [];
  let closed = false;

  const broadcast = (msg: UiMessage) => {
    for (const l of listeners) l(msg);
  };
  // A note says once what went wrong (Docker unreachable…), not at every poll.
  let lastNote: string | undefined;
  const note = (text: string) => {
    if (text === lastNote) return;
    lastNote = text;
    const msg: UiMessage = { kind: 'note', text };
    history.push(msg);
    broadcast(msg);
  };
  const onEvent = (event: TimedEvent) => {
    const msg: UiMessage = { kind: 'event', event };
    history.push(msg);
    if (history.length > HISTORY) history.shift();
    broadcast(msg);
    refresh(); // the snapshot follows at once
  };

  // ---- status, registrations, renders: polled, sent when changed -------------------------------
  let polling: Promise<void> | undefined;
  let again = false;
  const poll = async () => {
    // Read first: the status read next is at least as new as this time says.
    const asOf = (await readStateFile(stateDir).catch(() => undefined))?.updatedAt;
    const view = await stackStatus(profile, { runtimes: opts.runtimes, cwd: opts.cwd }).catch((err: unknown) => {
      note(`cannot read the stack's status: ${errorText(err)}`);
      return undefined;
    });
    if (view && !closed) {
      const next: UiMessage = { kind: 'status', status: snapshotOf(view, asOf) };
      if (JSON.stringify(next) !== JSON.stringify(status)) broadcast((status = next));
    }
    const records = await readRenderRecords(stateDir);
    const nextRenders: UiMessage = { kind: 'renders', renders: records };
    if (!closed && JSON.stringify(nextRenders) !== JSON.stringify(renders)) broadcast((renders = nextRenders));
  };
  const refresh = () => {
    if (polling) {
      again = true;
      return;
    }
    polling = poll()
      .catch(() => undefined)
      .finally(() => {
        polling = undefined;
        if (again && !closed) {
          again = false;
          refresh();
        }
      });
  };
  // Nobody looks: nothing to poll (a page that connects gets a fresh picture first).
  const statusTimer = setInterval(() => listeners.size > 0 && refresh(), opts.pollMs ?? 400);
  statusTimer.unref();

  const services = new Set(Object.keys(profile.services));
  const pollDiscovery = async () => {
    if (!opts.discovery) return;
    let next: UiMessage;
    try {
      const list = await opts.discovery.list();
      const instances: Registration[] = list
        .filter((i) => services.has(i.service) && (i.meta.stack === undefined || i.meta.stack === profile.name))
        .map((i) => ({
          id: i.id,
          service: i.service,
          address: i.address,
          ...(i.port !== undefined ? { port: i.port } : {}),
          ...(i.url ? { url: i.url } : {}),
          ...(i.expiresAt ? { expiresAt: i.expiresAt } : {}),
        }))
        .sort((a, b) => a.id.localeCompare(b.id));
      next = { kind: 'registrations', instances };
    } catch (err) {
      next = { kind: 'registrations', instances: [], error: errorText(err) };
    }
    if (!closed && JSON.stringify(next) !== JSON.stringify(registrations)) broadcast((registrations = next));
  };
  let discoveryBusy = false;
  const discoveryTimer = setInterval(() => {
    if (discoveryBusy || listeners.size === 0) return;
    discoveryBusy = true;
    void pollDiscovery().finally(() => (discoveryBusy = false));
  }, 1000);
  discoveryTimer.unref();

  // ---- events --------------------------------------------------------------------------------
  const stopEvents = opts.events ? opts.events((e) => onEvent({ time: new Date().toISOString(), ...e })) : followControlChannel(stateDir, onEvent, refresh);

  const ready = (async () => {
    const past = await supervisorHistory(stateDir);
    history.unshift(...past.slice(-HISTORY).map((event): UiMessage => ({ kind: 'event', event })));
    history.splice(0, Math.max(0, history.length - HISTORY));
    await poll().catch(() => undefined);
    await pollDiscovery();
  })();

  return {
    subscribe(listener) {
      let removed = false;
      void ready.then(async () => {
        if (removed) return;
        if (listeners.size === 0) await Promise.all([poll().catch(() => undefined), pollDiscovery()]); // the first look in a while: fresh
        if (removed) return;
        // The picture so far, then (in the same tick: nothing in between) every new message.
        listener(hello);
        for (const m of [renders, registrations, ...history, status]) if (m) listener(m);
        listeners.add(listener);
      });
      return () => {
        removed = true;
        listeners.delete(listener);
      };
    },
    refresh,
    publish: (event) => onEvent({ time: new Date().toISOString(), ...event }),
    async close() {
      closed = true;
      clearInterval(statusTimer);
      clearInterval(discoveryTimer);
      stopEvents();
      await ready.catch(() => undefined);
      await polling;
    },
  };
}

/**
 * The events of whoever runs the stack, from its control channel; while nobody does (the stack
 * is down, or its `stack up` died), look again every half second: a later `up` serves it again.
 * Returns the function that stops following.
 */
function followControlChannel(stateDir: string, onEvent: (e: TimedEvent) => void, onGone: () => void): () => void {
  let stopped = false;
  let subscription: ControlSubscription | undefined;
  let retry: NodeJS.Timeout | undefined;
  const later = () => {
    retry = setTimeout(connect, 500);
    retry.unref();
  };
  function connect(): void {
    if (stopped) return;
    if (!existsSync(controlSocketPath(stateDir))) return later();
    const toEvent = (line: string) => {
      const parsed = parseSupervisorLine(line);
      if (parsed && parsed.type !== 'report') onEvent(withTime(parsed, line));
    };
    subscription = subscribeControl(stateDir, toEvent, () => {
      subscription = undefined;
      if (stopped) return;
      onGone();
      later();
    });
  }
  connect();
  return () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    subscription?.close();
  };
}

/** A detached stack's history: the events its supervisor logged (supervisor.log) before we came. */
async function supervisorHistory(stateDir: string): Promise<TimedEvent[]> {
  const text = await readFile(supervisorLogPath(stateDir), 'utf8').catch(() => '');
  const past: TimedEvent[] = [];
  for (const line of text.split('\n')) {
    const parsed = line ? parseSupervisorLine(line) : undefined;
    if (parsed && parsed.type !== 'report') past.push(withTime(parsed, line));
  }
  return past;
}

/** An event line keeps the time it was printed with. */
function withTime(event: EngineEvent, line: string): TimedEvent {
  const time = (JSON.parse(line) as { time?: unknown }).time;
  return { ...event, time: typeof time === 'string' ? time : new Date().toISOString() };
}
