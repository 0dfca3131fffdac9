/**
 * Environment interpolation with Docker Compose's rules:
 *   $$            a literal $
 *   $VAR ${VAR}   the value, empty if unset
 *   ${VAR:-def}   def if VAR is unset or empty      ${VAR-def}   def if VAR is unset
 *   ${VAR:?msg}   error if VAR is unset or empty     ${VAR?msg}   error if VAR is unset
 *   ${VAR:+alt}   alt if VAR is set and non-empty    ${VAR+alt}   alt if VAR is set
 * Defaults and messages may themselves contain interpolations (`${A:-${B}}`).
 */

export class InterpolationError extends Error {
  constructor(
    message: string,
    readonly variable: string,
  ) {
    super(message);
  }
}

export type Env = Record<string, string | undefined>;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/** The variable's own value: never one inherited from Object.prototype (`${toString}`). */
function lookup(env: Env, name: string): string | undefined {
  if (!Object.prototype.hasOwnProperty.call(env, name)) return undefined;
  const value = env[name];
  return typeof value === 'string' ? value : undefined;
}

export function interpolate(text: string, env: Env): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch !== '$') {
      out += ch;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
    } else if (next === '{') {
      const end = matchingBrace(text, i + 1);
      if (end < 0) throw new InterpolationError(`unterminated '\${' in "${text}"`, '');
      out += expand(text.slice(i + 2, end), env);
      i = end + 1;
    } else {
      const m = NAME.exec(text.slice(i + 1));
      if (m) {
        out += lookup(env, m[0]) ?? '';
        i += 1 + m[0].length;
      } else {
        out += '$';
        i++;
      }
    }
  }
  return out;
}

function matchingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

function expand(body: string, env: Env): string {
  const m = NAME.exec(body);
  if (!m) throw new InterpolationError(`invalid interpolation '\${${body}}'`, body);
  const name = m[0];
  const rest = body.slice(name.length);
  const value = lookup(env, name);
  if (rest === '') return value ?? '';
  const op = /^(:?[-?+])/.exec(rest)?.[1];
  if (!op) throw new InterpolationError(`invalid interpolation '\${${body}}'`, name);
  const arg = rest.slice(op.length);
  const unset = value === undefined;
  const missing = op.startsWith(':') ? unset || value === '' : unset;
  switch (op.replace(':', '')) {
    case '-':
      return missing ? interpolate(arg, env) : (value ?? '');
    case '?':
      if (missing) {
        const msg = interpolate(arg, env);
        throw new InterpolationError(`required variable ${name} is ${unset ? 'missing' : 'empty'}${msg ? `: ${msg}` : ''}`, name);
      }
      return value ?? '';
    default: // '+'
      return missing ? '' : interpolate(arg, env);
  }
}
