/**
 * Parsing profile files while keeping source positions, so every problem can name its
 * file:line:column. YAML and JSON go through the `yaml` package (JSON is YAML 1.2); TOML goes
 * through smol-toml, with positions found by a line scan (smol-toml keeps none).
 */
import { createRequire } from 'node:module';
import type { TomlError } from 'smol-toml';
import type * as Yaml from 'yaml';
import type { Document, Node } from 'yaml';
import type { Problem, SourceLocation } from '../errors.js';

// Parsers load on first use (synchronously): validating a built-in profile needs neither.
const requireCjs = createRequire(import.meta.url);
let yamlLib: typeof Yaml | undefined;
const yaml = () => (yamlLib ??= requireCjs('yaml') as typeof Yaml);
const parseToml = (text: string): unknown => (requireCjs('smol-toml') as typeof import('smol-toml')).parse(text);

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

export function formatOf(file: string): 'yaml' | 'json' | 'toml' {
  if (/\.toml$/i.test(file)) return 'toml';
  if (/\.json$/i.test(file)) return 'json';
  return 'yaml';
}

export function parseProfileText(text: string, file: string): ParsedFile {
  const format = formatOf(file);
  if (format === 'toml') return parseTomlFile(text, file);
  if (format === 'json') {
    // JSON.parse is an order of magnitude faster than a YAML document parse (which keeps
    // positions); valid JSON needs positions only to report a problem, so the YAML parse waits
    // until then. Duplicate keys are the one thing JSON.parse accepts silently: those go the slow way.
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return parseYamlFile(text, file); // reports the syntax error with its position
    }
    if (!hasDuplicateKeys(text)) return preparsedFile(text, file, value);
  }
  return parseYamlFile(text, file);
}

/** Whether some JSON object (of a text JSON.parse accepted) repeats a key. */
function hasDuplicateKeys(text: string): boolean {
  const scopes: Set<string>[] = [];
  const token = /[{}]|"((?:[^"\\]|\\.)*)"(\s*:)?/g;
  for (let m = token.exec(text); m; m = token.exec(text)) {
    if (m[0] === '{') scopes.push(new Set());
    else if (m[0] === '}') scopes.pop();
    else if (m[2] !== undefined) {
      const scope = scopes[scopes.length - 1];
      const key = m[1] ?? '';
      if (scope?.has(key)) return true;
      scope?.add(key);
    }
  }
  return false;
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
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: true, strict: true });
  const problems: Problem[] = [];
  const at = (offset: number): SourceLocation => {
    const pos = lineCounter.linePos(offset);
    return { file, line: pos.line, column: pos.col };
  };
  for (const err of doc.errors) {
    problems.push({ code: 'parse_error', message: cleanYamlMessage(err.message), ...at(err.pos[0]) });
  }
  let value: unknown;
  if (problems.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      const bomb = /alias count/i.test(msg);
      problems.push({
        code: bomb ? 'alias_bomb' : 'parse_error',
        message: bomb ? `too many YAML aliases (more than ${MAX_ALIAS_COUNT}): refusing a possible alias bomb` : msg,
        file,
        line: 1,
        column: 1,
      });
    }
  }
  return {
    file,
    value,
    problems,
    locate: (path, opts) => {
      const node = findYamlNode(doc, path, opts?.key ?? false);
      return node?.range ? at(node.range[0]) : { file };
    },
    has: (path) => findYamlNode(doc, path, false, true) !== undefined,
  };
}

function cleanYamlMessage(message: string): string {
  // The yaml package appends a code frame on some messages; our callers print positions themselves.
  return message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? message;
}

/** Walk a YAML document along a path; returns the key node for map entries when `key` is set. */
function findYamlNode(doc: Document, path: readonly PathSegment[], key: boolean, exact = false): Node | undefined {
  const { isMap, isPair, isScalar, isSeq } = yaml();
  let node: unknown = doc.contents;
  let last: Node | undefined = (doc.contents as Node | null) ?? undefined;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const isLast = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
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
    problems.push({
      code: 'parse_error',
      message: (e.message ?? String(err)).split('\n')[0] ?? 'invalid TOML',
      file,
      ...(e.line !== undefined ? { line: e.line, column: e.column } : {}),
    });
  }
  const lines = text.split('\n');
  const locate = (path: readonly PathSegment[]): SourceLocation | undefined => {
    // Best effort: find the innermost `[table]` header of the path's named prefix, then the key below it.
    const names = path.filter((s): s is string => typeof s === 'string');
    for (let cut = names.length; cut >= 0; cut--) {
      const table = names.slice(0, cut).join('.');
      const key = names[cut];
      let start = 0;
      if (table) {
        const header = lines.findIndex((l) => l.trim() === `[${table}]` || l.trim() === `[[${table}]]`);
        if (header < 0) continue;
        start = header;
        if (key === undefined) return { file, line: header + 1, column: 1 };
      }
      if (key === undefined) return { file, line: 1, column: 1 };
      for (let i = start + (table ? 1 : 0); i < lines.length; i++) {
        const line = lines[i] ?? '';
        if (/^\s*\[/.test(line) && i !== start) break;
        const m = new RegExp(`^(\\s*)("?${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"?)\\s*=`).exec(line);
        if (m) return { file, line: i + 1, column: (m[1]?.length ?? 0) + 1 };
      }
    }
    return undefined;
  };
  return {
    file,
    value,
    problems,
    locate: (path) => locate(path) ?? { file },
    has: (path) => hasPath(value, path),
  };
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
