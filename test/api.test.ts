/**
 * The package root is the public API: it exports exactly what README.md's "Library API" section
 * lists, so an internal helper exported by accident (or an entry point dropped) fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

function documentedNames(): string[] {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('## Library API\n');
  expect(start, 'README.md has a "Library API" section').toBeGreaterThanOrEqual(0);
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  // The bullet list names every export in backquotes (the code example is not counted).
  const bullets = section
    .split('\n- ')
    .slice(1)
    .map((b) => b.split('\n\n')[0] ?? '');
  const names = bullets.flatMap((b) => [...b.matchAll(/`([A-Za-z_][A-Za-z0-9_]*)`/g)].map((m) => m[1] ?? ''));
  return [...new Set(names)].sort();
}

describe('the public API', () => {
  it('exports exactly the entry points README.md documents', () => {
    const documented = documentedNames();
    expect(documented).toContain('loadProfile');
    expect(Object.keys(api).sort()).toEqual(documented);
  });

  it('the documented entry points are usable values', () => {
    for (const name of documentedNames()) expect((api as Record<string, unknown>)[name], name).toBeDefined();
    expect(typeof api.upStack).toBe('function');
    expect(new api.StackError('x', { code: 'invalid_input', exitCode: api.ExitCode.invalidInput })).toBeInstanceOf(Error);
  });
});
