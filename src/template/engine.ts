/**
 * The Handlebars environment templates render in: isolated (`Handlebars.create()`), strict,
 * unescaped (config files are not HTML), only our helpers, prototype access off (Handlebars'
 * default since 4.6; we never pass allowProtoPropertiesByDefault / allowProtoMethodsByDefault),
 * and compiled templates cached by their source text.
 */
import Handlebars from 'handlebars';
import { parseSimpleTemplate } from './simple-parse.js';

/** Per-render state the helpers reach through `options.data` (never a template-visible name). */
export interface RenderState {
  secrets: ReadonlyMap<string, string>;
  usedSecret: boolean;
}

export const STATE_KEY = '__stackRenderState';

const hb = Handlebars.create();
// `log` would print template values (secrets included) to the console.
hb.unregisterHelper('log');

type HelperOptions = { data?: Record<string, unknown> };
const stateOf = (options: HelperOptions): RenderState => {
  const state = options.data?.[STATE_KEY] as RenderState | undefined;
  if (!state) throw new Error('template helpers need a render state');
  return state;
};

/** Helpers templates may call, by name; `knownHelpersOnly` rejects every other one at compile time. */
const HELPERS: Record<string, (...args: unknown[]) => unknown> = {
  /** `{{secret "name"}}`: the value of a secret variable; the file becomes mode 0600. */
  secret(name: unknown, options: unknown) {
    const state = stateOf(options as HelperOptions);
    const value = typeof name === 'string' ? state.secrets.get(name) : undefined;
    if (value === undefined) throw new Error(`Unknown secret '${String(name)}'`);
    state.usedSecret = true;
    return value;
  },
  /** `{{default value "fallback"}}`: the fallback when the value is absent or empty. */
  default(value: unknown, fallback: unknown) {
    return value === undefined || value === null || value === '' ? fallback : value;
  },
  /** `{{json value}}`: a JSON literal, for embedding a value in JSON or YAML free text. */
  json(value: unknown) {
    return JSON.stringify(value ?? null);
  },
  /** `{{join service.pds.tags ","}}`. */
  join(list: unknown, separator: unknown) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a template prints a non-list as Handlebars would
    return Array.isArray(list) ? list.join(typeof separator === 'string' ? separator : ',') : String(list ?? '');
  },
  /** `{{urlencode (secret "pw")}}`: for a value inside a URL (`postgres://user:pw@host`). */
  urlencode(value: unknown) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a template prints the value as Handlebars would
    return encodeURIComponent(String(value ?? ''));
  },
  /** `{{#if (eq a b)}}`. */
  eq(a: unknown, b: unknown) {
    return a === b;
  },
};
for (const [name, fn] of Object.entries(HELPERS)) hb.registerHelper(name, fn);

/** Built-in block and lookup helpers of Handlebars that stay available. */
export const BUILTIN_HELPERS = ['if', 'unless', 'with', 'each', 'lookup'] as const;
export const HELPER_NAMES: ReadonlySet<string> = new Set([...BUILTIN_HELPERS, ...Object.keys(HELPERS)]);

const COMPILE_OPTIONS = {
  strict: true,
  knownHelpersOnly: true,
  knownHelpers: { ...Object.fromEntries(Object.keys(HELPERS).map((n) => [n, true])), log: false },
  noEscape: true,
} as const;

export interface CompiledTemplate {
  ast: hbs.AST.Program;
  /** Handlebars' compiled function, made on first use (code generation is the expensive part). */
  render: Handlebars.TemplateDelegate;
}

/**
 * Templates Handlebars parsed, least recently used first. Bounded, so a long-running process
 * rendering ever-new sources does not grow without end; the plain-lookup shape (parseSimpleTemplate)
 * costs less to parse again than a cache slot is worth, so it is never cached.
 */
const MAX_CACHED = 5_000;
const cache = new Map<string, CompiledTemplate>();

/** Parse a template source (and prepare its compilation). Throws Handlebars' parse errors. */
export function compileTemplate(source: string): CompiledTemplate {
  const simple = parseSimpleTemplate(source, HELPER_NAMES);
  if (simple) return { ast: simple, render: lazyCompile(source) };
  const hit = cache.get(source);
  if (hit) {
    cache.delete(source); // LRU: a template every service shares stays compiled
    cache.set(source, hit);
    return hit;
  }
  const compiled: CompiledTemplate = { ast: hb.parse(source), render: lazyCompile(source) };
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value as string);
  cache.set(source, compiled);
  return compiled;
}

function lazyCompile(source: string): Handlebars.TemplateDelegate {
  let render: Handlebars.TemplateDelegate | undefined;
  return (root, options) => (render ??= hb.compile(source, COMPILE_OPTIONS))(root, options);
}

export function runTemplate(compiled: CompiledTemplate, root: unknown, state: RenderState): string {
  return compiled.render(root, { data: { [STATE_KEY]: state } });
}

/** Whether a mustache or block calls a helper (as Handlebars' compiler decides it). */
export function isHelperCall(node: hbs.AST.MustacheStatement | hbs.AST.BlockStatement | hbs.AST.SubExpression): boolean {
  if (node.type === 'SubExpression') return true;
  if (Handlebars.AST.helpers.helperExpression(node)) return true;
  const path = node.path;
  return (
    path.type === 'PathExpression' &&
    Handlebars.AST.helpers.simpleId(path as hbs.AST.PathExpression) &&
    HELPER_NAMES.has((path as hbs.AST.PathExpression).parts[0]!)
  );
}
