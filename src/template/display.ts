/**
 * What a rendered file looks like where it may be printed (`render --out -`, `--json`, `--check`
 * diffs): masked at the data level, before the format spells anything. The template is rendered
 * a second time against a copy of the context in which every secret value (secret variables,
 * environment values whose names look secret, URL passwords) is a token made of letters and
 * digits, which no format escapes, quotes or folds; the token then becomes `••••`. So masking does
 * not depend on how a format spells a value (a PEM key as a YAML block scalar, JSON-escaped…).
 * The text redactor (src/util/redact.ts) still runs over the result, as a second line.
 */
import { randomBytes } from 'node:crypto';
import { MASK, redactUrlCredentials } from '../util/redact.js';
import type { TemplateContext } from './types.js';

/** Unique per process, letters and digits only: every format writes it as it is. */
const TOKEN = `STACKMASKED${randomBytes(8).toString('hex').toUpperCase()}X`;

const displayed = new WeakMap<TemplateContext, TemplateContext>();

/** The context with every secret value replaced by the mask token (cached per context). */
export function displayContext(context: TemplateContext): TemplateContext {
  let d = displayed.get(context);
  if (!d) {
    const secret = new Set([...context.secrets.values(), ...(context.secretValues ?? [])].filter((v) => v !== ''));
    const hide = (value: unknown): unknown => {
      if (typeof value === 'string') return secret.has(value) ? TOKEN : redactUrlCredentials(value).split(MASK).join(TOKEN);
      if (Array.isArray(value)) return value.map(hide);
      if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, hide(v)]));
      return value;
    };
    d = {
      ...context,
      root: hide(context.root) as Record<string, unknown>,
      secrets: new Map([...context.secrets].map(([k, v]) => [k, v === '' ? v : TOKEN])),
    };
    displayed.set(context, d);
  }
  return d;
}

/** Displayed text: the mask token shown as `••••`, and anything the text redactor still finds masked. */
export function showMasked(text: string, context: TemplateContext): string {
  return context.redact(text.split(TOKEN).join(MASK));
}
