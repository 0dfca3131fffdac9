/**
 * Free-text templates (`template:` with a structured format) cannot escape values by construction
 * the way `data:` trees do, and parsing the output back only proves it is well formed: a hostname
 * of `x\nPDS_DEV_MODE=true` yields a perfectly valid ENV file with one key too many.
 *
 * So the template is rendered a second time against a *tame* copy of the context — every string
 * reduced to its harmless characters (letters, digits, `_ . : / @ -`), so quotes, newlines, `=`,
 * `#`, `[`… are gone while conditions like `{{#if}}` and `(eq mode "prod")` still decide alike —
 * and the key paths of both outputs are compared. A key present in only one of them came from a
 * value, not from the template.
 */
import type { TemplateContext } from './types.js';

/** Harmless characters, and (stricter, for when those still do not parse: a YAML `:` alone) letters and digits only. */
const UNSAFE = /[^A-Za-z0-9_.:/@-]/g;
const NOT_ALNUM = /[^A-Za-z0-9]/g;
export type Tameness = 'harmless' | 'alphanumeric';

function tameString(s: string, level: Tameness): string {
  if (s === '') return s;
  const kept = s.replace(level === 'harmless' ? UNSAFE : NOT_ALNUM, '');
  return kept === '' ? 'x' : kept;
}

function tame(value: unknown, level: Tameness): unknown {
  if (typeof value === 'string') return tameString(value, level);
  if (Array.isArray(value)) return value.map((v) => tame(v, level));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = tame(v, level);
    return out;
  }
  return value;
}

const tamed = { harmless: new WeakMap<TemplateContext, TemplateContext>(), alphanumeric: new WeakMap<TemplateContext, TemplateContext>() };

/** The context with every string value (secrets included) reduced to harmless characters. */
export function tameContext(context: TemplateContext, level: Tameness = 'harmless'): TemplateContext {
  let t = tamed[level].get(context);
  if (!t) {
    t = {
      ...context,
      root: tame(context.root, level) as Record<string, unknown>,
      secrets: new Map([...context.secrets].map(([k, v]) => [k, tameString(v, level)])),
      redact: context.redact,
    };
    tamed[level].set(context, t);
  }
  return t;
}

/** Every key path of a parsed document (`a.b`, `list[0].c`); array items count by position. */
export function keyPaths(value: unknown, prefix = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    value.forEach((v, i) => keyPaths(v, `${prefix}[${i}]`, out));
  } else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      const p = prefix ? `${prefix}.${k}` : k;
      out.add(p);
      keyPaths(v, p, out);
    }
  }
  return out;
}

/** Key paths in one document and not the other. */
export function structureDifference(rendered: unknown, tame: unknown): { added: string[]; removed: string[] } {
  const a = keyPaths(rendered);
  const b = keyPaths(tame);
  return { added: [...a].filter((k) => !b.has(k)), removed: [...b].filter((k) => !a.has(k)) };
}
