/**
 * ENV files (dotenv conventions), written so that no value can add or change a key.
 *
 * Writer, per value:
 *   - only safe characters (`A-Za-z0-9_./:@%+,-`): bare, `KEY=value`;
 *   - no `'`, newline or control character: single quotes, taken literally by every reader
 *     (Compose, bash, dotenv, godotenv/envparse) — so `$`, `#`, `=`, `"` and `\` need no escape;
 *   - otherwise double quotes with backslash escapes `\\ \" \n \r \t \$ \``, which Compose,
 *     bash, godotenv and our parser read back exactly. (The Node `dotenv` package only unescapes
 *     `\n` in double quotes: such values carry extra backslashes there, but still cannot inject.)
 * Keys must be identifiers (`[A-Za-z_][A-Za-z0-9_]*`); NUL cannot be in an environment at all.
 *
 * Parser: the same conventions, strict — a line that is neither blank, a comment nor `KEY=value`
 * is an error with its line number, and so are a key set twice and a carriage return that does not
 * end a line (a line break for `dotenv`).
 */

export const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BARE_SAFE = /^[A-Za-z0-9_./:@%+,-]*$/;
// eslint-disable-next-line no-control-regex
const NEEDS_DOUBLE = /['\u0000-\u001f\u007f]/;

export function escapeEnvDoubleQuoted(value: string): string {
  return value.replace(/[\\"$`\n\r\t]/g, (c) => ({ '\n': '\\n', '\r': '\\r', '\t': '\\t' })[c] ?? `\\${c}`);
}

export function quoteEnvValue(value: string): string {
  if (value.includes('\u0000')) throw new Error('an environment value cannot contain a NUL character');
  if (BARE_SAFE.test(value)) return value;
  if (!NEEDS_DOUBLE.test(value)) return `'${value}'`;
  return `"${escapeEnvDoubleQuoted(value)}"`;
}

export class EnvSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(message);
  }
}

const UNESCAPE: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', '"': '"', $: '$', '`': '`' };

/** Parse an ENV file; throws EnvSyntaxError at the first malformed line or repeated key. */
export function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let i = 0;
  let line = 1;
  const n = text.length;
  const fail = (msg: string, at: number): never => {
    throw new EnvSyntaxError(msg, line, at - text.lastIndexOf('\n', at - 1));
  };
  // A carriage return not ending a line: the Node `dotenv` package (and others) read it as a line
  // break, so in a value it starts a key of its own. Our writer never emits one (it writes `\r`).
  const cr = /\r(?!\n)/.exec(text);
  if (cr) {
    line = text.slice(0, cr.index).split('\n').length;
    fail('a carriage return inside a line (dotenv readers take it as a line break, which would start another key)', cr.index);
  }
  while (i < n) {
    // One statement per iteration; `i` is at the start of a line.
    const lineStart = i;
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
    if (i >= n) break;
    if (text[i] === '\n' || text[i] === '\r' || text[i] === '#') {
      while (i < n && text[i] !== '\n') i++;
      i++;
      line++;
      continue;
    }
    if (text.startsWith('export ', i)) i += 'export '.length;
    const keyMatch = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i, i + 256));
    if (!keyMatch) fail(`expected KEY=value, found '${firstLine(text, lineStart)}'`, i);
    const key = keyMatch![0];
    i += key.length;
    while (text[i] === ' ' || text[i] === '\t') i++;
    if (text[i] !== '=') fail(`expected '=' after ${key}`, i);
    i++;
    while (text[i] === ' ' || text[i] === '\t') i++;
    let value = '';
    const quote = text[i];
    if (quote === '"' || quote === "'") {
      const startLine = line;
      i++;
      for (;;) {
        if (i >= n) {
          line = startLine;
          fail(`unterminated ${quote === '"' ? 'double' : 'single'}-quoted value of ${key}`, lineStart);
        }
        const c = text[i]!;
        if (c === quote) {
          i++;
          break;
        }
        if (c === '\n') line++;
        if (quote === '"' && c === '\\' && i + 1 < n) {
          const next = text[i + 1]!;
          value += UNESCAPE[next] ?? `\\${next}`;
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      // After the closing quote: only blanks and an optional comment.
      while (text[i] === ' ' || text[i] === '\t' || text[i] === '\r') i++;
      if (i < n && text[i] !== '\n' && text[i] !== '#') fail(`unexpected text after the quoted value of ${key}`, i);
      while (i < n && text[i] !== '\n') i++;
    } else {
      const end = text.indexOf('\n', i);
      let raw = text.slice(i, end < 0 ? n : end);
      i = end < 0 ? n : end;
      const comment = raw.search(/\s#/);
      if (comment >= 0) raw = raw.slice(0, comment);
      value = raw.replace(/\r$/, '').trim();
    }
    if (Object.prototype.hasOwnProperty.call(out, key)) fail(`${key} is set twice`, lineStart);
    out[key] = value;
    i++; // the newline
    line++;
  }
  return { ...out };
}

function firstLine(text: string, from: number): string {
  const end = text.indexOf('\n', from);
  return text.slice(from, end < 0 ? undefined : end).trim();
}

/** Serialise a flat record as an ENV file; throws on a key that is not an identifier. */
export function stringifyEnv(record: Record<string, string>): string {
  let out = '';
  for (const [key, value] of Object.entries(record)) {
    if (!ENV_KEY.test(key)) throw new Error(`'${key}' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)`);
    out += `${key}=${quoteEnvValue(value)}\n`;
  }
  return out;
}
