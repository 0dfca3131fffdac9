/**
 * The engine stays in parts: no function (declaration, method, arrow or function expression) in
 * src/engine/ has a body longer than 120 lines. A long closure is how the engine was one
 * 650-line function once; split it into the scheduler, the lifecycle or the stopper instead.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const MAX_LINES = 120;
const engineDir = fileURLToPath(new URL('../../src/engine/', import.meta.url));

/** Every function-like node of a source text whose body spans more than `max` lines. */
export function longFunctions(fileName: string, text: string, max = MAX_LINES): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const body = node.body as ts.Node;
      const first = source.getLineAndCharacterOfPosition(body.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(body.getEnd()).line;
      const lines = last - first + 1;
      if (lines > max) {
        const name = 'name' in node && node.name ? (node.name as ts.Node).getText(source) : '(anonymous)';
        found.push(`${path.basename(fileName)}:${first + 1} ${name} (${lines} lines)`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('engine structure', () => {
  it(`no function in src/engine/ is longer than ${MAX_LINES} lines`, () => {
    const files = readdirSync(engineDir).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(5);
    const long = files.flatMap((f) => longFunctions(f, readFileSync(path.join(engineDir, f), 'utf8')));
    expect(long).toEqual([]);
  });

  it('the check sees a long function (it would have caught the old startStack)', () => {
    const body = Array.from({ length: MAX_LINES + 1 }, (_, i) => `  const v${i} = ${i};`).join('\n');
    expect(longFunctions('x.ts', `export function big() {\n${body}\n}\nconst f = () => {\n${body}\n};`)).toHaveLength(2);
    expect(longFunctions('x.ts', `function small() {\n  return 1;\n}`)).toEqual([]);
  });
});
