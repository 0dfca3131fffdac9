/**
 * Injection-proofness: in every format, a value holding quotes, newlines, `=`, `#`, `[section]`,
 * `]`, `\n`, `$`, backslashes… renders as exactly one value. Each case renders a `data:` tree whose
 * leaves interpolate the hostile value, parses the output back with the format's reader, and
 * compares the key set and every value.
 */
import ini from 'ini';
import { parse as parseToml } from 'smol-toml';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { TemplateFormat, TemplateSpec } from '../../src/profile/types.js';
import { buildTemplateContext } from '../../src/template/context.js';
import { parseEnv, quoteEnvValue, stringifyEnv } from '../../src/formats/env.js';
import { renderTemplate } from '../../src/template/render.js';
import { profileIn } from './helpers.js';

const PAYLOADS = [
  'plain',
  '',
  'say "hi"',
  "it's",
  'a\nINJECTED=1',
  'a\r\nINJECTED=1',
  'x = y',
  'k=v',
  '# not a comment',
  'value # trailing',
  '; semicolon',
  '[section]',
  '[evil]\nkey = 1',
  ']',
  '\\n',
  'back\\slash\\',
  '"quoted"',
  "'single'",
  '$HOME ${HOME} $(id) `id`',
  '\ttab',
  ' leading and trailing ',
  '---\nkey: value',
  'key: value',
  '{"a": 1}',
  '"""\nevil = 1\n"""',
  "'''",
  'true',
  'null',
  '0x10',
  '-',
  'é ü ☃ 🦋',
  '\u2028line separator',
  'a\\"\nB=2',
];

function renderData(format: TemplateFormat, data: unknown, payload: string) {
  const { dir, profile } = profileIn('name: fmt\nruntime: process\nvariables:\n  payload: { type: string }\nservices:\n  app: { command: [app] }\n');
  const context = buildTemplateContext(profile, { vars: { payload }, env: {}, secrets: {}, cwd: dir });
  const spec: TemplateSpec = { destination: `out.${format}`, format, data, env: false, index: 0 };
  return renderTemplate(spec, context, { cwd: dir });
}

const flat = { FIRST: 'one', VALUE: '{{payload}}', MIXED: 'pre-{{payload}}-post', LAST: 'last' };
const expectedFlat = (p: string) => ({ FIRST: 'one', VALUE: p, MIXED: `pre-${p}-post`, LAST: 'last' });
const nested = { first: 'one', value: '{{payload}}', section: { inner: '{{payload}}', list: ['{{payload}}', 'x'] }, last: 'last' };
const expectedNested = (p: string) => ({ first: 'one', value: p, section: { inner: p, list: [p, 'x'] }, last: 'last' });

describe.each([
  ['json', nested, expectedNested, (t: string) => JSON.parse(t) as unknown],
  ['yaml', nested, expectedNested, (t: string) => parseYaml(t) as unknown],
  ['toml', nested, expectedNested, (t: string) => parseToml(t) as unknown],
] as const)('%s output', (format, data, expected, parse) => {
  it.each(PAYLOADS.map((p) => [JSON.stringify(p), p]))('value %s stays one value', (_label, payload) => {
    const out = renderData(format, data, payload);
    expect(out.problems).toEqual([]);
    expect(parse(out.content)).toEqual(expected(payload));
  });
});

describe('ini output', () => {
  const data = { first: 'one', value: '{{payload}}', section: { inner: '{{payload}}', other: 'x' }, '[x]': undefined };
  delete (data as Record<string, unknown>)['[x]'];
  it.each(PAYLOADS.map((p) => [JSON.stringify(p), p]))('value %s stays one value', (_label, payload) => {
    const out = renderData('ini', data, payload);
    expect(out.problems).toEqual([]);
    const back = ini.parse(out.content) as Record<string, unknown>;
    expect(Object.keys(back).sort()).toEqual(['first', 'section', 'value']);
    expect(Object.keys(back.section as object).sort()).toEqual(['inner', 'other']);
    // INI has no types: the `ini` reader turns `true`/`null` into a boolean / null; compare as text.
    expect(String(back.value)).toBe(payload);
    expect(String((back.section as Record<string, unknown>).inner)).toBe(payload);
    expect(back.first).toBe('one');
  });

  it('refuses keys that would reshape the file', () => {
    const out = renderData('ini', { 'a=b': 'x' }, 'p');
    expect(out.problems.map((p) => p.code)).toEqual(['invalid_data']);
  });
});

describe('env output', () => {
  it.each(PAYLOADS.map((p) => [JSON.stringify(p), p]))('value %s stays one value', (_label, payload) => {
    const out = renderData('env', flat, payload);
    expect(out.problems).toEqual([]);
    expect(parseEnv(out.content)).toEqual(expectedFlat(payload));
    // Line-oriented readers see exactly the keys we wrote, one per line.
    const starts = out.content
      .split('\n')
      .filter((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l))
      .map((l) => l.slice(0, l.indexOf('=')));
    expect(starts).toEqual(expect.arrayContaining(['FIRST', 'VALUE', 'MIXED', 'LAST']));
    expect(starts.filter((k) => !['FIRST', 'VALUE', 'MIXED', 'LAST'].includes(k))).toEqual([]);
  });

  it('refuses keys that are not identifiers and nested values, naming the path', () => {
    const badKey = renderData('env', { 'A-B': 'x' }, 'p');
    expect(badKey.problems.map((p) => [p.code, p.path])).toEqual([['invalid_data', 'templates[0].data.A-B']]);
    const nestedValue = renderData('env', { A: { B: 'x' } }, 'p');
    expect(nestedValue.problems.map((p) => p.code)).toEqual(['invalid_data']);
  });

  it('round-trips any string made of hostile characters (seeded random cases)', () => {
    const alphabet = ['a', 'Z', '0', ' ', '\t', '\n', '\r', '"', "'", '`', '$', '\\', '=', '#', '[', ']', '{', '}', ';', ':', 'é', '☃', 'n', 'x'];
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      const value = Array.from({ length: rand(12) }, () => alphabet[rand(alphabet.length)]).join('');
      expect(parseEnv(stringifyEnv({ K: value, NEXT: 'n' }))).toEqual({ K: value, NEXT: 'n' });
    }
  });

  it('writes bare, single-quoted or double-quoted values as the dotenv conventions read them', () => {
    expect(quoteEnvValue('http://127.0.0.1:2583/x')).toBe('http://127.0.0.1:2583/x');
    expect(quoteEnvValue('a b $X #c')).toBe("'a b $X #c'");
    expect(quoteEnvValue("it's\n$X")).toBe('"it\'s\\n\\$X"');
    expect(() => quoteEnvValue('a\u0000b')).toThrow(/NUL/);
  });

  it('parses comments, export, and reports malformed lines and repeated keys with their line', () => {
    expect(parseEnv('# c\nexport A=1\nB = two words # comment\nC="x\\ny"\n\nD=\'lit $X\'\n')).toEqual({ A: '1', B: 'two words', C: 'x\ny', D: 'lit $X' });
    expect(() => parseEnv('A=1\nnot a line\n')).toThrow(expect.objectContaining({ line: 2 }));
    expect(() => parseEnv('A=1\nA=2\n')).toThrow(expect.objectContaining({ line: 2, message: 'A is set twice' }));
    expect(() => parseEnv('A="open\nB=1\n')).toThrow(/unterminated/);
  });
});

describe('ini structure', () => {
  it('writes nested sections and arrays the ini reader reads back as the same tree', () => {
    const out = renderData('ini', { top: 'a', list: ['{{payload}}', 'b'], server: { port: 80, tls: { cert: '{{payload}}' } } }, 'x=1\n[y]');
    expect(out.problems).toEqual([]);
    expect(ini.parse(out.content)).toEqual({ top: 'a', list: ['x=1\n[y]', 'b'], server: { port: '80', tls: { cert: 'x=1\n[y]' } } });
  });
});

describe('keys that are one key to the reader', () => {
  const codecs = async () => (await import('../../src/formats/index.js')).CODECS;
  it.each([
    ['json', '{"web": 1, "w\\u0065b": 2}', 1],
    ['yaml', '123: a\n"123": b\n', 2],
    ['yaml', 'admin: no\n"admin": yes\n', 2],
    ['ini', 'admin = no\n"admin" = yes\n', 2],
    ['ini', '[a]\nx=1\n[ "a" ]\ny=2\n', 3],
    ['toml', 'admin = "no"\n"admin" = "yes"\n', 2],
    ['env', 'ADMIN=no\nexport ADMIN=yes\n', 2],
  ] as const)('%s: %j is refused as a duplicate, with its line', async (format, text, line) => {
    const codec = (await codecs())[format];
    expect(() => codec.parse(text)).toThrow(expect.objectContaining({ line }));
  });

  it('env and ini: a carriage return inside a line is refused (dotenv and ini read it as a line break)', async () => {
    const { CODECS } = await import('../../src/formats/index.js');
    expect(() => CODECS.env.parse('NAME=x\rADMIN=true\n')).toThrow(expect.objectContaining({ line: 1, message: expect.stringMatching(/carriage return/) }));
    expect(() => CODECS.ini.parse('a=1\nname=x\radmin=true\n')).toThrow(expect.objectContaining({ line: 2 }));
    expect(CODECS.env.parse('A=1\r\nB=2\r\n')).toEqual({ A: '1', B: '2' });
  });

  it('free-text JSON: a value that re-sets another key is refused, not passed by the structure check', () => {
    const { dir, profile } = profileIn('name: fmt\nruntime: process\nvariables:\n  v: { type: string }\nservices:\n  app: { command: [app] }\n');
    const context = buildTemplateContext(profile, { vars: { v: 'x", "admin": true, "name": "y' }, env: {}, secrets: {}, cwd: dir });
    const out = renderTemplate({ destination: 'a.json', format: 'json', template: '{"admin": false, "name": "{{v}}"}', env: false, index: 0 }, context, {
      cwd: dir,
    });
    expect(out.problems.map((p) => [p.code, p.message])).toEqual([['invalid_output', expect.stringContaining("key 'admin' is set twice")]]);
  });
});

describe('yaml output for YAML 1.1 readers', () => {
  it('writes NEL, LS and PS escaped (\\N \\L \\P), never raw: to PyYAML and others they are line breaks', async () => {
    const { CODECS } = await import('../../src/formats/index.js');
    const data = { k: 'a\u2029#x', l: 'a\u2028b: c', n: 'a\u0085- x', ['key\u2029x']: 'v', list: ['p\u2029q'] };
    const text = CODECS.yaml.serialize(data);
    expect(text).not.toMatch(/[\u0085\u2028\u2029]/);
    expect(text).toContain('"a\\P#x"');
    expect(CODECS.yaml.parse(text)).toEqual(data);
  });
});
