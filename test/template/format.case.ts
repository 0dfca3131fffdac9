/**
 * The behaviour every output format shares, run by each format in one line (format-registry.test.ts),
 * like hono's `*.case.test.ts`: a new format adds its line and gets the whole suite.
 *
 *   describeFormatCases(tomlFormat, { sample: { a: 1 }, broken: { text: 'a = = 1', line: 1 } });
 *
 *   - what it serialises parses back to the same value; broken output is refused at its line and column;
 *   - structured formats: a `data:` tree of hostile strings round-trips; a free-text template written
 *     the way the format itself writes the document (`"name": "{{v}}"`, `name={{v}}`, …) either renders
 *     with exactly the template's keys and values, or is refused; a key set twice is refused at the
 *     line of the second one.
 * The hostile fixtures are made with the format's own serialiser, so the suite needs nothing but the name.
 */
import { describe, expect, it } from 'vitest';
import type { TemplateFormat, TemplateSpec } from '../../src/profile/types.js';
import { buildTemplateContext } from '../../src/template/context.js';
import { formatFromDestination, OutputSyntaxError, type FormatDefinition } from '../../src/formats/index.js';
import { renderTemplate } from '../../src/template/render.js';
import { profileIn } from './helpers.js';

export interface FormatCaseFixtures {
  /** A value the format can hold: serialised, it parses back equal (structured formats: a tree; text: a string). */
  sample: unknown;
  /** Output the format must reject, with the line of the problem; omit for formats that accept any text. */
  broken?: { text: string; line: number };
  /** How parsed values compare (INI and ENV hold strings only). */
  stringly?: boolean;
  /** One key per line (INI, ENV): also checked as a reader that breaks lines at a lone CR sees it. */
  lineOriented?: boolean;
}

/** Values that break out of a naive quoting in one format or another. */
export const HOSTILE_VALUES = [
  'plain',
  '',
  'say "hi"',
  "it's",
  'x", "admin": "yes", "name": "y',
  "x', 'admin': 'yes', 'name': 'y",
  'x"\nadmin = "yes"\nname = "y',
  'x\nadmin: yes',
  'x\nadmin=yes',
  'x\r\nadmin=yes',
  'x\radmin=yes',
  'x\u2028admin=yes',
  '[evil]\nadmin = yes',
  'x # c\nadmin=yes',
  '\\"\nadmin=yes',
  '$HOME `id` ${X}',
  '{"admin": "yes"}',
  '---\nadmin: yes',
  '"""\nadmin = "yes"\n"""',
  'é ☃ 🦋\ttab',
  'true',
  'null',
];

const SLOT = 'SLOTVALUE';

function contextFor(payload: string) {
  const { dir, profile } = profileIn('name: fmt\nruntime: process\nvariables:\n  v: { type: string }\nservices:\n  app: { command: [app] }\n');
  return { dir, context: buildTemplateContext(profile, { vars: { v: payload }, env: {}, secrets: {}, cwd: dir }) };
}

function render(format: TemplateFormat, spec: Partial<TemplateSpec>, payload: string) {
  const { dir, context } = contextFor(payload);
  return renderTemplate({ destination: `out.${format}`, format, env: false, index: 0, ...spec }, context, { cwd: dir });
}

export function describeFormatCases(definition: FormatDefinition, fixtures: FormatCaseFixtures): void {
  describe(`${definition.name} output format: shared cases`, () => {
    const codec = definition.create();
    const structured = definition.capabilities.structured;
    // The value sits after `admin`: an injected `admin` comes later and would win with a last-wins reader.
    const flat = { admin: 'no', name: SLOT, last: 'z' };

    it('what it serialises parses back to the same value', () => {
      expect(codec.parse(codec.serialize(fixtures.sample))).toEqual(fixtures.sample);
    });

    it.skipIf(!fixtures.broken)('rejects broken output with an OutputSyntaxError giving the line and column', () => {
      let error: unknown;
      try {
        codec.parse(fixtures.broken!.text);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(OutputSyntaxError);
      expect((error as OutputSyntaxError).line).toBe(fixtures.broken!.line);
      expect((error as OutputSyntaxError).column).toBeGreaterThan(0);
    });

    it('is the format of destinations with its extensions', () => {
      for (const ext of definition.extensions) expect(formatFromDestination(`conf/app${ext}`)).toBe(definition.name);
    });

    it.skipIf(!structured)('a structured format refuses values it cannot hold faithfully', () => {
      expect(() => codec.serialize({ bad: () => 1 })).toThrow();
    });

    it.skipIf(!structured).each(HOSTILE_VALUES.map((v) => [JSON.stringify(v), v]))('round trip of a data: tree holding %s', (_label, v) => {
      const data = { first: 'one', value: '{{v}}', mixed: 'pre-{{v}}-post', last: 'last' };
      const out = render(definition.name as TemplateFormat, { data }, v);
      expect(out.problems).toEqual([]);
      const expected = { first: 'one', value: v, mixed: `pre-${v}-post`, last: 'last' };
      const back = codec.parse(out.content) as Record<string, unknown>;
      expect(fixtures.stringly ? Object.fromEntries(Object.entries(back).map(([k, x]) => [k, String(x)])) : back).toEqual(expected);
    });

    it.skipIf(!structured).each(HOSTILE_VALUES.map((v) => [JSON.stringify(v), v]))('free text: %s adds or re-sets no key', (_label, v) => {
      const template = codec.serialize(flat).replace(SLOT, '{{v}}');
      const out = render(definition.name as TemplateFormat, { template }, v);
      if (out.problems.some((p) => p.severity !== 'warning')) {
        expect(out.problems.map((p) => p.code)).toEqual([expect.stringMatching(/^(invalid_output|value_changes_structure)$/)]);
        return;
      }
      const back = codec.parse(out.content) as Record<string, unknown>;
      expect(Object.keys(back).sort()).toEqual(['admin', 'last', 'name']);
      // Readers that break lines at a lone CR too (the Node `dotenv` package, `ini`) see one `admin` line.
      if (fixtures.lineOriented) expect(out.content.split(/\r\n|\r|\n/).filter((l) => /^\s*["']?admin["']?\s*[:=]/.test(l))).toHaveLength(1);
      expect(String(back.admin)).toBe('no');
      expect(String(back.last)).toBe('z');
    });

    it.skipIf(!structured)('refuses a key set twice, at the line of the second', () => {
      const text = codec.serialize({ first: 'x', second: 'y' });
      const line = text.split('\n').findIndex((l) => l.includes('second')) + 1;
      const twice = text.replace('second', 'first');
      let error: unknown;
      try {
        codec.parse(twice);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(OutputSyntaxError);
      expect((error as OutputSyntaxError).line).toBe(line);
      expect((error as OutputSyntaxError).message).toMatch(/first|twice|duplicate|unique|already/i);
    });
  });
}
