/**
 * `${hostname}`, `${service.db.url}`: the seed's way of writing template variables. Handlebars
 * copies it as plain text, so a config would silently get the literal `${hostname}`. Where the
 * name is one templates know (a variable, `service.…`, `env.…`, `domain`) it is an error that
 * shows the `{{…}}` form; any other `${…}` (a shell script's `${HOME}`) stays text.
 *
 * No dependencies beyond the profile's types: `stack validate` runs this without loading the
 * template engine (the profile locator parses files only when there is something to report).
 */
import type { Problem } from '../errors.js';
import type { PathSegment } from '../profile/source.js';
import type { Profile } from '../profile/types.js';
import { createProfileLocator, displayPath } from './locate.js';

export interface DollarBrace {
  /** As written, e.g. `${service.db.url}`. */
  written: string;
  /** The template form to use instead, e.g. `{{service.db.url}}`. */
  suggestion: string;
  /** 1-based, within the text searched. */
  line: number;
  column: number;
}

/** The names every template context has besides the profile's variables. */
export const CONTEXT_ROOT_NAMES = ['service', 'env', 'domain'] as const;

/** The `${…}` in a text whose first name `known` accepts. */
export function findDollarBraces(text: string, known: (name: string) => boolean): DollarBrace[] {
  const hits: DollarBrace[] = [];
  for (const m of text.matchAll(/\$\{([A-Za-z_][\w-]*)((?:\.[\w-]+)*)\}/g)) {
    const [written, first = '', rest = ''] = m;
    if (!known(first)) continue;
    const lines = text.slice(0, m.index).split('\n');
    hits.push({ written, suggestion: `{{${first}${rest}}}`, line: lines.length, column: lines.at(-1)!.length + 1 });
  }
  return hits;
}

export function dollarBraceMessage(hit: Pick<DollarBrace, 'written' | 'suggestion'>): string {
  return `'${hit.written}' is not template syntax (it would be copied as it is): write '${hit.suggestion}'`;
}

/** Every such `${…}` in a profile's templates, as problems at their file positions (for `stack validate`). */
export function dollarBraceProblems(profile: Profile, cwd = process.cwd()): Problem[] {
  const names = new Set<string>([...Object.keys(profile.variables), ...CONTEXT_ROOT_NAMES]);
  const known = (name: string) => names.has(name);
  const locate = createProfileLocator(profile, cwd);
  const problems: Problem[] = [];
  const add = (where: { file?: string; line?: number; column?: number; path?: string }, hit: DollarBrace) =>
    problems.push({ code: 'dollar_brace', severity: 'error', ...where, message: dollarBraceMessage(hit) });

  for (const svc of Object.values(profile.services)) {
    for (const spec of svc.templates) {
      const base: PathSegment[] = ['services', svc.name, 'templates', spec.index];
      if (spec.template !== undefined) {
        for (const hit of findDollarBraces(spec.template, known)) {
          if (spec.templateFile) add({ file: displayPath(spec.templateFile, cwd), line: hit.line, column: hit.column }, hit);
          else add(locate([...base, 'template']), hit);
        }
      }
      if (spec.data !== undefined) {
        walk(spec.data, [...base, 'data'], (text, at) => {
          for (const hit of findDollarBraces(text, known)) add(locate(at), hit);
        });
      }
    }
  }
  return problems;
}

function walk(value: unknown, at: PathSegment[], visit: (text: string, at: PathSegment[]) => void): void {
  if (typeof value === 'string') visit(value, at);
  else if (Array.isArray(value)) value.forEach((v, i) => walk(v, [...at, i], visit));
  else if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) walk(v, [...at, k], visit);
}
