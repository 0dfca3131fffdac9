/**
 * Checking a template against its context before it renders, so that one run reports every
 * problem of every template at once (Handlebars' strict mode stops at the first one).
 *
 * The walk follows the template's AST the way the runtime would, with the real context: a block
 * whose condition is false is skipped exactly as rendering skips it, so `{{#if service.redis}}`
 * guards an absent optional service, and `#with` / `#each` / block params change the scope as
 * they do at run time. Every path expression that would be evaluated is looked up; a missing one
 * becomes a Problem at its file:line:column with a "did you mean" where a name is close.
 */
import type { Problem, SourceLocation } from '../errors.js';
import { isSecretName } from '../util/redact.js';
import { didYouMean } from '../util/suggest.js';
import { dollarBraceMessage, findDollarBraces } from './dollar-brace.js';
import { ENV_PREFIX, screamingSnake } from './variables.js';
import { HELPER_NAMES, isHelperCall } from './engine.js';
import type { TemplateContext } from './types.js';

/** Where a template node is, for problems: 1-based line and column, and a profile path for `data:` leaves. */
export type Locate = (loc: { line: number; column: number } | undefined) => SourceLocation & { path?: string };

export interface Analysis {
  problems: Problem[];
  /** The template reads a secret (the `secret` helper, or a secret variable). */
  usesSecret: boolean;
  /** For a template that is exactly one `{{path}}`: the value it names (keeps numbers and booleans typed). */
  sole?: { value: unknown };
  /**
   * The rendered text, when the template is only text, plain `{{path}}` lookups and `{{secret "x"}}`
   * (whose values the analysis has resolved anyway): Handlebars need not run.
   */
  output?: string;
}

/** A value the analysis cannot know (a helper's result, `@index`): nothing below it is checked. */
const UNKNOWN: unique symbol = Symbol('unknown');

/** How a path is used: printed, passed to a helper, or tested (where absent is allowed). */
type Mode = 'value' | 'param' | 'condition';

interface Scope {
  value: unknown;
  params: Map<string, unknown>;
  parent: Scope | undefined;
}

const SERVICE_FIELDS = ['name', 'url', 'host', 'address', 'port', 'tags', 'meta', 'instances'];
const LOOP_DATA = new Set(['index', 'key', 'first', 'last']);
/** Cap on the elements of an `#each` checked one by one (the body is the same for every one). */
const MAX_EACH = 20;

const hasOwn = (v: object, k: string) => Object.prototype.hasOwnProperty.call(v, k);
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const hint = didYouMean;

/** Handlebars' `#if` truthiness. */
function isTruthy(v: unknown, includeZero: boolean): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v === 0) return includeZero;
  return Boolean(v);
}

export function analyzeTemplate(ast: hbs.AST.Program, ctx: TemplateContext, locate: Locate): Analysis {
  const analyzer = new Analyzer(ctx, locate);
  const root: Scope = { value: ctx.root, params: new Map(), parent: undefined };
  analyzer.program(ast, root);
  const out: Analysis = { problems: analyzer.problems, usesSecret: analyzer.usesSecret };
  if (analyzer.problems.length === 0) {
    const text = directOutput(ast, ctx, analyzer);
    if (text !== undefined) out.output = text;
  }
  const only = ast.body.length === 1 ? ast.body[0] : undefined;
  if (only?.type === 'MustacheStatement' && analyzer.soleValue !== UNKNOWN && !isHelperCall(only as hbs.AST.MustacheStatement)) {
    out.sole = { value: analyzer.soleValue };
  }
  return out;
}

class Analyzer {
  readonly problems: Problem[] = [];
  usesSecret = false;
  soleValue: unknown = UNKNOWN;
  private seen: Set<string> | undefined;

  constructor(
    private readonly ctx: TemplateContext,
    private readonly locate: Locate,
  ) {}

  /** Values of the top-level mustaches, as resolved: direct output prints them. */
  readonly values = new Map<hbs.AST.MustacheStatement, unknown>();

  program(p: hbs.AST.Program | undefined, scope: Scope): void {
    for (const s of p?.body ?? []) this.statement(s, scope);
  }

  private statement(s: hbs.AST.Statement, scope: Scope): void {
    switch (s.type) {
      case 'ContentStatement':
        return this.content(s as hbs.AST.ContentStatement);
      case 'CommentStatement':
        return;
      case 'MustacheStatement':
        return this.mustache(s as hbs.AST.MustacheStatement, scope);
      case 'BlockStatement':
        return this.block(s as hbs.AST.BlockStatement, scope);
      case 'PartialStatement':
      case 'PartialBlockStatement':
        return this.report(s.loc, 'unsupported', 'partials ({{> name}}) are not available in config templates');
      default:
        return this.report(s.loc, 'unsupported', 'decorators are not available in config templates');
    }
  }

  /** `${name}` for a name templates know: an error showing the `{{name}}` form (see dollar-brace.ts). */
  private content(node: hbs.AST.ContentStatement): void {
    const known = (name: string) => hasOwn(this.ctx.root, name) || this.ctx.declared.has(name);
    for (const hit of findDollarBraces(node.value, known)) {
      const start = node.loc?.start;
      const line = (start?.line ?? 1) + hit.line - 1;
      // Columns of the first line count from where the text starts; report() adds 1 to start.column.
      const column = hit.line === 1 ? (start?.column ?? 0) + hit.column - 1 : hit.column - 1;
      this.report({ source: '', start: { line, column }, end: { line, column } }, 'dollar_brace', dollarBraceMessage(hit));
    }
  }

  private mustache(node: hbs.AST.MustacheStatement, scope: Scope): void {
    if (node.path.type !== 'PathExpression') {
      return this.report(node.loc, 'unsupported', `a literal (${String((node.path as hbs.AST.StringLiteral).original)}) cannot be looked up; write it as text`);
    }
    if (isHelperCall(node)) {
      this.helper(node, scope);
      return;
    }
    const path = node.path as hbs.AST.PathExpression;
    const value = this.resolve(path, scope, 'value');
    this.soleValue = value;
    if (scope.parent === undefined) this.values.set(node, value);
    if (isPlainObject(value)) {
      const fields = Object.keys(value).slice(0, 6).join(', ');
      this.report(path.loc, 'not_a_value', `'${path.original}' is an object, not a value: name one of its fields (${fields})`);
    }
  }

  private block(node: hbs.AST.BlockStatement, scope: Scope): void {
    const path = node.path;
    if (!isHelperCall(node)) return this.section(node, scope);
    const name = path.parts[0] ?? '';
    const includeZero = node.hash?.pairs.some((p) => p.key === 'includeZero' && p.value.type === 'BooleanLiteral' && (p.value as hbs.AST.BooleanLiteral).value);
    switch (path.original) {
      case 'if':
      case 'unless': {
        const cond = this.expression(node.params[0], scope, 'condition');
        if (cond === UNKNOWN) {
          this.program(node.program, scope);
          this.program(node.inverse, scope);
          return;
        }
        const truthy = isTruthy(cond, includeZero ?? false) === (name === 'if');
        return this.program(truthy ? node.program : node.inverse, scope);
      }
      case 'with': {
        const v = this.expression(node.params[0], scope, 'condition');
        if (v === UNKNOWN || isTruthy(v, true)) this.program(node.program, this.child(scope, v, node.program, [v]));
        if (v === UNKNOWN || !isTruthy(v, true)) this.program(node.inverse, scope);
        return;
      }
      case 'each':
        return this.each(node, this.expression(node.params[0], scope, 'condition'), scope);
      default:
        this.helper(node, scope);
        this.program(node.program, scope);
        this.program(node.inverse, scope);
    }
  }

  /** `{{#each list}}`: the body once per element (up to a cap), with `this` and block params bound. */
  private each(node: hbs.AST.BlockStatement, v: unknown, scope: Scope): void {
    if (v === UNKNOWN) {
      this.program(node.program, this.child(scope, UNKNOWN, node.program, [UNKNOWN, UNKNOWN]));
      this.program(node.inverse, scope);
      return;
    }
    const entries: [unknown, unknown][] = Array.isArray(v) ? v.map((x, i) => [x, i]) : isPlainObject(v) ? Object.entries(v).map(([k, x]) => [x, k]) : [];
    if (entries.length === 0) return this.program(node.inverse, scope);
    for (const [value, key] of entries.slice(0, MAX_EACH)) this.program(node.program, this.child(scope, value, node.program, [value, key]));
  }

  /** `{{#path}}…{{/path}}` without a helper: Handlebars' blockHelperMissing rules. */
  private section(node: hbs.AST.BlockStatement, scope: Scope): void {
    const v = this.resolve(node.path, scope, 'condition');
    if (v === UNKNOWN) {
      this.program(node.program, this.child(scope, UNKNOWN, node.program, []));
      this.program(node.inverse, scope);
    } else if (v === true) this.program(node.program, scope);
    else if (Array.isArray(v)) this.each(node, v, scope);
    else if (!isTruthy(v, false)) this.program(node.inverse, scope);
    else this.program(node.program, this.child(scope, v, node.program, []));
  }

  private child(scope: Scope, value: unknown, program: hbs.AST.Program | undefined, params: unknown[]): Scope {
    const names = program?.blockParams ?? [];
    return { value, params: new Map(names.map((n, i) => [n, params[i] ?? UNKNOWN])), parent: scope };
  }

  /** A helper call (mustache, block or subexpression): checks its name and arguments. */
  private helper(node: hbs.AST.MustacheStatement | hbs.AST.BlockStatement | hbs.AST.SubExpression, scope: Scope): unknown {
    const path = node.path as hbs.AST.PathExpression;
    const name = path.original;
    const params = node.params;
    if (!HELPER_NAMES.has(name) || path.parts.length !== 1) {
      this.report(path.loc, 'unknown_helper', `Unknown helper '${name}'${hint(name, HELPER_NAMES)} (available: ${[...HELPER_NAMES].join(', ')})`);
      params.forEach((p) => this.expression(p, scope, 'param'));
      return UNKNOWN;
    }
    if (name === 'secret') return this.secret(params[0], scope, path.loc);
    params.forEach((p, i) => this.expression(p, scope, name === 'default' && i === 0 ? 'condition' : 'param'));
    for (const pair of node.hash?.pairs ?? []) this.expression(pair.value, scope, 'param');
    return UNKNOWN;
  }

  private secret(param: hbs.AST.Expression | undefined, scope: Scope, loc: hbs.AST.SourceLocation): unknown {
    if (param?.type !== 'StringLiteral') {
      if (param) this.expression(param, scope, 'param');
      else this.report(loc, 'invalid_helper_call', 'secret needs the name of a secret variable: {{secret "name"}}');
      this.usesSecret = true;
      return UNKNOWN;
    }
    const name = (param as hbs.AST.StringLiteral).value;
    const type = this.ctx.declared.get(name);
    if (this.ctx.secrets.has(name)) {
      this.usesSecret = true;
      return UNKNOWN; // never analysed further: its value must not reach a message
    }
    if (type === undefined) {
      const secrets = [...this.ctx.declared].filter(([, t]) => t === 'secret').map(([n]) => n);
      this.report(param.loc, 'unknown_secret', `Unknown secret '${name}'${hint(name, secrets)}`);
    } else if (type !== 'secret') {
      this.report(param.loc, 'not_a_secret', `Variable '${name}' is a ${type}, not a secret: write {{${name}}}`);
    } else {
      const missing = this.ctx.missing.get(name);
      if (!missing?.invalid) {
        const message =
          missing?.required === false ? `Secret '${name}' has no value (give it \`generate\`, or set it with --var ${name}=…)` : missingRequired(name, true);
        this.report(param.loc, 'missing_variable', message);
      }
    }
    return UNKNOWN;
  }

  private expression(e: hbs.AST.Expression | undefined, scope: Scope, mode: Mode): unknown {
    if (!e) return UNKNOWN;
    switch (e.type) {
      case 'PathExpression':
        return this.resolve(e as hbs.AST.PathExpression, scope, mode);
      case 'SubExpression':
        return this.helper(e as hbs.AST.SubExpression, scope);
      case 'StringLiteral':
      case 'NumberLiteral':
      case 'BooleanLiteral':
        return (e as hbs.AST.StringLiteral).value;
      default:
        return undefined; // null / undefined literals
    }
  }

  /** Look a path up as the runtime would; report what is missing. Returns UNKNOWN after a problem. */
  private resolve(path: hbs.AST.PathExpression, scope: Scope, mode: Mode): unknown {
    let parts = path.parts;
    let base: unknown;
    if (path.data) {
      const head = parts[0] ?? '';
      if (LOOP_DATA.has(head)) return UNKNOWN;
      if (head !== 'root') {
        this.report(path.loc, 'unknown_variable', `Unknown data variable '@${head}' (available: @root, @index, @key, @first, @last)`);
        return UNKNOWN;
      }
      base = this.ctx.root;
      parts = parts.slice(1);
    } else {
      let s = scope;
      for (let d = 0; d < path.depth; d++) s = s.parent ?? s;
      const head = parts[0];
      const param = head !== undefined && path.depth === 0 && !/^(this\b|\.\/)/.test(path.original) ? findParam(s, head) : undefined;
      if (param) {
        base = param.value;
        parts = parts.slice(1);
      } else base = s.value;
    }
    const fromRoot = base === this.ctx.root;
    let v = base;
    for (let i = 0; i < parts.length; i++) {
      const key = parts[i]!;
      if (v === UNKNOWN) return UNKNOWN;
      if (v === null || v === undefined) {
        if (mode === 'condition') return undefined;
        this.reportNothing(path, fromRoot, parts.slice(0, i));
        return UNKNOWN;
      }
      if (typeof v !== 'object' || !hasOwn(v, key)) {
        if (mode === 'condition' && fromRoot && isOpenMap(parts, i)) return undefined;
        this.reportUnknown(path, fromRoot, parts, i, v);
        return UNKNOWN;
      }
      if (fromRoot && i === 0 && this.ctx.secrets.has(key)) this.usesSecret = true;
      // `{{env.API_TOKEN}}`: a value whose name says it is a secret makes the file a secret one.
      if (fromRoot && i === 1 && parts[0] === 'env' && isSecretName(key)) this.usesSecret = true;
      v = (v as Record<string, unknown>)[key];
    }
    if ((v === null || v === undefined) && mode !== 'condition') {
      this.reportNothing(path, fromRoot, parts);
      return UNKNOWN;
    }
    return v;
  }

  /** `parts` resolved to null: a declared variable without value, an absent service, an empty field. */
  private reportNothing(path: hbs.AST.PathExpression, fromRoot: boolean, parts: string[]): void {
    const [head, name, field] = parts;
    if (fromRoot && parts.length === 1 && head !== undefined && this.ctx.missing.has(head)) {
      const { required, invalid } = this.ctx.missing.get(head)!;
      if (invalid) return; // its type error is already reported, with where the value came from
      return this.report(
        path.loc,
        'missing_variable',
        required
          ? missingRequired(head, this.ctx.declared.get(head) === 'secret')
          : `Variable '${head}' has no value (give it a default, or set it with --var ${head}=…)`,
      );
    }
    if (fromRoot && head === 'service' && name !== undefined && parts.length === 2) {
      const why = this.ctx.absent.get(name) ?? 'absent';
      return this.report(path.loc, 'absent_service', `Service '${name}' is absent (${why}): guard its use with {{#if service.${name}}}`);
    }
    if (fromRoot && head === 'service' && name !== undefined && field !== undefined && parts.length === 3) {
      return this.report(path.loc, 'missing_value', `Service '${name}' has no ${field}`);
    }
    this.report(path.loc, 'missing_value', `'${path.original}' has no value`);
  }

  /** `parts[i]` is not a key of `container`. */
  private reportUnknown(path: hbs.AST.PathExpression, fromRoot: boolean, parts: string[], i: number, container: unknown): void {
    const key = parts[i]!;
    // Point at the unknown segment itself (`datbase` in `service.datbase.url`), not the path's start.
    const suffix = parts.slice(i).join('.').length;
    const at = Math.max(0, path.original.length - suffix);
    const report = (code: string, message: string) => this.report(path.loc, code, message, at);
    const keys = typeof container === 'object' && container !== null ? Object.keys(container) : [];
    if (fromRoot && i === 0) {
      return report('unknown_variable', `Unknown variable '${key}'${hint(key, [...this.ctx.declared.keys(), 'service', 'env', 'domain'])}`);
    }
    if (fromRoot && parts[0] === 'service' && i === 1) {
      return report('unknown_service', `Unknown service '${key}'${hint(key, keys)}`);
    }
    if (fromRoot && parts[0] === 'service' && i === 2) {
      return report('unknown_field', `Service '${parts[1]}' has no field '${key}'${hint(key, SERVICE_FIELDS)}`);
    }
    if (fromRoot && parts[0] === 'env' && i === 1) {
      return report('missing_env', `Environment variable '${key}' is not set`);
    }
    // Name the container as written (`inst` for a block param, `../x`), not as resolved.
    const written = path.original.split(/[./]/).filter((seg) => seg !== '' && seg !== 'this');
    const where = written.slice(0, written.length - (parts.length - i)).join('.') || 'this';
    const what = typeof container === 'object' && container !== null ? '' : ` (a ${typeof container} has no fields)`;
    report('unknown_key', `'${key}' is not defined in '${where}'${what}${hint(key, keys)}`);
  }

  private report(loc: hbs.AST.SourceLocation | undefined, code: string, message: string, columnOffset = 0): void {
    const where = this.locate(loc ? { line: loc.start.line, column: loc.start.column + 1 + columnOffset } : undefined);
    const id = `${where.line}:${where.column}:${message}`;
    this.seen ??= new Set();
    if (this.seen.has(id)) return;
    this.seen.add(id);
    this.problems.push({ code, severity: 'error', ...where, message });
  }
}

/**
 * The output of a template made only of text, plain path lookups and `{{secret "literal"}}`,
 * printed as Handlebars prints with `noEscape` (null and undefined as '', anything else as String()).
 */
function directOutput(ast: hbs.AST.Program, ctx: TemplateContext, analyzer: Analyzer): string | undefined {
  let out = '';
  for (const s of ast.body) {
    if (s.type === 'ContentStatement') {
      out += (s as hbs.AST.ContentStatement).value;
      continue;
    }
    if (s.type !== 'MustacheStatement') return undefined;
    const m = s as hbs.AST.MustacheStatement;
    if (m.path.type !== 'PathExpression') return undefined;
    const path = m.path as hbs.AST.PathExpression;
    if (!isHelperCall(m)) {
      const value = analyzer.values.has(m) ? analyzer.values.get(m) : UNKNOWN;
      if (value === UNKNOWN || (typeof value === 'object' && value !== null && !Array.isArray(value))) return undefined;
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- Handlebars' own rule: a list prints as its joined items
      out += value === null || value === undefined ? '' : String(value);
      continue;
    }
    const param = m.params[0];
    if (path.original !== 'secret' || m.params.length !== 1 || m.hash || param?.type !== 'StringLiteral') return undefined;
    const secret = ctx.secrets.get((param as hbs.AST.StringLiteral).value);
    if (secret === undefined) return undefined;
    out += secret;
  }
  return out;
}

function findParam(scope: Scope, name: string): { value: unknown } | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) if (s.params.has(name)) return { value: s.params.get(name) };
  return undefined;
}

/** Maps whose keys are not known ahead (`env`, a service's `meta`): testing an absent key is fine. */
function isOpenMap(parts: string[], i: number): boolean {
  return (parts[0] === 'env' && i === 1) || (parts[0] === 'service' && parts[2] === 'meta' && i === 3);
}

/** A required variable without a value, and where to give one (a secret never on the command line: argv is public). */
export function missingRequired(name: string, secret: boolean): string {
  const env = `${ENV_PREFIX}${screamingSnake(name)}`;
  return `Required variable '${name}' is missing: give it in a --vars file or as ${env}${secret ? '' : `, or with --var ${name}=…`}`;
}
