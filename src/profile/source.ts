/**
 * Parsing profile files while keeping source positions, so every problem can name its
 * file:line:column. Positions come from the `yaml` package (JSON is YAML 1.2), which is slow on
 * large files (a 10,000-service profile takes seconds): valid input is therefore read by a fast
 * parser without positions (JSON.parse, js-yaml's YAML 1.2 core schema), and the positioned parse
 * runs only when there is a problem to report. TOML goes through smol-toml, with positions found
 * by a line scan (smol-toml keeps none).
 */
import { createRequire } from 'node:module';
import type { TomlError } from 'smol-toml';
import type * as JsYaml from 'js-yaml';
import type * as Yaml from 'yaml';
import type { Document, Node, Pair, YAMLMap } from 'yaml';
import type { Problem, SourceLocation } from '../errors.js';

// Parsers load on first use (synchronously): validating a built-in profile needs neither.
const requireCjs = createRequire(import.meta.url);
let yamlLib: typeof Yaml | undefined;
const yaml = () => (yamlLib ??= requireCjs('yaml') as typeof Yaml);
const parseToml = (text: string): unknown => (requireCjs('smol-toml') as typeof import('smol-toml')).parse(text);
let jsYamlLib: typeof JsYaml | undefined;
const jsYaml = () => (jsYamlLib ??= requireCjs('js-yaml') as typeof JsYaml);

export type PathSegment = string | number;

export interface ParsedFile {
  /** Display name (path as given, or `builtin:<name>`). */
  file: string;
  value: unknown;
  problems: Problem[];
  /** Position of the value (or key) at a path; the deepest existing ancestor if it is absent. */
  locate(path: readonly PathSegment[], opts?: { key?: boolean }): SourceLocation;
  /** Whether this file itself sets the value at a path. */
  has(path: readonly PathSegment[]): boolean;
}

/** YAML aliases beyond this count are treated as a resource-exhaustion attack (billion laughs). */
const MAX_ALIAS_COUNT = 100;
/**
 * Deepest nesting of mappings and lists accepted. Real profiles need about ten levels; deeper
 * input only serves to exhaust the stack of every recursive walk that follows.
 */
export const MAX_DEPTH = 100;

export function formatOf(file: string): 'yaml' | 'json' | 'toml' {
  if (/\.toml$/i.test(file)) return 'toml';
  if (/\.json$/i.test(file)) return 'json';
  return 'yaml';
}

export function parseProfileText(text: string, file: string): ParsedFile {
  const format = formatOf(file);
  if (format === 'toml') return withDepthCheck(parseTomlFile(text, file), text);
  if (format === 'json') {
    // JSON.parse is an order of magnitude faster than a YAML document parse (which keeps
    // positions); valid JSON needs positions only to report a problem, so the YAML parse waits
    // until then. Duplicate keys are the one thing JSON.parse accepts silently: those go the slow way.
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      // Not the YAML parser's verdict: YAML flow collections accept trailing commas, JSON does not.
      return failedFile(file, [jsonSyntaxProblem(text, file, err)]);
    }
    if (hasDuplicateKeys(text)) return parseYamlFile(text, file);
    return withDepthCheck(preparsedFile(text, file, value), text);
  }
  const fast = fastYaml(text);
  if (fast.tooDeep !== undefined) return failedFile(file, [tooDeepProblem(text, file, fast.tooDeep)]);
  if (fast.value !== undefined) return preparsedFile(text, file, fast.value); // js-yaml bounds the depth itself
  return parseYamlFile(text, file);
}

/**
 * js-yaml with its YAML 1.2 core schema, for the common case: a single document without tags,
 * anchors, aliases, merge keys or directives (anything else, and anything js-yaml rejects, goes
 * to the positioned parser, which also judges errors). Returns no value when not applicable.
 */
export function fastYaml(text: string): { value?: unknown; tooDeep?: number } {
  if (/^%/m.test(text) || /(?:^|[\s,[{])[&*!][^\s]|<</m.test(text)) return {};
  const { load, YAMLException } = jsYaml();
  try {
    const value = load(text, { maxDepth: MAX_DEPTH });
    return isMapping(value) ? { value } : {};
  } catch (err) {
    if (err instanceof YAMLException && /maxDepth/.test(err.reason) && err.mark) return { tooDeep: err.mark.position };
    return {};
  }
}

const isMapping = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Whether some JSON object (of a text JSON.parse accepted) repeats a key, compared as decoded. */
function hasDuplicateKeys(text: string): boolean {
  const scopes: Set<string>[] = [];
  const token = /[{}]|"((?:[^"\\]|\\.)*)"(\s*:)?/g;
  for (let m = token.exec(text); m; m = token.exec(text)) {
    if (m[0] === '{') scopes.push(new Set());
    else if (m[0] === '}') scopes.pop();
    else if (m[2] !== undefined) {
      const scope = scopes[scopes.length - 1];
      const raw = m[1] ?? '';
      // `"w\u0065b"` is the key `web`: compare what JSON.parse made of it.
      const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
      if (scope?.has(key)) return true;
      scope?.add(key);
    }
  }
  return false;
}

/** JSON.parse's message, with its offset turned into a line and column. */
function jsonSyntaxProblem(text: string, file: string, err: unknown): Problem {
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'invalid JSON';
  const offset = /at position (\d+)/.exec(message)?.[1];
  const pos = offset !== undefined ? lineColumn(text, Number(offset)) : lineColumn(text, text.length);
  return { code: 'parse_error', file, ...pos, message: `invalid JSON: ${message.replace(/ in JSON at position \d+.*$/, '')}` };
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/** A file that failed to parse: its problems (already positioned). */
function failedFile(file: string, problems: Problem[]): ParsedFile {
  return {
    file,
    value: undefined,
    problems,
    locate: () => ({ file, line: 1, column: 1 }),
    has: () => false,
  };
}

function tooDeepProblem(text: string, file: string, offset: number | undefined): Problem {
  return {
    code: 'too_deep',
    file,
    ...(offset !== undefined ? lineColumn(text, offset) : { line: 1, column: 1 }),
    message: `mappings and lists are nested more than ${MAX_DEPTH} levels deep`,
  };
}

/** Reject values nested beyond MAX_DEPTH (every later walk is recursive). */
function withDepthCheck(parsed: ParsedFile, text: string): ParsedFile {
  if (parsed.problems.length > 0 || depthOf(parsed.value) <= MAX_DEPTH) return parsed;
  return failedFile(parsed.file, [tooDeepProblem(text, parsed.file, deepOffset(text))]);
}

/** Nesting depth of a parsed value, stopping as soon as it exceeds MAX_DEPTH. */
export function depthOf(value: unknown, depth = 0): number {
  if (value === null || typeof value !== 'object') return depth;
  if (depth >= MAX_DEPTH) return depth + 1;
  let max = depth + 1;
  for (const child of Array.isArray(value) ? value : Object.values(value)) {
    if (child === null || typeof child !== 'object') continue;
    const d = depthOf(child, depth + 1);
    if (d > max) max = d;
    if (max > MAX_DEPTH) break;
  }
  return max;
}

/** Where bracket nesting first exceeds MAX_DEPTH in a text (flow style), if it does. */
function deepOffset(text: string): number | undefined {
  let depth = 0;
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote) {
      if (ch === '\\' && quote === '"') i++;
      else if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '[' || ch === '{') {
      if (++depth > MAX_DEPTH) return i;
    } else if (ch === ']' || ch === '}') depth--;
  }
  return undefined;
}

/**
 * A file whose value is already known (a built-in profile compiled to JSON at build time, see
 * `precompiled.ts`): positions are only needed to report a problem, so the YAML is parsed then.
 */
export function preparsedFile(text: string, file: string, value: unknown): ParsedFile {
  let full: ParsedFile | undefined;
  const parsed = () => (full ??= formatOf(file) === 'toml' ? parseTomlFile(text, file) : parseYamlFile(text, file));
  return {
    file,
    value,
    problems: [],
    locate: (path, opts) => parsed().locate(path, opts),
    has: (path) => hasPath(value, path),
  };
}

function hasPath(value: unknown, path: readonly PathSegment[]): boolean {
  let v: unknown = value;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return false;
    v = (v as Record<string | number, unknown>)[seg];
    if (v === undefined) return false;
  }
  return true;
}

function parseYamlFile(text: string, file: string): ParsedFile {
  const { LineCounter, parseDocument } = yaml();
  const lineCounter = new LineCounter();
  const at = (offset: number): SourceLocation => {
    const pos = lineCounter.linePos(offset);
    return { file, line: pos.line, column: pos.col };
  };
  // uniqueKeys is off: the package compares every key with every other one (quadratic: 38 s for
  // 60,000 keys) and as typed values (`123` and "123" differ, yet both are the object key "123");
  // duplicateKeys() below does it in one pass, as strings.
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: false, strict: true });
  } catch (err) {
    if (err instanceof RangeError) return failedFile(file, [tooDeepProblem(text, file, deepOffset(text))]);
    throw err;
  }
  const problems: Problem[] = [];
  for (const err of doc.errors) {
    problems.push({ code: 'parse_error', message: cleanYamlMessage(err.message), ...at(err.pos[0]) });
  }
  if (problems.length === 0) {
    for (const dup of duplicateKeys(doc)) {
      problems.push({ code: 'duplicate_key', message: `duplicate key '${dup.key}' (first at line ${at(dup.first).line})`, ...at(dup.offset) });
    }
  }
  let value: unknown;
  if (problems.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      const bomb = /alias count/i.test(msg);
      const deep = err instanceof RangeError && !bomb;
      problems.push(
        deep
          ? tooDeepProblem(text, file, deepOffset(text))
          : {
              code: bomb ? 'alias_bomb' : 'parse_error',
              message: bomb ? `too many YAML aliases (more than ${MAX_ALIAS_COUNT}): refusing a possible alias bomb` : msg,
              file,
              line: 1,
              column: 1,
            },
      );
    }
    if (problems.length === 0 && depthOf(value) > MAX_DEPTH) problems.push(tooDeepProblem(text, file, deepOffset(text)));
  }
  return {
    file,
    value: problems.length === 0 ? value : undefined,
    problems,
    locate: (path, opts) => {
      const node = findYamlNode(doc, path, opts?.key ?? false);
      return node?.range ? at(node.range[0]) : { file, line: 1, column: 1 };
    },
    has: (path) => findYamlNode(doc, path, false, true) !== undefined,
  };
}

/**
 * Keys repeated within one mapping, compared as the strings they become in the loaded object
 * (`123` and `"123"` are the same key there). One pass with a Set per mapping; no recursion.
 */
function duplicateKeys(doc: Document): { key: string; offset: number; first: number }[] {
  const { isMap, isPair, isScalar, isSeq } = yaml();
  const out: { key: string; offset: number; first: number }[] = [];
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isSeq(node)) for (const item of node.items) stack.push(item);
    else if (isMap(node)) {
      const seen = new Map<string, number>();
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        stack.push(pair.value);
        if (!isScalar(pair.key) || pair.key.value === '<<') continue;
        const key = String(pair.key.value);
        const offset = pair.key.range?.[0] ?? 0;
        const first = seen.get(key);
        if (first !== undefined) out.push({ key, offset, first });
        else seen.set(key, offset);
      }
    }
  }
  return out.sort((a, b) => a.offset - b.offset);
}

function cleanYamlMessage(message: string): string {
  // The yaml package appends a code frame on some messages; our callers print positions themselves.
  return message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? message;
}

/** Each mapping's pairs by key, built on first lookup: locating every problem of a large mapping stays linear. */
const pairIndex = new WeakMap<object, Map<string, Pair>>();

function pairByKey(map: YAMLMap, key: string): Pair | undefined {
  const { isPair, isScalar } = yaml();
  let index = pairIndex.get(map);
  if (!index) {
    index = new Map();
    for (const p of map.items) if (isPair(p) && isScalar(p.key) && !index.has(String(p.key.value))) index.set(String(p.key.value), p);
    pairIndex.set(map, index);
  }
  return index.get(key);
}

/** Walk a YAML document along a path; returns the key node for map entries when `key` is set. */
function findYamlNode(doc: Document, path: readonly PathSegment[], key: boolean, exact = false): Node | undefined {
  const { isMap, isSeq } = yaml();
  let node: unknown = doc.contents;
  let last: Node | undefined = (doc.contents as Node | null) ?? undefined;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const isLast = i === path.length - 1;
    if (isMap(node)) {
      const pair = pairByKey(node, String(seg));
      if (!pair) return exact ? undefined : last;
      const keyNode = pair.key as Node;
      if (isLast && key) return keyNode;
      node = pair.value;
      last = (pair.value as Node | null) ?? keyNode;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (!item) return exact ? undefined : last;
      node = item;
      last = item as Node;
    } else {
      return exact ? undefined : last;
    }
  }
  return last;
}

function parseTomlFile(text: string, file: string): ParsedFile {
  const problems: Problem[] = [];
  let value: unknown;
  try {
    value = parseToml(text);
  } catch (err) {
    const e = err as TomlError;
    if (err instanceof RangeError) problems.push(tooDeepProblem(text, file, deepOffset(text)));
    else {
      problems.push({
        code: 'parse_error',
        message: (e.message ?? String(err)).split('\n')[0] ?? 'invalid TOML',
        file,
        // Every problem names a line: smol-toml's errors carry one, anything else points at the top.
        ...(typeof e.line === 'number' ? { line: e.line, column: e.column } : { line: 1, column: 1 }),
      });
    }
  }
  let index: Map<string, SourceLocation> | undefined;
  const locate = (path: readonly PathSegment[]): SourceLocation => {
    index ??= tomlKeyIndex(text, file);
    // The innermost part of the path written on a line of its own (a key, a dotted key or a
    // table header); values inside inline tables and arrays point at their enclosing key.
    for (let cut = path.length; cut > 0; cut--) {
      const loc = index.get(JSON.stringify(path.slice(0, cut)));
      if (loc) return loc;
    }
    return { file, line: 1, column: 1 };
  };
  return {
    file,
    value,
    problems,
    locate: (path) => locate(path),
    has: (path) => hasPath(value, path),
  };
}

/** Where each key path is first written in a TOML text: table headers, `[[arrays]]` and `a.b = ...` lines. */
function tomlKeyIndex(text: string, file: string): Map<string, SourceLocation> {
  const out = new Map<string, SourceLocation>();
  const arrayCounts = new Map<string, number>();
  let table: PathSegment[] = [];
  let multiline = '';
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (multiline) {
      if (line.includes(multiline)) multiline = '';
      return;
    }
    const header = /^(\s*)\[(\[)?\s*(.+?)\s*\]\]?\s*(#.*)?$/.exec(line);
    if (header) {
      const names = dottedKey(header[3] ?? '');
      if (!names) return;
      if (header[2]) {
        const id = JSON.stringify(names);
        const n = arrayCounts.get(id) ?? 0;
        arrayCounts.set(id, n + 1);
        if (!out.has(id)) out.set(id, { file, line: i + 1, column: (header[1]?.length ?? 0) + 1 });
        table = [...names, n];
      } else table = names;
      const id = JSON.stringify(table);
      if (!out.has(id)) out.set(id, { file, line: i + 1, column: (header[1]?.length ?? 0) + 1 });
      return;
    }
    const key = /^(\s*)((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*=(.*)$/.exec(line);
    if (!key) return;
    const names = dottedKey(key[2] ?? '');
    if (!names) return;
    for (let n = 1; n <= names.length; n++) {
      const id = JSON.stringify([...table, ...names.slice(0, n)]);
      if (!out.has(id)) out.set(id, { file, line: i + 1, column: (key[1]?.length ?? 0) + 1 });
    }
    const rest = key[3] ?? '';
    const open = /("""|\'\'\')/.exec(rest);
    if (open && rest.split(open[1]!).length === 2) multiline = open[1]!;
  });
  return out;
}

/** `a."b.c".d` → ['a', 'b.c', 'd']; undefined if it is not a key. */
function dottedKey(text: string): string[] | undefined {
  const out: string[] = [];
  const part = /\s*(?:([A-Za-z0-9_-]+)|"((?:[^"\\]|\\.)*)"|'([^']*)')\s*(\.|$)/y;
  let pos = 0;
  while (pos < text.length) {
    part.lastIndex = pos;
    const m = part.exec(text);
    if (!m) return undefined;
    out.push(m[1] ?? (m[2] !== undefined ? (JSON.parse(`"${m[2]}"`) as string) : (m[3] ?? '')));
    pos = part.lastIndex;
    if (m[4] === '') break;
  }
  return out.length > 0 ? out : undefined;
}

/** Render a path as users read it: `services.pds.dependencies[1].type`. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}
