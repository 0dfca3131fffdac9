/**
 * Loading a profile: resolve it (built-in name or path), read it and everything it `extends`,
 * merge, interpolate the environment, validate against the schema, normalise, then run the rule
 * functions — collecting every problem, each with file:line:column and its dotted path.
 */
import { closeSync, constants as fsConstants, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError, type Problem } from '../errors.js';
import { toDnsLabel } from '../util/names.js';
import { didYouMean } from '../util/suggest.js';
import { builtinProfileFile, builtinProfileNames, PACKAGE_ROOT } from './builtin.js';
import { interpolate, InterpolationError, type Env } from './interpolate.js';
import { issuesToProblems, valueAt, type RawProblem } from './issues.js';
import { deepMerge, isPlainObject } from './merge.js';
import { isInlineTemplate, normalizeProfile } from './normalize.js';
import { checkProfile, checkRawProfile } from './rules.js';
import { fastValidate } from './fast-check.js';
import { schemas, type RawProfile } from './schema.js';
import { precompiledValue } from './precompiled.js';
import { formatPath, parseProfileText, preparsedFile, type ParsedFile, type PathSegment } from './source.js';
import type { Profile } from './types.js';

export interface LoadOptions {
  /** Folder relative paths and the default profile resolve against; default process.cwd(). */
  cwd?: string;
  /** Environment for `${VAR}` interpolation; default process.env. */
  env?: Env;
  /** Services this run selects: interpolation errors elsewhere are ignored. Default: all enabled. */
  services?: string[];
}

export interface LoadResult {
  profile?: Profile;
  /** Errors and warnings, in file order. */
  problems: Problem[];
}

/** One file of the `extends` chain. */
interface Layer {
  parsed: ParsedFile;
  /** Folder its relative paths resolve against. */
  dir: string;
  value: Record<string, unknown>;
  builtin?: string;
  absFile: string;
}

/** Load a profile, throwing InvalidInputError with every problem if anything is wrong. */
export function loadProfile(ref: string, opts: LoadOptions = {}): Profile {
  const result = inspectProfile(ref, opts);
  const errors = result.problems.filter((p) => p.severity !== 'warning');
  if (!result.profile || errors.length > 0) throw new InvalidInputError(result.problems, `invalid profile ${ref}`);
  return result.profile;
}

/** Load a profile and return what was found, never throwing for bad input. */
export function inspectProfile(ref: string, opts: LoadOptions = {}): LoadResult {
  const cwd = opts.cwd ?? process.cwd();
  const problems: RawProblem[] = [];
  const layers: Layer[] = [];
  readChain(ref, cwd, cwd, [], layers, problems);
  return finishInspection(layers, problems, opts);
}

/**
 * Validate a profile given as an object (library use). Positions point into its JSON rendering;
 * `extends` and template paths resolve against `opts.cwd`.
 */
export function inspectProfileObject(value: unknown, opts: LoadOptions & { name?: string } = {}): LoadResult {
  const cwd = opts.cwd ?? process.cwd();
  const display = `<${opts.name ?? 'profile'}>`;
  const parsed = parseProfileText(`${JSON.stringify(value, null, 2)}\n`, `${display}.json`);
  const problems: RawProblem[] = [];
  const layers: Layer[] = [];
  if (!isPlainObject(parsed.value)) {
    problems.push({ code: 'invalid_type', path: [], file: display, message: 'a profile must be an object with a `services` key' });
    return { problems: problems.map((p) => locateProblem(p, layers)) };
  }
  const layer: Layer = { parsed, dir: cwd, value: parsed.value, absFile: path.join(cwd, `${opts.name ?? 'profile'}.json`) };
  layers.push(layer);
  if (typeof parsed.value.extends === 'string') readChain(parsed.value.extends, cwd, cwd, [layer.absFile], layers, problems, layer);
  return finishInspection(layers, problems, opts);
}

function finishInspection(layers: Layer[], problems: RawProblem[], opts: LoadOptions): LoadResult {
  const located = (list: RawProblem[]) => list.map((p) => locateProblem(p, layers));
  if (layers.length === 0 || problems.some((p) => p.severity !== 'warning')) {
    return { problems: sortProblems(located(problems)) };
  }

  // Merge parent-first: the root of the chain is last in `layers`.
  let merged: unknown = {};
  for (const layer of [...layers].reverse()) merged = deepMerge(merged, rebasePaths(layer, problems));
  if (isPlainObject(merged)) delete merged.extends;
  const main = layers[0]!;
  const unresolved = new Set<string>();
  const interpolated = interpolateProfile(merged, opts.env ?? process.env, opts.services, problems, unresolved);

  const defaultName = main.builtin ?? toDnsLabel(path.basename(main.absFile).replace(/\.(ya?ml|json|toml)$/i, ''));
  append(problems, checkRawProfile(interpolated, defaultName));

  // Schema and rule problems are reported together: what the schema rejects is pruned (with
  // everything that depends on it) and the rules run on the rest.
  const unusable = problems.filter((p) => p.severity !== 'warning' && UNUSABLE.has(p.code)).map((p) => cutAtList(p.path));
  let valid: { value: unknown; removed: Removed[] } | undefined = { value: interpolated, removed: [] };
  if (unusable.length > 0 || fastValidate(interpolated) !== true) {
    valid = schemaValid(interpolated, unusable, problems);
  }
  if (!valid) return { problems: sortProblems(located(problems)) };
  // Strict objects without transforms: what passed the schema is the value itself.
  const raw = valid.value as RawProfile;

  const profile = normalizeProfile(raw, {
    defaultName,
    source: {
      ...(main.builtin ? { builtin: main.builtin } : { file: main.absFile }),
      dir: main.dir,
      files: layers.map((l) => l.absFile),
    },
  });
  // A rule judging a service part of which was pruned would report what is missing, not wrong.
  const related = relatedToAny(valid.removed.filter((r) => !r.unknownKey).map((r) => r.path));
  append(
    problems,
    checkProfile(profile, raw).filter((p) => !related(p.path)),
  );
  // A value whose interpolation failed is left as written, and reported once, for the variable it lacks.
  if (unresolved.size > 0) {
    const echoes = (p: RawProblem) => p.code !== 'interpolation' && [...unresolved].some((v) => p.message.includes(v));
    problems.splice(0, problems.length, ...problems.filter((p) => !echoes(p)));
  }
  const all = sortProblems(located(problems));
  return all.some((p) => p.severity !== 'warning') ? { problems: all } : { profile, problems: all };
}

/** A test whether a path is one of `paths`, inside one, or contains one; linear in the path's length. */
function relatedToAny(paths: readonly PathSegment[][]): (at: readonly PathSegment[]) => boolean {
  const exact = new Set(paths.map((p) => JSON.stringify(p)));
  const ancestors = new Set(paths.flatMap((p) => p.map((_, i) => JSON.stringify(p.slice(0, i + 1)))));
  return (at) => {
    if (exact.size === 0) return false;
    if (at.length === 0 || ancestors.has(JSON.stringify(at))) return true;
    for (let n = 1; n < at.length; n++) if (exact.has(JSON.stringify(at.slice(0, n)))) return true;
    return false;
  };
}

/** push(...list) passes every item as an argument: hostile input can make more than the stack holds. */
function append<T>(to: T[], list: readonly T[]): void {
  for (const item of list) to.push(item);
}

/** Problems whose value cannot be normalised (a template file that is missing): pruned like schema errors. */
const UNUSABLE = new Set(['template_outside', 'template_not_found', 'template_not_file']);

interface Removed {
  path: PathSegment[];
  unknownKey: boolean;
}

/** A path inside a list stops at the list: removing an item would renumber its siblings. */
function cutAtList(at: readonly PathSegment[]): PathSegment[] {
  const i = at.findIndex((seg) => typeof seg === 'number');
  return i >= 0 ? at.slice(0, i) : [...at];
}

/**
 * Check the value with the schema, reporting its problems, and return a copy with every invalid
 * value removed (and the paths removed), so the rules can judge the rest. A required value that is
 * invalid takes its parent with it. Undefined when nothing usable remains.
 */
function schemaValid(value: unknown, unusable: PathSegment[][], problems: RawProblem[]): { value: unknown; removed: Removed[] } | undefined {
  const { profileSchema } = schemas();
  const first = profileSchema.safeParse(value);
  if (!first.success) append(problems, issuesToProblems(first.error.issues, profileSchema, value));
  if (first.success && unusable.length === 0) return { value, removed: [] };

  const copy = structuredClone(value);
  const removed: Removed[] = [];
  const removedKeys = new Set<string>(); // JSON of each removed path: lookups stay linear with thousands of problems
  const isRemoved = (at: readonly PathSegment[]) => removedKeys.has(JSON.stringify(at));
  const remove = (target: readonly PathSegment[], unknownKey: boolean): boolean => {
    let at = cutAtList(target);
    for (;;) {
      if (at.length === 0) return false;
      for (let n = 1; n < at.length; n++) if (isRemoved(at.slice(0, n))) return true; // inside something removed
      // absent (a required key) or already removed and still reported: its parent goes
      if (valueAt(copy, at) === undefined || isRemoved(at)) at = at.slice(0, -1);
      else break;
    }
    const parent = valueAt(copy, at.slice(0, -1));
    if (isPlainObject(parent)) delete parent[String(at[at.length - 1])];
    removed.push({ path: at, unknownKey });
    removedKeys.add(JSON.stringify(at));
    return true;
  };
  for (const at of unusable) if (!remove(at, false)) return undefined;
  let issues = first.success ? [] : first.error.issues;
  for (let round = 0; round < 8; round++) {
    for (const issue of issues) {
      const base = issue.path as PathSegment[];
      const targets = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...base, k]) : [base];
      for (const t of targets) if (!remove(t, issue.code === 'unrecognized_keys')) return undefined;
    }
    const again = profileSchema.safeParse(copy);
    if (again.success) return { value: copy, removed };
    issues = again.error.issues;
  }
  return undefined;
}

/** Resolve a profile reference to a file: a path if it looks like one, else a built-in name. */
export function resolveProfileRef(ref: string, fromDir: string): { file: string; builtin?: string } | { error: string } {
  const looksLikePath = /[\\/]/.test(ref) || /\.(ya?ml|json|toml)$/i.test(ref);
  const candidate = path.resolve(fromDir, ref);
  if (looksLikePath || existsSync(candidate)) {
    if (!existsSync(candidate)) return { error: `profile file not found: ${ref}` };
    const st = statSync(candidate);
    if (st.isDirectory()) return { error: `profile path is a folder, not a file: ${ref}` };
    if (!st.isFile()) return { error: `profile path is not a regular file (a device, FIFO or socket): ${ref}` };
    return { file: candidate };
  }
  const file = builtinProfileFile(ref);
  if (file) return { file, builtin: ref };
  const names = builtinProfileNames();
  return { error: `unknown profile '${ref}'${didYouMean(ref, names)} (built-in profiles: ${names.join(', ')}; or give a file path)` };
}

function readChain(ref: string, fromDir: string, cwd: string, chain: string[], layers: Layer[], problems: RawProblem[], via?: Layer): void {
  const resolved = resolveProfileRef(ref, fromDir);
  const viaLoc = () => (via ? { file: via.parsed.file, ...via.parsed.locate(['extends']) } : {});
  if ('error' in resolved) {
    problems.push({ code: 'profile_not_found', path: via ? ['extends'] : [], message: resolved.error, ...viaLoc() });
    return;
  }
  const display = displayName(resolved.file, cwd);
  if (chain.includes(resolved.file)) {
    const loop = [...chain, resolved.file].map((f) => displayName(f, cwd)).join(' → ');
    problems.push({ code: 'extends_loop', path: ['extends'], message: `extends loop: ${loop}`, ...viaLoc() });
    return;
  }
  let text: string;
  try {
    text = readRegularFile(resolved.file, MAX_PROFILE_BYTES);
  } catch (err) {
    problems.push({ code: 'read_error', path: [], file: display, line: 1, column: 1, message: `cannot read profile: ${(err as Error).message}`, ...viaLoc() });
    return;
  }
  const compiled = resolved.builtin ? precompiledValue(resolved.builtin, text) : undefined;
  const parsed = compiled !== undefined ? preparsedFile(text, display, compiled) : parseProfileText(text, display);
  for (const p of parsed.problems) problems.push({ ...p, path: [] });
  if (parsed.problems.length > 0) return;
  if (!isPlainObject(parsed.value)) {
    problems.push({ code: 'invalid_type', path: [], file: display, line: 1, column: 1, message: 'a profile must be a mapping with a `services` key' });
    return;
  }
  const layer: Layer = {
    parsed,
    dir: resolved.builtin ? PACKAGE_ROOT : path.dirname(resolved.file),
    value: parsed.value,
    absFile: resolved.file,
    ...(resolved.builtin ? { builtin: resolved.builtin } : {}),
  };
  layers.push(layer);
  const parent = parsed.value.extends;
  if (parent === undefined) return;
  if (typeof parent !== 'string') {
    problems.push({ code: 'invalid_type', path: ['extends'], ...parsed.locate(['extends']), message: 'extends must be a profile name or a relative path' });
    return;
  }
  readChain(parent, path.dirname(resolved.file), cwd, [...chain, resolved.file], layers, problems, layer);
}

/** Profiles and template files larger than this are refused (a profile of 10,000 services is ~1.5 MB). */
export const MAX_PROFILE_BYTES = 16 * 1024 * 1024;

/**
 * Read a regular file of at most `limit` bytes. Devices (`/dev/zero`), FIFOs and sockets are
 * refused: opened non-blocking (a FIFO without a writer would block forever), checked on the
 * open descriptor, and read no further than the limit whatever the size said.
 */
export function readRegularFile(file: string, limit: number): string {
  const fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    if (st.size > limit) throw new Error(`${file} is larger than ${limit} bytes`);
    const buf = Buffer.alloc(Math.min(st.size, limit) + 1);
    let length = 0;
    for (let n = 1; n > 0 && length < buf.length; length += n) n = readSync(fd, buf, length, buf.length - length, null);
    if (length > limit) throw new Error(`${file} is larger than ${limit} bytes`);
    return buf.subarray(0, length).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function displayName(file: string, cwd: string): string {
  const rel = path.relative(cwd, file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/**
 * Paths in a layer resolve against that layer's folder, so a profile extending a built-in keeps
 * the built-in's templates, and its own resolve against its own folder.
 */
function rebasePaths(layer: Layer, problems: RawProblem[]): Record<string, unknown> {
  // Copy on write: only the services whose paths change are copied (a deep copy of a
  // 10,000-service profile costs more than everything the rules do).
  const value = { ...layer.value };
  if (!isPlainObject(value.services)) return value;
  const services = { ...value.services };
  value.services = services;
  for (const [name, original] of Object.entries(services)) {
    if (!isPlainObject(original)) continue;
    const relativeDir = typeof original.workingDir === 'string' && !path.isAbsolute(original.workingDir);
    if (!relativeDir && !Array.isArray(original.templates) && !Array.isArray(original.volumes)) continue;
    const svc = { ...original };
    services[name] = svc;
    if (relativeDir) svc.workingDir = path.resolve(layer.dir, svc.workingDir as string);
    if (Array.isArray(svc.templates)) {
      svc.templates = svc.templates.map((t: unknown, i) => {
        if (!isPlainObject(t) || typeof t.template !== 'string' || isInlineTemplate(t.template)) return t;
        const at: PathSegment[] = ['services', name, 'templates', i, 'template'];
        const abs = path.resolve(layer.dir, t.template);
        const where = () => ({ file: layer.parsed.file, ...layer.parsed.locate(at) });
        if (path.relative(layer.dir, abs).startsWith('..')) {
          problems.push({ code: 'template_outside', path: at, ...where(), message: `template file '${t.template}' is outside the profile's folder` });
        } else if (!existsSync(abs)) {
          problems.push({ code: 'template_not_found', path: at, ...where(), message: `template file not found: ${t.template}` });
        } else if (!statSync(abs).isFile() || statSync(abs).size > MAX_PROFILE_BYTES) {
          const what = statSync(abs).isFile() ? `larger than ${MAX_PROFILE_BYTES} bytes` : 'not a regular file';
          problems.push({ code: 'template_not_file', path: at, ...where(), message: `template '${t.template}' is ${what}` });
        }
        return { ...t, template: abs }; // absolute from here on; normalize reads it
      });
    }
    if (Array.isArray(svc.volumes)) {
      svc.volumes = svc.volumes.map((v: unknown) => {
        if (typeof v === 'string' && /^\.\.?\//.test(v)) return path.resolve(layer.dir, v.split(':')[0]!) + v.slice(v.indexOf(':'));
        if (isPlainObject(v) && typeof v.source === 'string' && /^\.\.?\//.test(v.source)) return { ...v, source: path.resolve(layer.dir, v.source) };
        return v;
      });
    }
  }
  return value;
}

/**
 * Interpolate every string, Compose-style. Template bodies are left alone (they have their own
 * `env.NAME` context, and formats such as Caddyfiles use `{$VAR}` themselves). Errors count only
 * for the services this run selects; elsewhere an unresolvable value is left as written. Values
 * that failed are collected in `unresolved`: what later checks say about them only echoes the error.
 */
function interpolateProfile(merged: unknown, env: Env, selection: string[] | undefined, problems: RawProblem[], unresolved: Set<string>): unknown {
  const selected = selectedServices(merged, selection);
  const interpolatedDefaults = new Set<string>();
  // Copy on write, with one shared path (pushed and popped): most of a large profile holds no `$`.
  const at: PathSegment[] = [];
  const walk = (v: unknown, strict: boolean): unknown => {
    if (typeof v === 'string') {
      if (!v.includes('$')) return v;
      try {
        const text = interpolate(v, env);
        if (text !== v && at[0] === 'variables' && at[2] === 'default') interpolatedDefaults.add(String(at[1]));
        return text === v ? text : typedAt([...at], text);
      } catch (err) {
        if (strict && err instanceof InterpolationError) {
          problems.push({ code: 'interpolation', path: [...at], message: err.message });
          unresolved.add(v);
        }
        return v;
      }
    }
    if (Array.isArray(v)) {
      let out: unknown[] | undefined;
      for (let i = 0; i < v.length; i++) {
        at.push(i);
        const x = walk(v[i], strict);
        at.pop();
        if (x !== v[i]) (out ??= [...(v as unknown[])])[i] = x;
      }
      return out ?? v;
    }
    if (isPlainObject(v)) {
      let out: Record<string, unknown> | undefined;
      const inServices = at.length === 1 && at[0] === 'services';
      const inService = at.length === 2 && at[0] === 'services';
      for (const [k, x] of Object.entries(v)) {
        if (inService && k === 'templates') continue;
        at.push(k);
        const y = walk(x, inServices ? selected.has(k) : strict);
        at.pop();
        if (y !== x) (out ??= { ...v })[k] = y;
      }
      return out ?? v;
    }
    return v;
  };
  const out = walk(merged, true);
  typeVariableDefaults(out, interpolatedDefaults);
  return out;
}

/**
 * After interpolation the text stays what the user wrote (`VERSION: "${V}"` with V=1.10 is the
 * string "1.10"), except where the schema accepts no string but a number or a boolean
 * (`port: ${PORT:-3000}`), like Compose. A variable's default follows the variable's type.
 */
function typedAt(at: PathSegment[], text: string): string | number | boolean {
  const looksNumber = /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(text);
  const looksBoolean = text === 'true' || text === 'false';
  if ((!looksNumber && !looksBoolean) || (at[0] === 'variables' && at[2] === 'default')) return text;
  const typed = looksNumber ? Number(text) : text === 'true';
  const leaves = jsonSchemasAt(at);
  if (leaves.length === 0) return text;
  const accepts = (v: unknown) => leaves.some((s) => acceptsType(s, v));
  return !accepts(text) && accepts(typed) ? typed : text;
}

/**
 * The generated JSON Schema (schema/profile.schema.json, from the zod schema at build time): read
 * for field types after interpolation, so a valid profile never loads zod. Only `type`, `pattern`,
 * `anyOf`/`oneOf`, `properties`, `additionalProperties` and `items` are consulted.
 */
interface JsonSchema {
  type?: string | string[];
  pattern?: string;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
}
let profileJsonSchema: JsonSchema | undefined;

function jsonSchemasAt(at: readonly PathSegment[]): JsonSchema[] {
  profileJsonSchema ??= JSON.parse(readRegularFile(path.join(PACKAGE_ROOT, 'schema', 'profile.schema.json'), MAX_PROFILE_BYTES)) as JsonSchema;
  const flatten = (s: JsonSchema): JsonSchema[] => (s.anyOf || s.oneOf ? [...(s.anyOf ?? []), ...(s.oneOf ?? [])].flatMap(flatten) : [s]);
  let current = flatten(profileJsonSchema);
  for (const seg of at) {
    const next: JsonSchema[] = [];
    for (const s of current) {
      if (typeof seg === 'number' && s.items) next.push(...flatten(s.items));
      else if (typeof seg === 'string' && s.properties?.[seg]) next.push(...flatten(s.properties[seg]));
      else if (typeof seg === 'string' && typeof s.additionalProperties === 'object') next.push(...flatten(s.additionalProperties));
    }
    current = next;
  }
  return current;
}

function acceptsType(s: JsonSchema, v: unknown): boolean {
  const types = s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
  if (types.length === 0) return true; // anything (template data)
  return types.some((t) => {
    if (t === 'string') return typeof v === 'string' && (s.pattern === undefined || new RegExp(s.pattern).test(v));
    if (t === 'number') return typeof v === 'number';
    if (t === 'integer') return Number.isInteger(v);
    if (t === 'boolean') return typeof v === 'boolean';
    return false;
  });
}

/** A variable's interpolated default takes the variable's declared type. */
function typeVariableDefaults(value: unknown, names: Set<string>): void {
  const variables = isPlainObject(value) && isPlainObject(value.variables) ? value.variables : {};
  for (const [name, v] of Object.entries(variables)) {
    if (!names.has(name) || !isPlainObject(v) || typeof v.default !== 'string') continue;
    if (v.type === 'number' && /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(v.default)) v.default = Number(v.default);
    else if (v.type === 'boolean' && (v.default === 'true' || v.default === 'false')) v.default = v.default === 'true';
  }
}

/** The services a run selects: the named ones and what they depend on, or every enabled one. */
function selectedServices(merged: unknown, selection: string[] | undefined): Set<string> {
  const services = isPlainObject(merged) && isPlainObject(merged.services) ? merged.services : {};
  if (!selection || selection.length === 0) {
    return new Set(
      Object.entries(services)
        .filter(([, s]) => !(isPlainObject(s) && s.enable === false))
        .map(([n]) => n),
    );
  }
  const out = new Set<string>();
  const stack = [...selection];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (out.has(name)) continue;
    out.add(name);
    const svc = services[name];
    const deps = isPlainObject(svc) && Array.isArray(svc.dependencies) ? svc.dependencies : [];
    for (const d of deps) {
      const dep = typeof d === 'string' ? d : isPlainObject(d) && typeof d.name === 'string' ? d.name : undefined;
      if (dep) stack.push(dep);
    }
  }
  return out;
}

function locateProblem(p: RawProblem, layers: Layer[]): Problem {
  const { path: segs, atKey, ...rest } = p;
  const out: Problem = { ...rest, severity: p.severity ?? 'error' };
  if (segs.length > 0) out.path = formatPath(segs);
  if (rest.file) return out;
  // The file that sets the value (child first), else the one setting its deepest ancestor.
  for (let depth = segs.length; depth >= 0; depth--) {
    const prefix = segs.slice(0, depth);
    const layer = layers.find((l) => l.parsed.has(prefix));
    if (layer) {
      const loc = layer.parsed.locate(segs, { key: atKey ?? false });
      return { ...out, file: layer.parsed.file, ...(loc.line !== undefined ? { line: loc.line, column: loc.column } : {}) };
    }
  }
  if (layers[0]) out.file = layers[0].parsed.file;
  return out;
}

function sortProblems(list: Problem[]): Problem[] {
  // NaN and infinities: "is not a usable number" says it better than the schema's type message.
  const unusableNumbers = new Set(list.filter((p) => p.code === 'invalid_number').map((p) => `${p.file}\0${p.path}`));
  const kept = unusableNumbers.size === 0 ? list : list.filter((p) => p.code !== 'invalid_type' || !unusableNumbers.has(`${p.file}\0${p.path}`));
  return [...kept].sort((a, b) => (a.file ?? '').localeCompare(b.file ?? '') || (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}
