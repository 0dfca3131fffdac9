/** Terminal output: colour only on a TTY and never with NO_COLOR; plain lines elsewhere. */
import { formatProblem, type Problem } from '../errors.js';

export interface Output {
  readonly color: boolean;
  readonly tty: boolean;
  out(line?: string): void;
  err(line?: string): void;
  json(value: unknown): void;
}

export function createOutput(stdout: NodeJS.WriteStream = process.stdout, stderr: NodeJS.WriteStream = process.stderr): Output {
  const tty = Boolean(stdout.isTTY);
  const color = tty && !('NO_COLOR' in process.env && process.env.NO_COLOR !== '') && process.env.TERM !== 'dumb';
  return {
    color,
    tty,
    out: (line = '') => void stdout.write(`${line}\n`),
    err: (line = '') => void stderr.write(`${line}\n`),
    json: (value) => void stdout.write(`${JSON.stringify(value, null, 2)}\n`),
  };
}

const CODES = { red: [31, 39], green: [32, 39], yellow: [33, 39], blue: [34, 39], gray: [90, 39], bold: [1, 22], dim: [2, 22] } as const;
export type Style = keyof typeof CODES;

export function paint(o: Pick<Output, 'color'>, style: Style, text: string): string {
  if (!o.color) return text;
  const [open, close] = CODES[style];
  return `\u001b[${open}m${text}\u001b[${close}m`;
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
