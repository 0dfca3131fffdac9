/**
 * A fast parser for the most common template shape — literal text and plain `{{dotted.path}}`
 * mustaches, as in `postgres://{{service.db.host}}:{{service.db.port}}/app` — producing exactly
 * the AST `Handlebars.parse` would. Anything else (blocks, helpers, whitespace control, comments,
 * escapes, literals, `this`, `../`, `@data`) returns undefined and goes to Handlebars' own parser.
 *
 * Why: a stack with thousands of services has tens of thousands of distinct `data:` strings, and
 * Handlebars' parser plus compiler (JavaScript code generation per template) cost ~100 µs each.
 * For this shape, the analysis (which resolves every path against the context anyway) produces
 * the output directly. Tests compare this parser's AST with Handlebars' on many inputs.
 */

/** Text with no `{`, `}` or `\`, and mustaches holding one dotted identifier path. */
const SIMPLE = /^(?:[^{}\\]|\{\{[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*\}\})*$/;
const MUSTACHE = /\{\{([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\}\}/g;
/** Words Handlebars reads as literals or keywords, not as paths. */
const KEYWORDS = new Set(['true', 'false', 'null', 'undefined', 'else', 'this']);

interface Pos {
  line: number;
  column: number;
}

export function parseSimpleTemplate(source: string, helperNames: ReadonlySet<string>): hbs.AST.Program | undefined {
  if (!SIMPLE.test(source)) return undefined;
  if (source === '') return { type: 'Program', body: [], strip: {} } as unknown as hbs.AST.Program;
  const body: hbs.AST.Statement[] = [];
  const lineStarts = [0];
  for (let i = source.indexOf('\n'); i >= 0; i = source.indexOf('\n', i + 1)) lineStarts.push(i + 1);
  const pos = (offset: number): Pos => {
    if (lineStarts.length === 1) return { line: 1, column: offset };
    let line = lineStarts.length - 1;
    while (lineStarts[line]! > offset) line--;
    return { line: line + 1, column: offset - lineStarts[line]! };
  };
  const loc = (from: number, to: number): hbs.AST.SourceLocation => ({ source: undefined as unknown as string, start: pos(from), end: pos(to) });
  const content = (from: number, to: number) => {
    const value = source.slice(from, to);
    body.push({ type: 'ContentStatement', original: value, value, loc: loc(from, to) } as unknown as hbs.AST.ContentStatement);
  };

  let last = 0;
  for (const m of source.matchAll(MUSTACHE)) {
    const start = m.index;
    const original = m[1]!;
    const parts = original.split('.');
    if (parts.some((p) => KEYWORDS.has(p)) || (parts.length === 1 && helperNames.has(original))) return undefined;
    if (start > last) content(last, start);
    const end = start + m[0].length;
    const path = { type: 'PathExpression', data: false, depth: 0, parts, original, loc: loc(start + 2, end - 2) } as hbs.AST.PathExpression;
    body.push({
      type: 'MustacheStatement',
      path,
      params: [],
      hash: undefined,
      escaped: true,
      strip: { open: false, close: false },
      loc: loc(start, end),
    } as unknown as hbs.AST.MustacheStatement);
    last = end;
  }
  if (last < source.length) content(last, source.length);
  return { type: 'Program', body, strip: {}, loc: loc(0, source.length), blockParams: undefined } as unknown as hbs.AST.Program;
}
