/** The page's reducer: engine events and snapshots folded into what the page shows. */
import { describe, expect, it } from 'vitest';
import {
  applyMessage,
  describeEvent,
  initialView,
  MAX_EVENTS,
  stateTone,
  type EngineEventLike,
  type PageView,
  type StatusSnapshot,
  type UiMessage,
} from '../../src/ui/view.js';

const graph = {
  nodes: [
    { name: 'db', kind: 'service' as const, runtime: 'process', host: '127.0.0.1', port: 5432 },
    { name: 'web', kind: 'service' as const, runtime: 'process', host: '127.0.0.1', port: 8080 },
  ],
  edges: [{ from: 'web', to: 'db', type: 'required' as const }],
  groups: [],
};

function fold(...messages: UiMessage[]): PageView {
  return messages.reduce(applyMessage, initialView());
}

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const event = (e: EngineEventLike, s = 0): UiMessage => ({ kind: 'event', event: { ...e, time: at(s) } });

const healthySnapshot: StatusSnapshot = {
  phase: 'up',
  owner: { pid: 10, alive: true, detached: true },
  services: [
    { name: 'db', kind: 'service', state: 'healthy', health: 'healthy', restarts: 0, running: true, startedAt: at(0), pid: 100 },
    { name: 'web', kind: 'service', state: 'healthy', health: 'healthy', restarts: 0, running: true, startedAt: at(1), pid: 101 },
  ],
};

describe('applyMessage', () => {
  it('lists every service of the graph before anything ran, as pending', () => {
    const view = fold({ kind: 'hello', stack: 's', graph });
    expect(view.stack).toBe('s');
    expect(Object.keys(view.services).sort()).toEqual(['db', 'web']);
    expect(view.services.db).toMatchObject({ state: 'pending', running: false, node: { port: 5432 } });
  });

  it('shows a crash and the restart from events alone, before the next snapshot', () => {
    let view = fold({ kind: 'hello', stack: 's', graph }, { kind: 'status', status: healthySnapshot });
    view = applyMessage(view, event({ type: 'restart', service: 'db', attempt: 1, delayMs: 100, exit: 'killed by SIGKILL' }, 5));
    expect(view.services.db).toMatchObject({ restarts: 1, health: 'unhealthy', state: 'healthy' });
    view = applyMessage(
      view,
      event({ type: 'state', service: 'db', state: 'waiting', previous: 'healthy', elapsedMs: 0, reason: 'killed by SIGKILL; restarting in 100 ms' }, 5),
    );
    expect(view.services.db).toMatchObject({ state: 'waiting', running: false, reason: 'killed by SIGKILL; restarting in 100 ms' });
    view = applyMessage(view, event({ type: 'state', service: 'db', state: 'starting', previous: 'waiting', elapsedMs: 100 }, 6));
    expect(view.services.db!.reason).toBeUndefined(); // a new state without a reason clears the old one
    view = applyMessage(view, event({ type: 'state', service: 'db', state: 'checking', previous: 'starting', elapsedMs: 30, pid: 200 }, 6));
    expect(view.services.db).toMatchObject({ state: 'checking', running: true, pid: 200, startedAt: at(6) });
    view = applyMessage(view, event({ type: 'state', service: 'db', state: 'healthy', previous: 'checking', elapsedMs: 300, pid: 200 }, 7));
    expect(view.services.db).toMatchObject({ state: 'healthy', health: 'healthy', restarts: 1, pid: 200 });
    expect(view.services.web).toMatchObject({ state: 'healthy', pid: 101 }); // untouched
    expect(view.events.map((e) => e.type)).toEqual(['restart', 'state', 'state', 'state', 'state']);
  });

  it('lets a snapshot correct what events said, and drops the fields it no longer has', () => {
    let view = fold({ kind: 'hello', stack: 's', graph }, { kind: 'status', status: healthySnapshot });
    view = applyMessage(view, event({ type: 'state', service: 'web', state: 'failed', previous: 'healthy', elapsedMs: 0, reason: 'exited with code 1' }));
    const snapshot: StatusSnapshot = {
      phase: 'up',
      owner: { pid: 10, alive: false },
      services: [
        { ...healthySnapshot.services[0]! },
        { name: 'web', kind: 'service', state: 'failed', health: 'unhealthy', restarts: 2, running: false, reason: 'gave up' },
      ],
    };
    view = applyMessage(view, { kind: 'status', status: snapshot });
    expect(view.services.web).toMatchObject({ state: 'failed', restarts: 2, running: false, reason: 'gave up' });
    expect(view.services.web!.pid).toBeUndefined();
    expect(view.services.web!.startedAt).toBeUndefined();
    expect(view.owner).toEqual({ pid: 10, alive: false });
  });

  it('keeps what a newer event said over a snapshot of a state file written before it', () => {
    let view = fold({ kind: 'hello', stack: 's', graph }, { kind: 'status', status: { ...healthySnapshot, asOf: at(1) } });
    view = applyMessage(view, event({ type: 'state', service: 'db', state: 'waiting', previous: 'healthy', elapsedMs: 0, reason: 'killed' }, 5));
    view = applyMessage(view, { kind: 'status', status: { ...healthySnapshot, asOf: at(4) } }); // read before the state file caught up
    expect(view.services.db).toMatchObject({ state: 'waiting', reason: 'killed' });
    expect(view.services.web).toMatchObject({ state: 'healthy' });
    const caughtUp: StatusSnapshot = {
      ...healthySnapshot,
      asOf: at(6),
      services: [{ ...healthySnapshot.services[0]!, state: 'starting', running: false }, healthySnapshot.services[1]!],
    };
    view = applyMessage(view, { kind: 'status', status: caughtUp });
    expect(view.services.db).toMatchObject({ state: 'starting', running: false });
  });

  it('shows every service stopped once nothing is recorded (the stack is down)', () => {
    let view = fold({ kind: 'hello', stack: 's', graph }, { kind: 'status', status: healthySnapshot });
    view = applyMessage(view, { kind: 'status', status: { services: [] } });
    expect(view.services.db).toMatchObject({ state: 'stopped', running: false, health: 'unknown' });
    expect(view.services.db!.lastHealth).toBeUndefined();
    expect(view.phase).toBeUndefined();
    expect(view.owner).toBeUndefined();
  });

  it('follows the stack phase, health changes and the last check result', () => {
    let view = fold({ kind: 'hello', stack: 's', graph }, { kind: 'status', status: healthySnapshot });
    view = applyMessage(view, event({ type: 'health', service: 'web', healthy: false, detail: 'HTTP 503 from GET /health' }, 9));
    expect(view.services.web).toMatchObject({ health: 'unhealthy', lastHealth: { ok: false, detail: 'HTTP 503 from GET /health', at: at(9) } });
    view = applyMessage(view, event({ type: 'stack', stack: 's', phase: 'stopping', elapsedMs: 1 }));
    expect(view.phase).toBe('stopping');
  });

  it('attaches registrations and render records to their services', () => {
    let view = fold({ kind: 'hello', stack: 's', graph });
    view = applyMessage(view, {
      kind: 'registrations',
      instances: [
        { id: 's-db-0', service: 'db', address: '127.0.0.1', port: 5432 },
        { id: 'other', service: 'nope', address: 'x' },
      ],
    });
    expect(view.services.db!.registrations.map((r) => r.id)).toEqual(['s-db-0']);
    expect(view.services.web!.registrations).toEqual([]);
    view = applyMessage(view, { kind: 'registrations', instances: [], error: 'etcd unreachable' });
    expect(view.registrationsError).toBe('etcd unreachable');
    view = applyMessage(view, { kind: 'renders', renders: { db: { at: at(3), why: 'restart requested (stack ui)', files: ['db.env'] } } });
    expect(view.services.db!.lastRender?.why).toBe('restart requested (stack ui)');
    view = applyMessage(view, { kind: 'renders', renders: {} });
    expect(view.services.db!.lastRender).toBeUndefined();
  });

  it('keeps the newest events only, and never mutates the view it was given', () => {
    let view = fold({ kind: 'hello', stack: 's', graph });
    const frozen = JSON.stringify(view);
    const next = applyMessage(view, event({ type: 'warning', message: 'hm' }));
    expect(JSON.stringify(view)).toBe(frozen);
    expect(next.events).toHaveLength(1);
    for (let i = 0; i < MAX_EVENTS + 10; i++) view = applyMessage(view, event({ type: 'warning', message: `w${i}` }));
    expect(view.events).toHaveLength(MAX_EVENTS);
    expect(describeEvent(view.events.at(-1)!)).toBe(`warning: w${MAX_EVENTS + 9}`);
  });
});

describe('describeEvent and stateTone', () => {
  it('say what `stack up` says', () => {
    expect(describeEvent({ type: 'restart', service: 'db', attempt: 2, delayMs: 1500, exit: 'exited with code 1' })).toBe(
      'db: exited with code 1; restart 2 in 1.5s',
    );
    expect(describeEvent({ type: 'state', service: 'db', state: 'failed', previous: 'checking', elapsedMs: 1, reason: 'timeout' })).toBe(
      'db: failed — timeout',
    );
    expect(stateTone('healthy')).toBe('ok');
    expect(stateTone('blocked')).toBe('bad');
    expect(stateTone('checking')).toBe('busy');
    expect(stateTone('stopped')).toBe('idle');
  });
});
