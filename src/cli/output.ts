/**
 * Terminal output: colour only on a TTY and never with NO_COLOR; plain lines elsewhere.
 *
 * Everything printed goes through the process's redactor (src/util/redact.ts): a secret a command
 * forgot to mask is masked here. Values that came from outside (discovery records, backend
 * errors) are printed through `clean`, so they cannot move the cursor, retitle the terminal or
 * fake a line. And an output that went away (`stack down | head -1`: EPIPE) never stops the work:
 * further output to it is dropped and the command finishes with its own exit code.
 */
import { formatProblem, type Problem } from '../errors.js';
import { redactOutput } from '../util/redact.js';

export interface Output {
  readonly color: boolean;
  readonly tty: boolean;
  out(line?: string): void;
  err(line?: string): void;
  json(value: unknown): void;
  /** Raw text to stdout (no newline added), masked like the rest: for in-place redrawing and pre-formatted documents. */
  write?(text: string): void;
  /** True once stdout's reader has gone (EPIPE): a command that would only go on printing (`logs -f`) stops. */
  gone?(): boolean;
}

/** Streams whose reader went away: written to no more. */
const closed = new WeakSet<NodeJS.WritableStream>();

/**
 * Keep a broken pipe (EPIPE) or a closed terminal on a stream from crashing the process: Node
 * emits those as 'error' events, which kill the process when nobody listens. Idempotent.
 */
export function guardStream(stream: NodeJS.WritableStream): void {
  const s = stream as NodeJS.WritableStream & { __stackGuarded?: boolean };
  if (s.__stackGuarded) return;
  s.__stackGuarded = true;
  // EPIPE (the reader left), EIO (the terminal closed), …: whatever it is, the output is gone and
  // the work goes on; there is nowhere left to report it.
  stream.on('error', () => closed.add(stream));
}

function writeTo(stream: NodeJS.WritableStream, text: string): void {
  if (closed.has(stream)) return;
  try {
    stream.write(text);
  } catch {
    closed.add(stream); // a synchronous failure (a destroyed stream): same as EPIPE
  }
}

export function createOutput(stdout: NodeJS.WriteStream = process.stdout, stderr: NodeJS.WriteStream = process.stderr): Output {
  guardStream(stdout);
  guardStream(stderr);
  const tty = Boolean(stdout.isTTY);
  const color = tty && !('NO_COLOR' in process.env && process.env.NO_COLOR !== '') && process.env.TERM !== 'dumb';
  return {
    color,
    tty,
    out: (line = '') => writeTo(stdout, `${redactOutput(line)}\n`),
    err: (line = '') => writeTo(stderr, `${redactOutput(line)}\n`),
    // Masked as data before serialising: a mask applied to JSON text could cut across a quote.
    json: (value) => writeTo(stdout, `${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? redactOutput(v) : v), 2)}\n`),
    write: (text) => writeTo(stdout, redactOutput(text)),
    gone: () => closed.has(stdout),
  };
}

const CODES = { red: [31, 39], green: [32, 39], yellow: [33, 39], blue: [34, 39], gray: [90, 39], bold: [1, 22], dim: [2, 22] } as const;
export type Style = keyof typeof CODES;

export function paint(o: Pick<Output, 'color'>, style: Style, text: string): string {
  if (!o.color) return text;
  const [open, close] = CODES[style];
  return `\u001b[${open}m${text}\u001b[${close}m`;
}

/**
 * A value from outside (a discovery record, a backend's error) made safe to print on one line of
 * a terminal: control characters (ESC, CR, LF, BEL, …, C1 controls), and the invisible characters
 * that reorder or hide text (bidi overrides, zero-width), are shown as escapes (`\x1b`, `\n`, `\u202e`).
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\\]/g;
export function clean(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value ?? '');
  return text.replace(UNSAFE_CHARS, (c) => {
    if (c === '\\') return '\\\\';
    const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
    if (named[c]) return named[c];
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

export function printProblems(o: Output, problems: Problem[]): void {
  for (const p of problems) {
    const label = p.severity === 'warning' ? paint(o, 'yellow', 'warning') : paint(o, 'red', 'error');
    o.err(`${label}: ${formatProblem(p)}`);
  }
}

/** Pad to a width, for aligned columns. */
export function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}
