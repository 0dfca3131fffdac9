/**
 * Live progress of `stack up` / `stack down`, in one of three forms:
 * - a TTY: one line per service (state, elapsed time in that state, reason), redrawn in place
 *   while anything is still in motion, warnings listed under the table;
 * - anything else: one plain line per change, nothing redrawn (logs, CI);
 * - `--json`: one JSON event per line, nothing else on stdout.
 * Events never carry environment values; what they do carry from outside (reasons, error
 * messages) is printed through `clean`, and every write goes through the output's redactor.
 */
import type { EngineEvent, ServiceState } from '../engine/types.js';
import { describeLeader } from '../ui/view.js';
import { clean, pad, paint, type Output, type Style } from './output.js';

export interface Progress {
  event(e: EngineEvent): void;
  /** Draw the final table (TTY) and stop redrawing. */
  finish(): void;
}

export interface ProgressOptions {
  json: boolean;
  /** Services in display order. */
  services: string[];
  /** Raw writes for in-place redrawing; default stdout. */
  write?: (text: string) => void;
  now?: () => number;
}

const STYLE: Partial<Record<ServiceState, Style>> = {
  healthy: 'green',
  completed: 'green',
  failed: 'red',
  blocked: 'red',
  waiting: 'gray',
  pending: 'gray',
  starting: 'yellow',
  checking: 'yellow',
  running: 'yellow',
  stopping: 'blue',
  stopped: 'gray',
};

const MOVING: ReadonlySet<ServiceState> = new Set(['pending', 'waiting', 'starting', 'checking', 'running', 'stopping']);
const REDRAW_MS = 100;

export function createProgress(o: Output, opts: ProgressOptions): Progress {
  if (opts.json) return jsonProgress(o);
  // A table taller than the terminal cannot be redrawn in place (the cursor cannot move above
  // the screen): plain lines then.
  const fits = opts.services.length + 4 <= (process.stdout.rows || 50);
  return o.tty && (fits || opts.write) ? ttyProgress(o, opts) : plainProgress(o, opts.now ?? Date.now);
}

function jsonProgress(o: Output): Progress {
  return {
    event: (e) => o.out(JSON.stringify({ time: new Date().toISOString(), ...e })),
    finish: () => undefined,
  };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function describe(e: EngineEvent): string | undefined {
  switch (e.type) {
    case 'state':
      return `${e.service}: ${e.state}${e.reason ? ` — ${clean(e.reason)}` : ''}${e.state === 'starting' || e.state === 'waiting' ? '' : ` (${seconds(e.elapsedMs)} ${e.previous})`}`;
    case 'health':
      return `${e.service}: ${e.healthy ? 'healthy again' : 'unhealthy'} — ${clean(e.detail)}`;
    case 'restart':
      return `${e.service}: ${e.exit}; restart ${e.attempt} in ${seconds(e.delayMs)}`;
    case 'registered':
      return undefined;
    case 'warning':
      return `warning: ${e.service ? `${e.service}: ` : ''}${clean(e.message)}`;
    case 'stack':
      return `stack ${e.stack}: ${e.phase}`;
    case 'render':
      return e.outcome === 'unchanged'
        ? undefined
        : `${e.service}: ${clean(e.template)} ${e.outcome === 'changed' ? 're-rendered' : 'not re-rendered, the last good file is kept'} — ${clean(e.reason)}`;
    case 'reload':
      return `${e.service}: ${e.action}${e.signal ? ` ${e.signal}` : ''} — ${clean(e.reason)}`;
    case 'deregistered':
      return `${e.service}: withdrawn from discovery — ${clean(e.reason)}`;
    case 'leader':
      return clean(describeLeader(e));
  }
}

function plainProgress(o: Output, now: () => number): Progress {
  const t0 = now();
  return {
    event(e) {
      const text = describe(e);
      if (text === undefined) return;
      const line = `[${seconds(now() - t0).padStart(6)}] ${text}`;
      if (e.type === 'warning') o.err(paint(o, 'yellow', line));
      else o.out(line);
    },
    finish: () => undefined,
  };
}

interface Row {
  state: ServiceState;
  since: number;
  reason?: string;
}

function ttyProgress(o: Output, opts: ProgressOptions): Progress {
  const now = opts.now ?? Date.now;
  const write = opts.write ?? ((text: string) => (o.write ? o.write(text) : void process.stdout.write(text)));
  const rows = new Map<string, Row>(opts.services.map((s) => [s, { state: 'pending', since: now() }]));
  const notes: string[] = [];
  const width = Math.max(8, ...opts.services.map((s) => s.length)) + 2;
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;

  const draw = () => {
    // A line longer than the terminal wraps and breaks the redraw: cut reasons and notes to fit.
    const cols = process.stdout.columns || 200;
    const fit = (text: string, room: number) => (text.length > room ? `${text.slice(0, Math.max(0, room - 1))}…` : text);
    const lines: string[] = [];
    for (const [name, row] of rows) {
      const elapsed = MOVING.has(row.state) ? seconds(now() - row.since) : '';
      const state = paint(o, STYLE[row.state] ?? 'bold', pad(row.state, 10));
      const reason = row.reason ? paint(o, 'gray', fit(row.reason, cols - width - 21)) : '';
      lines.push(`  ${pad(name, width)}${state}${pad(elapsed, 8)}${reason}`);
    }
    for (const note of notes) lines.push(paint(o, 'yellow', fit(note, cols - 1)));
    // Move to the top of what we drew last time, then rewrite every line (clearing leftovers).
    const up = drawn > 0 ? `\u001b[${drawn}F` : '';
    write(up + lines.map((l) => `\u001b[2K${l}\n`).join(''));
    drawn = lines.length;
  };

  const tick = () => {
    const moving = [...rows.values()].some((r) => MOVING.has(r.state));
    if (moving && !timer) {
      timer = setInterval(draw, REDRAW_MS);
      timer.unref();
    } else if (!moving && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  return {
    event(e) {
      if (e.type === 'state') {
        const row: Row = { state: e.state, since: now() };
        if (e.reason) row.reason = clean(e.reason);
        rows.set(e.service, row);
      } else if (
        e.type === 'warning' ||
        e.type === 'restart' ||
        e.type === 'health' ||
        e.type === 'render' ||
        e.type === 'reload' ||
        e.type === 'deregistered' ||
        e.type === 'leader'
      ) {
        const text = describe(e);
        if (text) notes.push(text);
      } else {
        return;
      }
      draw();
      tick();
    },
    finish() {
      if (timer) clearInterval(timer);
      timer = undefined;
      draw();
    },
  };
}
