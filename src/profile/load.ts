/**
 * Loading a profile: resolve it (built-in name or path), read it and everything it `extends`,
 * merge, interpolate the environment, validate against the schema, normalise, then run the rule
 * functions — collecting every problem, each with file:line:column and its dotted path.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError, type Problem } from '../errors.js';
import { toDnsLabel } from '../util/names.js';
import { didYouMean } from '../util/suggest.js';
import { builtinProfileFile, builtinProfileNames, PACKAGE_ROOT } from './builtin.js';
import { interpolate, InterpolationError, type Env } from './interpolate.js';
import { issuesToProblems, type RawProblem } from './issues.js';
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
  const interpolated = interpolateProfile(merged, opts.env ?? process.env, opts.services, problems);

  const defaultName = main.builtin ?? toDnsLabel(path.basename(main.absFile).replace(/\.(ya?ml|json|toml)$/i, ''));
  let schemaOk = fastValidate(interpolated) === true;
  if (!schemaOk) {
    const { profileSchema } = schemas();
    const parsed = profileSchema.safeParse(interpolated);
    if (!parsed.success) problems.push(...issuesToProblems(parsed.error.issues, profileSchema, interpolated));
    schemaOk = parsed.success;
  }
  problems.push(...checkRawProfile(interpolated, defaultName));
  if (!schemaOk || problems.some((p) => p.severity !== 'warning')) {
    return { problems: sortProblems(located(problems)) };
  }
  // Strict objects without transforms: what passed the schema is the value itself.
  const raw = interpolated as RawProfile;

  const profile = normalizeProfile(raw, {
    defaultName,
    source: {
      ...(main.builtin ? { builtin: main.builtin } : { file: main.absFile }),
      dir: main.dir,
      files: layers.map((l) => l.absFile),
    },
  });
  problems.push(...checkProfile(profile, raw));
  const all = sortProblems(located(problems));
  return all.some((p) => p.severity !== 'warning') ? { problems: all } : { profile, problems: all };
}

/** Resolve a profile reference to a file: a path if it looks like one, else a built-in name. */
export function resolveProfileRef(ref: string, fromDir: string): { file: string; builtin?: string } | { error: string } {
  const looksLikePath = /[\\/]/.test(ref) || /\.(ya?ml|json|toml)$/i.test(ref);
  const candidate = path.resolve(fromDir, ref);
  if (looksLikePath || existsSync(candidate)) {
    if (!existsSync(candidate)) return { error: `profile file not found: ${ref}` };
    if (statSync(candidate).isDirectory()) return { error: `profile path is a folder, not a file: ${ref}` };
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
    text = readFileSync(resolved.file, 'utf8');
  } catch (err) {
    problems.push({ code: 'read_error', path: [], file: display, message: `cannot read profile: ${(err as Error).message}` });
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

function displayName(file: string, cwd: string): string {
  const rel = path.relative(cwd, file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/**
 * Paths in a layer resolve against that layer's folder, so a profile extending a built-in keeps
 * the built-in's templates, and its own resolve against its own folder.
 */
function rebasePaths(layer: Layer, problems: RawProblem[]): Record<string, unknown> {
  const value = structuredClone(layer.value);
  const services = value.services;
  if (!isPlainObject(services)) return value;
  for (const [name, svc] of Object.entries(services)) {
    if (!isPlainObject(svc)) continue;
    if (typeof svc.workingDir === 'string' && !path.isAbsolute(svc.workingDir)) svc.workingDir = path.resolve(layer.dir, svc.workingDir);
    if (Array.isArray(svc.templates)) {
      svc.templates.forEach((t, i) => {
        if (!isPlainObject(t) || typeof t.template !== 'string' || isInlineTemplate(t.template)) return;
        const at: PathSegment[] = ['services', name, 'templates', i, 'template'];
        const abs = path.resolve(layer.dir, t.template);
        const where = () => ({ file: layer.parsed.file, ...layer.parsed.locate(at) });
        if (path.relative(layer.dir, abs).startsWith('..')) {
          problems.push({ code: 'template_outside', path: at, ...where(), message: `template file '${t.template}' is outside the profile's folder` });
        } else if (!existsSync(abs)) {
          problems.push({ code: 'template_not_found', path: at, ...where(), message: `template file not found: ${t.template}` });
        }
        t.template = abs; // absolute from here on; normalize reads it
      });
    }
    if (Array.isArray(svc.volumes)) {
      svc.volumes = svc.volumes.map((v) => {
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
 * for the services this run selects; elsewhere an unresolvable value is left as written.
 */
function interpolateProfile(merged: unknown, env: Env, selection: string[] | undefined, problems: RawProblem[]): unknown {
  const selected = selectedServices(merged, selection);
  const walk = (v: unknown, at: PathSegment[], strict: boolean): unknown => {
    if (typeof v === 'string') {
      if (!v.includes('$')) return v;
      try {
        return coerce(interpolate(v, env));
      } catch (err) {
        if (strict && err instanceof InterpolationError) problems.push({ code: 'interpolation', path: at, message: err.message });
        return v;
      }
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...at, i], strict));
    if (isPlainObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        const here = [...at, k];
        if (at.length === 2 && at[0] === 'services' && k === 'templates') {
          out[k] = x;
          continue;
        }
        const strictHere = at.length === 1 && at[0] === 'services' ? selected.has(k) : strict;
        out[k] = walk(x, here, strictHere);
      }
      return out;
    }
    return v;
  };
  return walk(merged, [], true);
}

/** After interpolation, whole numbers and booleans become typed values (`port: ${PORT:-3000}`). */
function coerce(text: string): string | number | boolean {
  if (/^-?(0|[1-9]\d*)(\.\d+)?$/.test(text)) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  return text;
}

/** The services a run selects: the named ones and what they depend on, or every enabled one. */
function selectedServices(merged: unknown, selection: string[] | undefined): Set<string> {
  const services = isPlainObject(merged) && isPlainObject(merged.services) ? merged.services : {};
  if (!selection || selection.length === 0) {
    return new Set(Object.entries(services).filter(([, s]) => !(isPlainObject(s) && s.enable === false)).map(([n]) => n));
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
  return [...list].sort(
    (a, b) => (a.file ?? '').localeCompare(b.file ?? '') || (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0),
  );
}
