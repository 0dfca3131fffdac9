/** The live progress renderer: redrawn in place on a TTY, plain lines elsewhere, JSON events with --json. */
import { describe, expect, it } from 'vitest';
import type { Output } from '../../src/cli/output.js';
import { createProgress } from '../../src/cli/progress.js';

function fakeOutput(tty: boolean): Output & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return {
    color: false,
    tty,
    lines,
    errors,
    out: (l = '') => void lines.push(l),
    err: (l = '') => void errors.push(l),
    json: (v) => void lines.push(JSON.stringify(v)),
  };
}

describe('progress', () => {
  it('on a TTY, redraws one line per service in place', () => {
    const o = fakeOutput(true);
    const writes: string[] = [];
    let now = 0;
    const p = createProgress(o, { json: false, services: ['db', 'api'], write: (t) => void writes.push(t), now: () => now });
    p.event({ type: 'state', service: 'db', state: 'starting', previous: 'waiting', elapsedMs: 0 });
    now = 1500;
    p.event({ type: 'state', service: 'db', state: 'healthy', previous: 'checking', elapsedMs: 1500 });
    p.event({ type: 'state', service: 'api', state: 'blocked', previous: 'waiting', elapsedMs: 0, reason: "requires 'db', which failed" });
    p.finish();
    const last = writes.at(-1)!;
    // Moves up over the two lines drawn before, then rewrites each (cleared) line.
    expect(last.startsWith('\u001b[2F')).toBe(true);
    // eslint-disable-next-line no-control-regex -- strips the terminal's escape sequences on purpose
    const escapes = /\u001b\[[0-9;]*[A-Za-z]/g;
    const rows = last
      .split('\n')
      .filter(Boolean)
      .map((l) => l.replace(escapes, '').trim());
    expect(rows).toEqual([expect.stringMatching(/^db\s+healthy$/), expect.stringMatching(/^api\s+blocked\s+requires 'db', which failed$/)]);
    expect(o.lines).toEqual([]);
  });

  it('elsewhere, prints one plain line per change, warnings on stderr', () => {
    const o = fakeOutput(false);
    const p = createProgress(o, { json: false, services: ['db'], now: () => 0 });
    p.event({ type: 'state', service: 'db', state: 'checking', previous: 'starting', elapsedMs: 12 });
    p.event({ type: 'warning', service: 'api', message: 'optional dependency failed' });
    expect(o.lines).toEqual(['[  0.0s] db: checking (0.0s starting)']);
    expect(o.errors).toEqual(['[  0.0s] warning: api: optional dependency failed']);
  });

  it('with --json, prints one JSON event per line', () => {
    const o = fakeOutput(false);
    const p = createProgress(o, { json: true, services: [] });
    p.event({ type: 'state', service: 'db', state: 'healthy', previous: 'checking', elapsedMs: 5, pid: 42 });
    expect(o.lines).toHaveLength(1);
    expect(JSON.parse(o.lines[0]!)).toMatchObject({ type: 'state', service: 'db', state: 'healthy', pid: 42, time: expect.any(String) });
  });
});
