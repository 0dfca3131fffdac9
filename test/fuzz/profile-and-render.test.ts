/**
 * Property-based fuzzing (fast-check) of the profile loader and the renderers, bounded to a few
 * seconds so that it runs in CI on every push. A counterexample fast-check finds is kept below as
 * a regression case (`examples`: tried first, on every run), with what it broke.
 *
 * Properties:
 *   - loadProfile never throws anything but a StackError with a code (no TypeError, no stack trace);
 *   - no value rendered into any format adds or changes a key (`data:` trees and free text);
 *   - a secret value never appears in what may be printed (`masked`), in any format.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { stringify as stringifyYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { StackError } from '../../src/errors.js';
import { loadProfile } from '../../src/profile/load.js';
import type { TemplateFormat } from '../../src/profile/types.js';
import { CODECS } from '../../src/formats/index.js';
import { renderStackConfigs } from '../../src/template/render.js';

/** Runs per property: enough to find the classic breaks, few enough for a few seconds in all. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const params = <T>(examples: T[]) => ({ numRuns: RUNS, examples, ...(SEED === undefined ? {} : { seed: SEED }) });

const dir = mkdtempSync(path.join(tmpdir(), 'stack-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FORMATS: TemplateFormat[] = ['json', 'yaml', 'toml', 'ini', 'env'];

/** Strings heavy in the characters that break formats, plus any Unicode. */
const hostileChar = fc.constantFrom(
  '"',
  "'",
  '\\',
  '\n',
  '\r',
  '\t',
  '=',
  ':',
  '#',
  ';',
  '[',
  ']',
  '{',
  '}',
  ',',
  '$',
  '`',
  '-',
  ' ',
  '\u2028',
  '\u2029',
  '\u0085',
  '\u0000',
  '\u001b',
  'a',
  'Z',
  '0',
  'é',
  '🦋',
);
const hostileString = fc.oneof(fc.string({ unit: hostileChar, maxLength: 24 }), fc.string({ unit: 'grapheme', maxLength: 16 }), fc.string({ maxLength: 16 }));

describe('fuzz: loadProfile', () => {
  const scalar = fc.oneof(hostileString, fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
  const service = fc.record(
    {
      command: fc.oneof(fc.array(hostileString, { maxLength: 3 }), hostileString),
      kind: fc.constantFrom('service', 'task', 'bogus'),
      port: fc.oneof(fc.integer({ min: -5, max: 70000 }), hostileString),
      address: hostileString,
      dependencies: fc.array(fc.oneof(hostileString, fc.record({ name: hostileString, type: fc.constantFrom('required', 'optional', 'x') })), { maxLength: 3 }),
      environment: fc.dictionary(hostileString, scalar, { maxKeys: 3 }),
      healthCheck: fc.record(
        { strategy: fc.constantFrom('http', 'tcp', 'command', 'none', 'x'), interval: hostileString, endpoint: hostileString },
        { requiredKeys: [] },
      ),
      templates: fc.array(
        fc.record(
          {
            destination: hostileString,
            format: fc.constantFrom(...FORMATS, 'text', 'x'),
            template: hostileString,
            data: fc.dictionary(hostileString, scalar, { maxKeys: 3 }),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 2 },
      ),
      stopGracePeriod: hostileString,
    },
    { requiredKeys: [] },
  );
  const profile = fc.record(
    {
      name: hostileString,
      runtime: fc.constantFrom('process', 'docker', 'x'),
      services: fc.dictionary(fc.oneof(hostileString, fc.constantFrom('web', 'db', 'api')), service, { maxKeys: 4 }),
      variables: fc.dictionary(
        hostileString,
        fc.record({ type: fc.constantFrom('string', 'secret', 'number', 'url', 'x'), default: scalar }, { requiredKeys: [] }),
        { maxKeys: 2 },
      ),
      coordination: fc.record({ dependencyTimeout: hostileString }, { requiredKeys: [] }),
      discovery: fc.record({ backend: fc.constantFrom('file', 'etcd', 'nats', 'x'), ttl: hostileString }, { requiredKeys: [] }),
    },
    { requiredKeys: [] },
  );
  const document = fc.oneof(
    profile.map((p) => ({ file: 'stack.json', text: JSON.stringify(p) })),
    profile.map((p) => ({ file: 'stack.yaml', text: stringifyYaml(p) })),
    fc.anything().map((v) => ({ file: 'stack.json', text: JSON.stringify(v) ?? 'null' })),
    fc.string({ unit: hostileChar, maxLength: 200 }).map((text) => ({ file: 'stack.yaml', text })),
    fc.string({ unit: hostileChar, maxLength: 200 }).map((text) => ({ file: 'stack.json', text })),
  );

  it('never throws anything but a StackError with a code', () => {
    let n = 0;
    fc.assert(
      fc.property(document, ({ file, text }) => {
        const sub = path.join(dir, `load-${n++}`);
        const full = path.join(sub, file);
        mkdirSync(sub, { recursive: true });
        writeFileSync(full, text);
        try {
          loadProfile(full, { cwd: sub, env: {} });
        } catch (err) {
          expect(err).toBeInstanceOf(StackError);
          expect(typeof (err as StackError).code).toBe('string');
          expect((err as StackError).exitCode).toBe(2);
        }
      }),
      params<[{ file: string; text: string }]>([
        [{ file: 'stack.yaml', text: 'services:\n  web: { command: [a], dependencies: [web] }\n' }],
        [{ file: 'stack.json', text: '{"services": {"web": {"command": ["a"]}, "w\\u0065b": {"command": ["b"]}}}' }],
        [{ file: 'stack.yaml', text: '\u0000' }],
        [{ file: 'stack.json', text: '[' }],
      ]),
    );
  });
});

/** Render one template of a one-service profile the way `stack render` does: the file (content, masked form) and the problems. */
function render(format: TemplateFormat, spec: { data?: unknown; template?: string }, vars: Record<string, string>, secrets: Record<string, string> = {}) {
  const variables = {
    ...Object.fromEntries(Object.keys(vars).map((k) => [k, { type: 'string' }])),
    ...Object.fromEntries(Object.keys(secrets).map((k) => [k, { type: 'secret' }])),
  };
  const sub = mkdtempSync(path.join(dir, 'r-'));
  const templates = [{ destination: `out.${format}`, format, ...spec }];
  writeFileSync(
    path.join(sub, 'stack.json'),
    JSON.stringify({ name: 'fz', runtime: 'process', variables, services: { app: { command: ['app'], templates } } }),
  );
  const profile = loadProfile(path.join(sub, 'stack.json'), { cwd: sub, env: {} });
  const { files, problems } = renderStackConfigs(profile, { vars: { ...vars, ...secrets }, env: {}, secrets: {}, cwd: sub, stateDir: sub });
  rmSync(sub, { recursive: true, force: true });
  return { file: files[0], problems: problems.filter((p) => p.severity !== 'warning') };
}

const SLOT = 'SLOTVALUE';
const stringly = (v: unknown) => (typeof v === 'object' && v !== null ? v : String(v));

describe('fuzz: no value adds or changes a key', () => {
  it.each(FORMATS)('%s: a data: tree of arbitrary strings parses back to itself', (format) => {
    fc.assert(
      fc.property(
        hostileString.filter((s) => !s.includes('\u0000')),
        (v) => {
          const out = render(format, { data: { first: 'one', value: '{{v}}', mixed: 'a{{v}}b', last: 'z' } }, { v });
          expect(out.problems).toEqual([]);
          const back = CODECS[format].parse(out.file!.content) as Record<string, unknown>;
          // YAML 1.1 readers (PyYAML) break lines at NEL, LS and PS: never written raw.
          if (format === 'yaml') expect(out.file!.content).not.toMatch(/[\u0085\u2028\u2029]/);
          expect(Object.fromEntries(Object.entries(back).map(([k, x]) => [k, stringly(x)]))).toEqual({ first: 'one', value: v, mixed: `a${v}b`, last: 'z' });
        },
      ),
      // Found: the YAML writer left U+2029 raw in a plain scalar (`a\u2029#x` read as `a` by PyYAML).
      params<[string]>([['x\r\nADMIN=1'], ['\u2028'], ['\u0085'], [' trailing  \nx'], ['a\u2029#x']]),
    );
  });

  it.each(FORMATS)('%s: free text either keeps exactly its keys and their values, or is refused', (format) => {
    const codec = CODECS[format];
    // The value after `admin`: an injected `admin` comes later, and a last-wins reader (JSON.parse) would take it.
    const template = codec.serialize({ admin: 'no', name: SLOT, last: 'z' }).replace(SLOT, '{{v}}');
    fc.assert(
      fc.property(hostileString, (v) => {
        const out = render(format, { template }, { v });
        if (out.problems.length > 0) return; // refused
        const content = out.file!.content;
        const back = codec.parse(content) as Record<string, unknown>;
        expect(Object.keys(back).sort()).toEqual(['admin', 'last', 'name']);
        expect([String(back.admin), String(back.last)]).toEqual(['no', 'z']);
        if (format === 'env' || format === 'ini') {
          // As line readers that break at a lone CR (dotenv, ini) see it: one line per key.
          const starts = content.split(/\r\n|\r|\n/).filter((l) => /^\s*["']?(admin|last|name)["']?\s*=/.test(l));
          expect(starts).toHaveLength(3);
        }
      }),
      params<[string]>([
        ['x", "admin": "yes", "name": "y'],
        ['x\radmin=yes'],
        ['x\nadmin: yes'],
        ['"""\nadmin = "yes"\n"""'],
        // Found: in YAML, `name: \n:` adds a key '' and the tame rendering (`name: :`) did not parse, which skipped the check.
        ['\n:'],
      ]),
    );
  });
});

describe('fuzz: a secret never appears in what may be printed', () => {
  const secret = fc
    .oneof(
      fc.string({ unit: hostileChar, minLength: 6, maxLength: 40 }),
      fc.array(fc.base64String({ minLength: 4, maxLength: 64 }), { minLength: 2, maxLength: 4 }).map((l) => l.join('\n')),
    )
    .filter((s) => s.trim().length >= 6 && !s.includes('\u0000'));
  /** The value and each line of it that is long enough to be told apart from other text. */
  const pieces = (s: string) => [
    s,
    ...s
      .split(/\r\n|\r|\n|\u2028|\u0085/)
      .map((l) => l.trim())
      .filter((l) => l.length >= 6 && /[A-Za-z0-9]/.test(l)),
  ];

  it.each(FORMATS)('%s: masked output holds neither the secret nor a line of it', (format) => {
    const data =
      format === 'ini' || format === 'env'
        ? { name: 'web', key: '{{secret "pw"}}' }
        : { name: 'web', key: '{{secret "pw"}}', list: ['{{secret "pw"}}'], nested: { k: 'x{{secret "pw"}}y' } };
    fc.assert(
      fc.property(secret, (pw) => {
        const out = render(format, { data }, {}, { pw });
        expect(out.problems).toEqual([]);
        expect(out.file).toMatchObject({ secret: true, mode: 0o600 });
        for (const piece of pieces(pw)) expect(out.file!.masked).not.toContain(piece);
      }),
      params<[string]>([['-----BEGIN KEY-----\nMIIEvQIBADANBgkq\nZg==\n-----END KEY-----'], ['pass  \nword  x'], ['it\'s a "secret"']]),
    );
  });
});
