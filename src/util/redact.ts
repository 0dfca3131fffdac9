/**
 * Masking secrets in everything the tool prints: one module, used by every printer (the CLI's
 * output, `render`, `--check` diffs, error messages) and by whoever shows a profile.
 *
 * A secret can reach text spelled in many ways: as written, JSON-escaped, YAML-quoted or as the
 * lines of a YAML block scalar, ENV-quoted, URL-encoded… Masking by searching for the raw value
 * alone misses all but the first, so a redactor is built from every *spelling* of every value:
 * the formats contribute spellers (src/formats/spell.ts) that write the value the way they
 * do. A spelling is masked wherever it appears as a substring (when long enough not to garble
 * unrelated text), and each line of a multi-line spelling is masked where a whole line of the
 * text is that line (a PEM key's short last line included).
 *
 * Independent of any known value, the password of a URL (`scheme://user:password@host`) is always
 * masked, and values whose names look secret (`*_TOKEN`, `*_PASSWORD`, …) count as secrets.
 */

export const MASK = '••••';

/** Secret values (and spellings) shorter than this are not masked inside text: they would mask every `a` or `t`. */
export const MIN_MASKABLE = 6;

/**
 * Names whose values are secrets even when nobody said so (environment variables, option keys).
 * The profile's `secretEnvironment` default uses the same pattern (src/profile/normalize.ts).
 */
export const SECRET_NAME = /(SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|CREDENTIAL|API_?KEY|_KEY_HEX|_KEY$)/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** Writes a value the way one format does (the value's text inside the output, without quotes). */
export type Speller = (value: string) => Iterable<string>;

/** Spellings that need no format library: as written, JSON string escapes, URL encoding. */
export const BASIC_SPELLERS: readonly Speller[] = [
  (v) => [v],
  (v) => [JSON.stringify(v).slice(1, -1)],
  (v) => [encodeURIComponent(v), encodeURI(v)],
  // YAML/TOML single quotes double a quote; shell and ENV writers backslash-escape it.
  (v) => [v.replace(/'/g, "''"), v.replace(/(["\\$`])/g, '\\$1')],
];

export interface Redactor {
  (text: string): string;
  /** Whether a text holds a secret in any known spelling. */
  holds(text: string): boolean;
}

/**
 * `scheme://user:password@` → the user kept, the password masked; gRPC writes a target as
 * `dns:user:password@host` (etcd's client), which counts too.
 */
const URL_CREDENTIALS = /((?:[a-z][a-z0-9+.-]*:\/\/|\bdns:(?:\/\/\/?)?)[^\s/:@'"`<>]*:)([^\s/@'"`<>]+)@/gi;

/** The passwords of the URLs in a text (raw and percent-decoded), for adding to a redactor's values. */
export function urlPasswords(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(URL_CREDENTIALS)) {
    const pw = m[2]!;
    out.push(pw);
    try {
      const decoded = decodeURIComponent(pw);
      if (decoded !== pw) out.push(decoded);
    } catch {
      /* not percent-encoded */
    }
  }
  return out;
}

export function redactUrlCredentials(text: string): string {
  return text.includes('@') ? text.replace(URL_CREDENTIALS, `$1${MASK}@`) : text;
}

/**
 * A redactor for these values, in every spelling the spellers produce. Values shorter than
 * MIN_MASKABLE are masked only as whole lines of multi-line values (see the module comment).
 */
export function createRedactor(values: Iterable<string>, spellers: readonly Speller[] = BASIC_SPELLERS): Redactor {
  const substrings = new Set<string>();
  const lines = new Set<string>();
  for (const value of values) {
    if (value.trim() === '') continue;
    const multiLine = /[\r\n]/.test(value);
    if (!multiLine && value.length < MIN_MASKABLE) continue;
    for (const speller of spellers) {
      let spelled: Iterable<string>;
      try {
        spelled = speller(value);
      } catch {
        continue; // a format that cannot hold this value cannot have printed it
      }
      for (const s of spelled) {
        if (s.length >= MIN_MASKABLE) substrings.add(s);
        if (!multiLine) continue;
        for (const line of s.split(/\r\n|\r|\n/)) {
          const t = line.trim();
          // A short line must still say something (`Ag==`), not be punctuation every file has (`}`).
          if (t.length < 2 || !/[A-Za-z0-9]/.test(t)) continue;
          lines.add(t);
          if (t.length >= MIN_MASKABLE) substrings.add(t);
        }
      }
    }
  }
  const list = [...substrings].sort((a, b) => b.length - a.length);
  const maskLines = (text: string) => {
    if (lines.size === 0) return text;
    return text
      .split('\n')
      .map((line) => {
        const t = line.replace(/\r$/, '').trim();
        return lines.has(t) ? line.replace(t, MASK) : line;
      })
      .join('\n');
  };
  const redact = ((text: string) => {
    let out = text;
    for (const s of list) if (out.includes(s)) out = out.split(s).join(MASK);
    return redactUrlCredentials(maskLines(out));
  }) as Redactor;
  redact.holds = (text) => {
    if (list.some((s) => text.includes(s))) return true;
    return lines.size > 0 && text.split('\n').some((line) => lines.has(line.replace(/\r$/, '').trim()));
  };
  return redact;
}

/**
 * A copy of a value for display, every string redacted. With `byName`, the value of every key
 * whose name looks secret (`natsPassword`, `API_TOKEN`) is masked whole too — for showing
 * configuration (`profiles show`), not for machine output whose fields must keep their meaning.
 * For JSON and YAML output, mask the data before it is serialised: a mask applied to serialised
 * text could cut across a quote.
 */
export function redactDeep(value: unknown, redact: (text: string) => string = redactUrlCredentials, opts: { byName?: boolean } = {}, key?: string): unknown {
  if (typeof value === 'string') return opts.byName && key !== undefined && isSecretName(key) && value !== '' ? MASK : redact(value);
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, redact, opts));
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactDeep(v, redact, opts, k);
    return out;
  }
  return value;
}

/**
 * The process's known secrets, for the last line of defence: everything the CLI prints goes
 * through `redactOutput`. Template contexts add their secret values (in every spelling) here.
 */
const known = new Set<string>();
const knownSpellers: Speller[] = [...BASIC_SPELLERS];
let outputRedactor: Redactor | undefined;

export function addKnownSecrets(values: Iterable<string>, spellers: readonly Speller[] = []): void {
  for (const s of spellers) if (!knownSpellers.includes(s)) knownSpellers.push(s);
  for (const v of values) known.add(v);
  outputRedactor = undefined;
}

/** Values of environment variables whose names look secret. */
export function secretEnvironmentValues(env: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) {
    if (typeof v !== 'string' || v === '') continue;
    if (isSecretName(k)) out.push(v);
    out.push(...urlPasswords(v));
  }
  return out;
}

export function redactOutput(text: string): string {
  outputRedactor ??= createRedactor(known, knownSpellers);
  return outputRedactor(text);
}
