/**
 * Output formats: serialising a rendered `data:` tree (escaping by construction: a value is always
 * one value), and parsing free-text output back before it is written.
 *
 * One small codec per format, like unstorage's drivers: `serialize` for structured templates,
 * `parse` to check free text (and to read `env: true` files into an environment).
 */
import ini from 'ini';
import { parse as parseToml, stringify as stringifyToml, TomlError } from 'smol-toml';
import { Document, LineCounter, parseDocument, visit } from 'yaml';
import type { TemplateFormat } from '../../profile/types.js';
import { EnvSyntaxError, parseEnv, stringifyEnv } from './env.js';
import { FormatError, OutputSyntaxError, type PathSegment } from './errors.js';
import { checkJsonDuplicates, checkYamlDuplicates } from './duplicates.js';
import { checkIni } from './ini-check.js';
import { stringifyIni } from './ini.js';

export { FormatError, OutputSyntaxError, type PathSegment } from './errors.js';

export interface FormatCodec {
  /** Label used in messages: `JSON`, `YAML`, … */
  label: string;
  serialize(data: unknown): string;
  /** Parse output back; throws OutputSyntaxError. */
  parse(text: string): unknown;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reject values no format can hold faithfully (undefined, functions, NaN…), with their path. */
function checkTree(v: unknown, at: PathSegment[], allowNull: boolean): void {
  if (v === null) {
    if (!allowNull) throw new FormatError('null has no form in this format', at);
    return;
  }
  if (typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new FormatError(`${v} is not a finite number`, at);
    return;
  }
  if (Array.isArray(v)) return v.forEach((x, i) => checkTree(x, [...at, i], allowNull));
  if (isPlainObject(v)) return Object.entries(v).forEach(([k, x]) => checkTree(x, [...at, k], allowNull));
  throw new FormatError(`a ${typeof v} value cannot be serialised`, at);
}

function requireObject(data: unknown, label: string): Record<string, unknown> {
  if (!isPlainObject(data)) throw new FormatError(`${label} output needs a mapping of keys at the top of \`data\``);
  return data;
}

const json: FormatCodec = {
  label: 'JSON',
  serialize: (data) => {
    checkTree(data, [], true);
    return `${JSON.stringify(data, null, 2)}\n`;
  },
  parse: (text) => {
    let value: unknown;
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      // Node's message quotes a snippet of the input (maybe half a secret, which masking cannot
      // recognise): report only the kind of error, and find the position ourselves.
      const offset = jsonErrorOffset(text);
      const before = text.slice(0, offset);
      const line = before.split('\n').length;
      const kind = offset >= text.trimEnd().length ? 'unexpected end of input' : 'unexpected character';
      throw new OutputSyntaxError(kind, line, offset - before.lastIndexOf('\n'));
    }
    checkJsonDuplicates(text); // JSON.parse keeps the last of two equal keys
    return value;
  },
};

/**
 * Where JSON text stops being valid: the shortest prefix that fails with something other than
 * "unexpected end" (a prefix of valid JSON only ever runs out early). Binary search, O(log n) parses.
 */
function jsonErrorOffset(text: string): number {
  const broken = (n: number) => {
    try {
      JSON.parse(text.slice(0, n));
      return false;
    } catch (e) {
      const msg = (e as Error).message;
      if (/^Unexpected end of JSON input/.test(msg)) return false;
      const at = /at position (\d+)/.exec(msg);
      return !(at && Number(at[1]) >= n); // an error at the very end of the prefix: it just ran out
    }
  };
  let lo = 0;
  let hi = text.length; // the whole text is broken: the answer is at most its length
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (broken(mid + 1)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

const yaml: FormatCodec = {
  label: 'YAML',
  serialize: (data) => {
    checkTree(data, [], true);
    // lineWidth 0: never fold long values (folding round-trips, but reads badly in a config file).
    return yamlWithoutOddBreaks(data, { lineWidth: 0 });
  },
  parse: (text) => {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true, lineCounter });
    const err = doc.errors[0];
    if (err) throw new OutputSyntaxError(err.message.split('\n')[0] ?? 'invalid YAML', err.linePos?.[0].line, err.linePos?.[0].col);
    checkYamlDuplicates(doc, (offset) => lineCounter.linePos(offset)); // `123` and `"123"` are one key in toJS
    // A lone CR is a line break to some readers (PyYAML) and text to others: where they disagree, a
    // value can start a key only one of them sees. Our writer escapes it (`\r`).
    const cr = /\r(?!\n)/.exec(text);
    if (cr) {
      const pos = lineCounter.linePos(cr.index);
      throw new OutputSyntaxError('a carriage return inside a line (some YAML readers take it as a line break)', pos.line, pos.col);
    }
    try {
      return doc.toJS({ maxAliasCount: 100 }) as unknown;
    } catch (e) {
      throw new OutputSyntaxError((e as Error).message);
    }
  },
};

/**
 * NEL, LS and PS (U+0085, U+2028, U+2029) are line breaks to YAML 1.1 readers (PyYAML, many
 * others) and text to YAML 1.2: written raw, a value's `#…` becomes a comment there, or the rest
 * of the line something else. Strings holding them are double-quoted, where the escapes `\N`,
 * `\L` and `\P` stand for them in every YAML version.
 */
const ODD_BREAK = /[\u0085\u2028\u2029]/;
const holdsOddBreak = (v: unknown): boolean =>
  typeof v === 'string' ? ODD_BREAK.test(v) : typeof v === 'object' && v !== null && Object.entries(v).some(([k, x]) => ODD_BREAK.test(k) || holdsOddBreak(x));

function yamlWithoutOddBreaks(data: unknown, options: { lineWidth: number }): string {
  const doc = new Document(data);
  if (!holdsOddBreak(data)) return doc.toString(options); // the common case: no walk over the document
  const ODD = ODD_BREAK;
  let found = false;
  visit(doc, {
    Scalar(_, node) {
      if (typeof node.value === 'string' && ODD.test(node.value)) {
        node.type = 'QUOTE_DOUBLE';
        found = true;
      }
    },
  });
  const text = doc.toString(options);
  return found ? text.replace(/\u0085/g, '\\N').replace(/\u2028/g, '\\L').replace(/\u2029/g, '\\P') : text;
}

const toml: FormatCodec = {
  label: 'TOML',
  serialize: (data) => {
    checkTree(data, [], false);
    return `${stringifyToml(requireObject(data, 'TOML'))}\n`;
  },
  parse: (text) => {
    try {
      return parseToml(text);
    } catch (err) {
      if (err instanceof TomlError) throw new OutputSyntaxError(err.message.split('\n')[0] ?? 'invalid TOML', err.line, err.column);
      throw new OutputSyntaxError((err as Error).message);
    }
  },
};

const iniCodec: FormatCodec = {
  label: 'INI',
  serialize: (data) => {
    const obj = requireObject(data, 'INI');
    checkTree(obj, [], false);
    return stringifyIni(obj);
  },
  parse: (text) => {
    checkIni(text);
    return ini.parse(text);
  },
};

const env: FormatCodec = {
  label: 'ENV',
  serialize: (data) => {
    const obj = requireObject(data, 'ENV');
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (v === null || typeof v === 'object') throw new FormatError('ENV values must be strings, numbers or booleans', [k]);
      flat[k] = String(v);
    }
    try {
      return stringifyEnv(flat);
    } catch (err) {
      const key = Object.keys(flat).find((k) => (err as Error).message.includes(`'${k}'`));
      throw new FormatError((err as Error).message, key !== undefined ? [key] : []);
    }
  },
  parse: (text) => {
    try {
      return parseEnv(text);
    } catch (err) {
      if (err instanceof EnvSyntaxError) throw new OutputSyntaxError(err.message, err.line, err.column);
      throw err;
    }
  },
};

const text: FormatCodec = {
  label: 'text',
  serialize: (data) => {
    if (typeof data !== 'string') throw new FormatError('`text` output needs a template string, not a `data` tree');
    return data;
  },
  parse: (t) => t,
};

export const CODECS: Record<TemplateFormat, FormatCodec> = { json, yaml, toml, ini: iniCodec, env, text };

/**
 * What an `env: true` file gives the service's environment: an ENV file's variables, or the
 * top-level scalars of a structured file.
 */
export function environmentOf(format: TemplateFormat, content: string): Record<string, string> {
  if (format === 'text') throw new FormatError('`env: true` needs a structured format (env, json, yaml, toml, ini), not text');
  const value = CODECS[format].parse(content);
  const out: Record<string, string> = {};
  if (!isPlainObject(value)) return out;
  for (const [k, v] of Object.entries(value)) {
    if (v === null || typeof v === 'object') continue;
    out[k] = String(v);
  }
  return out;
}
