/**
 * The folder layering of src/ (docs/architecture.md, "Folder layering"): no folder imports another
 * folder that imports it back. Every import and `export … from` counts, type-only ones too (a type
 * import still ties the two folders' designs together), and so does a dynamic `import('…')` of a
 * literal path. The files at the top of src/ (errors.ts, index.ts) count as folders of their own.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');

interface SourceFile {
  /** Relative to src/, with forward slashes: `profile/schema.ts`. */
  path: string;
  text: string;
}

interface FolderImport {
  from: string;
  to: string;
  /** `profile/types.ts (type) → graph/types.ts` */
  how: string;
}

/** The folder of a path relative to src/: its first segment (`profile`), or the file itself at the top (`errors.ts`). */
function folderOf(relative: string): string {
  return relative.split('/')[0]!;
}

/** Every relative import of a file, with whether it is type-only or dynamic. */
function importsOf(file: SourceFile): { specifier: string; kind: '' | ' (type)' | ' (dynamic)' }[] {
  const source = ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: { specifier: string; kind: '' | ' (type)' | ' (dynamic)' }[] = [];
  const add = (node: ts.Node | undefined, kind: '' | ' (type)' | ' (dynamic)') => {
    if (node && ts.isStringLiteralLike(node) && node.text.startsWith('.')) found.push({ specifier: node.text, kind });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const typeOnly =
        !!clause &&
        (clause.isTypeOnly ||
          (!clause.name && !!clause.namedBindings && ts.isNamedImports(clause.namedBindings) && clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier, typeOnly ? ' (type)' : '');
    } else if (ts.isExportDeclaration(node)) {
      add(node.moduleSpecifier, node.isTypeOnly ? ' (type)' : '');
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, ' (type)');
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], ' (dynamic)');
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Imports that cross from one folder of src/ into another. */
function folderImports(files: readonly SourceFile[]): FolderImport[] {
  const out: FolderImport[] = [];
  for (const file of files) {
    for (const { specifier, kind } of importsOf(file)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file.path), specifier)).replace(/\.js$/, '.ts');
      if (target.startsWith('..')) continue; // outside src/ (package.json)
      const from = folderOf(file.path);
      const to = folderOf(target);
      if (from !== to) out.push({ from, to, how: `${file.path}${kind} → ${target}` });
    }
  }
  return out;
}

/** Pairs of folders that import each other, each with the imports on both sides. */
function mutualImports(imports: readonly FolderImport[]): { pair: [string, string]; forth: string[]; back: string[] }[] {
  const between = new Map<string, string[]>();
  for (const i of imports) {
    const key = `${i.from}\0${i.to}`;
    between.set(key, [...(between.get(key) ?? []), i.how]);
  }
  const pairs: { pair: [string, string]; forth: string[]; back: string[] }[] = [];
  for (const [key, forth] of between) {
    const [a, b] = key.split('\0') as [string, string];
    const back = between.get(`${b}\0${a}`);
    if (back && a < b) pairs.push({ pair: [a, b], forth, back });
  }
  return pairs;
}

/**
 * The layers of docs/architecture.md: a folder imports only folders of lower layers. A new folder
 * of src/ gets its line here (and in the document's table) when it is added.
 */
const LAYERS: Record<string, number> = {
  'errors.ts': 0,
  util: 1,
  drivers: 2,
  discovery: 2,
  formats: 2,
  graph: 2,
  health: 2,
  profile: 3,
  plan: 4,
  runtime: 4,
  template: 5,
  engine: 6,
  ui: 7,
  cli: 8,
  'index.ts': 8,
};

function describePairs(pairs: ReturnType<typeof mutualImports>): string {
  return pairs
    .map(({ pair: [a, b], forth, back }) => `${a} ↔ ${b}\n  ${a} → ${b}:\n    ${forth.join('\n    ')}\n  ${b} → ${a}:\n    ${back.join('\n    ')}`)
    .join('\n');
}

function sourceFiles(): SourceFile[] {
  return (readdirSync(SRC, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts'))
    .map((f) => ({ path: f.split(path.sep).join('/'), text: readFileSync(path.join(SRC, f), 'utf8') }));
}

describe('the folder layering of src/', () => {
  it('no folder imports another folder that imports it back', () => {
    const files = sourceFiles();
    expect(files.length).toBeGreaterThan(100);
    const pairs = mutualImports(folderImports(files));
    expect(pairs, `folders of src/ that import each other:\n${describePairs(pairs)}`).toEqual([]);
  });

  it('every folder has a layer, and imports only folders of lower layers (docs/architecture.md)', () => {
    const files = sourceFiles();
    const unplaced = [...new Set(files.map((f) => folderOf(f.path)))].filter((folder) => LAYERS[folder] === undefined);
    expect(unplaced, 'folders of src/ with no layer: add them to LAYERS here and to the table in docs/architecture.md').toEqual([]);
    const upward = folderImports(files).filter((i) => LAYERS[i.to]! >= LAYERS[i.from]!);
    expect(
      upward.map((i) => `${i.how} (layer ${LAYERS[i.from]} imports layer ${LAYERS[i.to]})`),
      'imports that do not go down a layer',
    ).toEqual([]);
  });

  it('the check finds a planted cycle, type-only and re-exports included, and names the files of both sides', () => {
    const planted = [...sourceFiles(), { path: 'drivers/planted.ts', text: "import type { Profile } from '../profile/types.js';\nexport type { Profile };\n" }];
    const pairs = mutualImports(folderImports(planted));
    expect(pairs.map((p) => p.pair)).toEqual([['drivers', 'profile']]);
    const text = describePairs(pairs);
    expect(text).toContain('drivers/planted.ts (type) → profile/types.ts');
    expect(text).toMatch(/profile\/schema\.ts → drivers\/runtime\/registry\.ts/);
  });

  it('reads every form of import: value, type-only, inline type, re-export, import type node, dynamic', () => {
    const files: SourceFile[] = [
      { path: 'a/one.ts', text: "import { x } from '../b/x.js';\nexport { y } from '../c/y.js';\nexport * from '../d/z.js';" },
      {
        path: 'a/two.ts',
        text: "import { type T } from '../e/t.js';\ntype U = import('../f/u.js').U;\nconst m = () => import('../g/m.js');\nimport { z } from './same.js';\nimport fs from 'node:fs';",
      },
    ];
    expect(folderImports(files).map((i) => i.how)).toEqual([
      'a/one.ts → b/x.ts',
      'a/one.ts → c/y.ts',
      'a/one.ts → d/z.ts',
      'a/two.ts (type) → e/t.ts',
      'a/two.ts (type) → f/u.ts',
      'a/two.ts (dynamic) → g/m.ts',
    ]);
  });
});
