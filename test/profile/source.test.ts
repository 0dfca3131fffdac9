// The fast YAML path (js-yaml, YAML 1.2 core schema) must read every document exactly as the
// positioned parser (`yaml`) does: built-in profiles, the core schema's scalar forms, and seeded
// random documents in block and flow style.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDocument, stringify } from 'yaml';
import { PACKAGE_ROOT } from '../../src/profile/builtin.js';
import { fastYaml, parseProfileText } from '../../src/profile/source.js';

/** What the positioned parser makes of a text, with the options the loader uses. */
function reference(text: string): unknown {
  const doc = parseDocument(text, { merge: true, uniqueKeys: true, strict: true });
  if (doc.errors.length > 0) throw new Error(doc.errors[0]!.message);
  return doc.toJS({ maxAliasCount: 100 });
}
let fastCount = 0;
let total = 0;
/** The fast path's value when it applies (counted), else the loader's. */
const fast = (text: string) => {
  total++;
  const quick = fastYaml(text).value;
  if (quick !== undefined) {
    fastCount++;
    return quick;
  }
  const parsed = parseProfileText(text, 'x.yaml');
  expect(parsed.problems).toEqual([]);
  return parsed.value;
};

describe('fast YAML path agrees with the positioned parser', () => {
  it('on every built-in profile', () => {
    const dir = path.join(PACKAGE_ROOT, 'profiles');
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
      const text = readFileSync(path.join(dir, f), 'utf8');
      expect(fast(text), f).toEqual(reference(text));
    }
  });

  const SCALARS = [
    '1_000',
    '0o17',
    '0x1F',
    '017',
    '+1',
    '-0',
    '.5',
    '1.',
    '1e3',
    '1E3',
    '+.inf',
    '-.Inf',
    '.NaN',
    '~',
    'null',
    'Null',
    'NULL',
    'true',
    'True',
    'TRUE',
    'yes',
    'on',
    'y',
    'off',
    '2001-12-14',
    '1:30',
    '0b101',
    '12e',
    '1.10',
    '12345678901234567890',
    '0.',
    '+0o1',
    '-0x1',
    '1e+3',
    '.1e3',
    '0o',
    'NuLL',
    'tRue',
    '"1"',
    "'true'",
    '"\\x41\\u00e9"',
    '|\n  a\n  b',
    '>-\n  a\n  b',
  ];
  it('on the core schema scalar forms', () => {
    for (const s of SCALARS) {
      const text = `k: ${s}\n`;
      expect(fast(text), s).toEqual(reference(text));
    }
  });

  it('on seeded random documents, block and flow', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const atoms = [
      'a',
      'x y',
      'a: b',
      '# no',
      "it's",
      '"q"',
      'é✓',
      '',
      ' lead',
      'trail ',
      '-',
      '?',
      '1.0',
      '007',
      'null',
      'True',
      'a\nb',
      '{',
      '[x]',
      3,
      -1.5,
      0,
      true,
      false,
      null,
    ];
    const value = (depth: number): unknown => {
      const k = rand(depth > 3 ? 1 : 4);
      if (k === 1) return Array.from({ length: rand(4) }, () => value(depth + 1));
      if (k >= 2) {
        const out: Record<string, unknown> = {};
        for (let i = rand(5); i > 0; i--) out[`${atoms[rand(atoms.length)]}${i}`] = value(depth + 1);
        return out;
      }
      return atoms[rand(atoms.length)];
    };
    for (let i = 0; i < 300; i++) {
      const doc = { root: value(0) };
      for (const text of [stringify(doc), stringify(doc, { collectionStyle: 'flow' })]) {
        expect(fast(text), text).toEqual(reference(text));
      }
    }
    // the comparison is not vacuous: the fast path read nearly all of them
    expect(fastCount / total).toBeGreaterThan(0.9);
  });
});
