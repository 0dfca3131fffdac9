/**
 * Variable values, from every source, checked against their declared types.
 *
 * Precedence, lowest first (later wins), like Terraform's:
 *   1. the profile's `default`;
 *   2. a stored secret (`<stateDir>/secrets.json`, written when a `generate` secret was first made);
 *   3. the environment: `STACK_VAR_<name>` with the name as declared (`STACK_VAR_pdsPort`), or
 *      else its SCREAMING_SNAKE form (`STACK_VAR_PDS_PORT`);
 *   4. a `--vars FILE` (YAML or JSON mapping);
 *   5. `--var name=value` flags (or values a library caller passes).
 * A secret with `generate` and no value from any source gets a fresh random value.
 * A type error names where the value came from (`--var port=abc: variable 'port' must be a number`);
 * a secret's value is never shown.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Problem } from '../errors.js';
import { parseProfileText } from '../profile/source.js';
import type { Profile, VariableSpec, VariableType } from '../profile/types.js';
import { suggest } from '../util/suggest.js';
import { displayPath, type ProfileLocator } from './locate.js';
import { generateSecret, MASK, MIN_MASKABLE } from './secrets.js';
import type { VariableOrigin, VariableSource } from './types.js';

export type VariableValue = string | number | boolean;

export interface ResolvedVariables {
  /** Every declared variable: its value, or null when it has none. */
  values: Record<string, VariableValue | null>;
  secrets: Map<string, string>;
  missing: Map<string, { required: boolean; invalid?: boolean }>;
  generated: Record<string, string>;
  problems: Problem[];
}

export const ENV_PREFIX = 'STACK_VAR_';

/** `pdsJwtSecret` → `PDS_JWT_SECRET`. */
export function screamingSnake(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toUpperCase();
}

/** The `STACK_VAR_*` values of an environment, for the declared variables. */
export function environmentSource(variables: Record<string, VariableSpec>, env: Record<string, string | undefined>): VariableSource {
  const values: Record<string, unknown> = {};
  const labels: VariableSource['labels'] = {};
  for (const [name, spec] of Object.entries(variables)) {
    for (const key of [`${ENV_PREFIX}${name}`, `${ENV_PREFIX}${screamingSnake(name)}`]) {
      const v = env[key];
      if (v === undefined) continue;
      values[name] = v;
      labels[name] = { label: `${key}=${spec.type === 'secret' ? MASK : v}` };
      break;
    }
  }
  return { origin: 'env', values, labels, unknown: 'ignore' };
}

/** `--var name=value` flags as a source; a flag without `=` is a problem. */
export function flagSource(flags: readonly string[], problems: Problem[], secretNames: ReadonlySet<string>): VariableSource {
  const values: Record<string, unknown> = {};
  const labels: VariableSource['labels'] = {};
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    if (eq <= 0) {
      problems.push({ code: 'invalid_flag', severity: 'error', message: `--var ${flag.includes('=') ? '' : flag}: expected --var name=value` });
      continue;
    }
    const name = flag.slice(0, eq);
    const value = flag.slice(eq + 1);
    values[name] = value;
    labels[name] = { label: `--var ${name}=${secretNames.has(name) ? MASK : value}` };
  }
  return { origin: 'flag', values, labels, unknown: 'error' };
}

/** A `--vars FILE` (YAML or JSON mapping of names to values) as a source, positions kept for messages. */
export function varsFileSource(file: string, cwd: string, problems: Problem[]): VariableSource {
  const display = displayPath(path.resolve(cwd, file), cwd);
  const empty: VariableSource = { origin: 'file', values: {}, unknown: 'warning' };
  let text: string;
  try {
    text = readFileSync(path.resolve(cwd, file), 'utf8');
  } catch (err) {
    problems.push({ code: 'read_error', severity: 'error', file: display, message: `cannot read the --vars file: ${(err as Error).message}` });
    return empty;
  }
  const parsed = parseProfileText(text, display.endsWith('.json') ? display : `${display}`);
  if (parsed.problems.length > 0) {
    problems.push(...parsed.problems.map((p) => ({ ...p, severity: 'error' as const })));
    return empty;
  }
  const value = parsed.value ?? {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    problems.push({
      code: 'invalid_type',
      severity: 'error',
      file: display,
      line: 1,
      column: 1,
      message: 'a --vars file must be a mapping of variable names to values',
    });
    return empty;
  }
  const labels: VariableSource['labels'] = {};
  for (const name of Object.keys(value)) labels[name] = { label: `--vars ${display}`, ...parsed.locate([name]), path: name };
  return { origin: 'file', values: value as Record<string, unknown>, labels, unknown: 'warning' };
}

type Coerced = { value: VariableValue } | { error: string };

export function coerceVariable(type: VariableType, raw: unknown): Coerced {
  switch (type) {
    case 'string':
    case 'secret':
      if (typeof raw === 'string') return { value: raw };
      if (typeof raw === 'number' || typeof raw === 'boolean') return { value: String(raw) };
      return { error: `must be a ${type === 'secret' ? 'string (a secret)' : 'string'}` };
    case 'number': {
      if (typeof raw === 'number' && Number.isFinite(raw)) return { value: raw };
      if (typeof raw === 'string' && /^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/.test(raw)) return { value: Number(raw) };
      return { error: 'must be a number' };
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return { value: raw };
      const text = String(raw).trim().toLowerCase();
      if (['true', 'yes', 'on', '1'].includes(text)) return { value: true };
      if (['false', 'no', 'off', '0'].includes(text)) return { value: false };
      return { error: 'must be a boolean (true or false)' };
    }
    case 'url': {
      if (typeof raw === 'string' && /^[a-z][a-z0-9+.-]*:\/\/[^\s/]/i.test(raw)) {
        try {
          new URL(raw);
          return { value: raw };
        } catch {
          /* reported below */
        }
      }
      return { error: 'must be a URL (scheme://host…)' };
    }
  }
}

export interface ResolveOptions {
  /** Sources in increasing precedence (environment, `--vars` file, flags). */
  sources: VariableSource[];
  /** Stored secret values (from `secrets.json`). */
  stored: Record<string, string>;
  /** Generate missing `generate` secrets (default true). */
  generate: boolean;
  locate: ProfileLocator;
}

export function resolveVariables(profile: Pick<Profile, 'variables'>, opts: ResolveOptions): ResolvedVariables {
  const declared = profile.variables;
  const out: ResolvedVariables = { values: {}, secrets: new Map(), missing: new Map(), generated: {}, problems: [] };
  const names = Object.keys(declared);

  for (const source of opts.sources) {
    if (source.unknown === 'ignore') continue;
    for (const name of Object.keys(source.values)) {
      if (Object.prototype.hasOwnProperty.call(declared, name)) continue;
      const origin = originOf(source, name);
      const s = suggest(name, names);
      out.problems.push({
        code: 'unknown_variable',
        severity: source.unknown,
        ...where(origin),
        // Not the value: an undeclared name may be a mistyped secret's.
        message: `${origin.label.replace(/=.*$/s, '=…')}: the profile declares no variable '${name}'${s ? ` — did you mean '${s}'?` : ''}`,
      });
    }
  }

  for (const [name, spec] of Object.entries(declared)) {
    let chosen: { raw: unknown; origin: VariableOrigin } | undefined;
    if (spec.default !== undefined) {
      chosen = { raw: spec.default, origin: { kind: 'default', label: 'the profile default', ...opts.locate(['variables', name, 'default']) } };
    }
    if (spec.type === 'secret' && opts.stored[name] !== undefined) {
      chosen = { raw: opts.stored[name], origin: { kind: 'stored', label: 'secrets.json' } };
    }
    for (const source of opts.sources) {
      if (Object.prototype.hasOwnProperty.call(source.values, name)) chosen = { raw: source.values[name], origin: originOf(source, name) };
    }
    if (chosen === undefined && spec.type === 'secret' && spec.generate && opts.generate) {
      const value = generateSecret(spec.generate);
      out.generated[name] = value;
      chosen = { raw: value, origin: { kind: 'generated', label: 'generated' } };
    }
    if (chosen === undefined || chosen.raw === null) {
      out.values[name] = null;
      out.missing.set(name, { required: spec.required });
      continue;
    }
    const coerced = coerceVariable(spec.type, chosen.raw);
    if ('error' in coerced) {
      out.problems.push({
        code: 'invalid_variable',
        severity: 'error',
        ...where(chosen.origin),
        message: `${chosen.origin.label}: variable '${name}' ${coerced.error}`,
      });
      out.values[name] = null;
      out.missing.set(name, { required: spec.required, invalid: true });
      continue;
    }
    out.values[name] = coerced.value;
    if (spec.type === 'secret') {
      const value = String(coerced.value);
      out.secrets.set(name, value);
      if (value.length > 0 && value.length < MIN_MASKABLE) {
        out.problems.push({
          code: 'short_secret',
          severity: 'warning',
          ...where(chosen.origin),
          message: `secret '${name}' is shorter than ${MIN_MASKABLE} characters: too weak to be a secret, and it cannot be masked in printed output`,
        });
      }
    }
  }
  return out;
}

function originOf(source: VariableSource, name: string): VariableOrigin {
  const label = source.labels?.[name];
  return { kind: source.origin, label: label?.label ?? source.origin, ...(label ?? {}) };
}

function where(origin: VariableOrigin): Pick<Problem, 'file' | 'line' | 'column' | 'path'> {
  return {
    ...(origin.file !== undefined ? { file: origin.file } : {}),
    ...(origin.line !== undefined ? { line: origin.line, column: origin.column } : {}),
    ...(origin.path !== undefined ? { path: origin.path } : {}),
  };
}
