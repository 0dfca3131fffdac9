/**
 * Turning zod issues into Problems users can act on: flattened unions, "did you mean" for
 * unknown keys, and messages that say what is expected in the profile's own words.
 */
import type { z } from 'zod';
import type { Problem } from '../errors.js';
import { didYouMean } from '../util/suggest.js';
import type { PathSegment } from './source.js';

type Issue = z.core.$ZodIssue;
type AnySchema = z.core.$ZodType;

export interface RawProblem extends Omit<Problem, 'path'> {
  path: PathSegment[];
  /** Point at the key rather than the value (unknown keys). */
  atKey?: boolean;
}

export function issuesToProblems(issues: readonly Issue[], root: AnySchema, input: unknown): RawProblem[] {
  const out: RawProblem[] = [];
  for (const issue of issues) collect(issue, [], root, input, out);
  return out;
}

function collect(issue: Issue, base: PathSegment[], root: AnySchema, input: unknown, out: RawProblem[]): void {
  const path = [...base, ...(issue.path as PathSegment[])];
  switch (issue.code) {
    case 'invalid_union': {
      // Keep the branch that matches the value's shape: a string given where a string-or-object is
      // allowed is judged as a string, an object as an object; report the union only if none fits.
      const fitting = issue.errors.filter((branch) => !branch.some((i) => i.code === 'invalid_type' && i.path.length === 0));
      if (fitting.length > 0) {
        const best = fitting.reduce((a, b) => (b.length < a.length ? b : a));
        for (const sub of best) collect(sub, path, root, input, out);
      } else {
        const expected = issue.errors.map((b) => (b[0]?.code === 'invalid_type' ? b[0].expected : undefined)).filter(Boolean);
        out.push({ code: 'invalid_type', path, message: `expected ${[...new Set(expected)].join(' or ')}, got ${describe(valueAt(input, path))}` });
      }
      return;
    }
    case 'unrecognized_keys': {
      const known = knownKeys(schemaAt(root, path));
      for (const key of issue.keys) {
        out.push({ code: 'unknown_key', path: [...path, key], atKey: true, message: `unknown key '${key}'${didYouMean(key, known)}` });
      }
      return;
    }
    case 'invalid_type': {
      const got = valueAt(input, path);
      const message = got === undefined ? `is required (${issue.expected})` : `expected ${issue.expected}, got ${describe(got)}`;
      out.push({ code: got === undefined ? 'missing' : 'invalid_type', path, message });
      return;
    }
    case 'invalid_value': {
      const got = valueAt(input, path);
      const options = issue.values.map((v) => String(v));
      out.push({
        code: 'invalid_value',
        path,
        message: `'${String(got)}' is not one of ${options.map((o) => `'${o}'`).join(', ')}${typeof got === 'string' ? didYouMean(got, options) : ''}`,
      });
      return;
    }
    case 'too_small':
    case 'too_big': {
      const got = valueAt(input, path);
      const bound = issue.code === 'too_small' ? `at least ${String(issue.minimum)}` : `at most ${String(issue.maximum)}`;
      const what = issue.origin === 'array' ? 'items' : issue.origin === 'string' ? 'characters' : '';
      const shown = Array.isArray(got) ? `${got.length} items` : JSON.stringify(got);
      const format = describeFormat(path);
      const message = format?.includes('duration') ? `must be ${format} (got ${shown})` : `must be ${bound}${what ? ` ${what}` : ''} (got ${shown})`;
      out.push({ code: 'out_of_range', path, message });
      return;
    }
    case 'invalid_format': {
      const got = valueAt(input, path);
      const hint = describeFormat(path);
      out.push({ code: 'invalid_format', path, message: `${JSON.stringify(got)} is not ${hint ?? `a valid ${issue.format}`}` });
      return;
    }
    default:
      out.push({ code: issue.code, path, message: issue.message });
  }
}

function describeFormat(path: PathSegment[]): string | undefined {
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  if (typeof last === 'string' && /^(interval|timeout|startPeriod|ttl|heartbeatInterval|dependencyTimeout|stopGracePeriod|backoff|maxBackoff)$/.test(last))
    return 'a non-negative duration (a number of seconds, or 500ms, 30s, 2m, 1h)';
  if (parent === 'ports') return 'a port mapping ("8080", "127.0.0.1:8080:80", "53/udp")';
  if (last === 'memory') return 'a size (bytes, or 512m, 1g)';
  if (last === 'stopSignal') return 'a signal name such as SIGTERM';
  if (last === 'endpoint' || last === 'healthEndpoint') return 'a path starting with /';
  return undefined;
}

export function valueAt(input: unknown, path: readonly PathSegment[]): unknown {
  let v = input;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  return typeof v;
}

interface Def {
  type: string;
  shape?: Record<string, AnySchema>;
  valueType?: AnySchema;
  element?: AnySchema;
  innerType?: AnySchema;
  options?: AnySchema[];
  in?: AnySchema;
}
const defOf = (s: AnySchema): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The object schema at a path (through optionals, records, arrays and unions). */
function schemaAt(root: AnySchema, path: readonly PathSegment[]): AnySchema | undefined {
  let s: AnySchema | undefined = root;
  for (const seg of path) {
    s = s && unwrapToContainer(s, typeof seg === 'number' ? 'array' : 'keyed');
    if (!s) return undefined;
    const d = defOf(s);
    if (d.type === 'object') s = d.shape?.[String(seg)];
    else if (d.type === 'record') s = d.valueType;
    else if (d.type === 'array') s = d.element;
    else return undefined;
  }
  return s && unwrapToContainer(s, 'keyed');
}

function unwrapToContainer(s: AnySchema, want: 'array' | 'keyed'): AnySchema | undefined {
  const d = defOf(s);
  if (d.type === 'optional' || d.type === 'nullable' || d.type === 'default') return d.innerType && unwrapToContainer(d.innerType, want);
  if (d.type === 'union') {
    for (const o of d.options ?? []) {
      const inner = unwrapToContainer(o, want);
      if (inner) return inner;
    }
    return undefined;
  }
  if (want === 'array') return d.type === 'array' ? s : undefined;
  return d.type === 'object' || d.type === 'record' ? s : undefined;
}

function knownKeys(s: AnySchema | undefined): string[] {
  if (!s) return [];
  const d = defOf(s);
  return d.type === 'object' ? Object.keys(d.shape ?? {}) : [];
}
