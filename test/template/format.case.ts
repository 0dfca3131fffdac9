/**
 * The behaviour every output format shares: a format's test runs this suite in one line.
 *
 *   describeFormatCases(tomlFormat, { sample: { a: 1 }, broken: 'a = = 1' });
 */
import { describe, expect, it } from 'vitest';
import { formatFromDestination, OutputSyntaxError, type FormatDefinition } from '../../src/template/formats/index.js';

export interface FormatCaseFixtures {
  /** A value the format can hold: serialised, it parses back equal (structured formats: a tree; text: a string). */
  sample: unknown;
  /** Output the format must reject, with the line of the problem; omit for formats that accept any text. */
  broken?: { text: string; line: number };
}

export function describeFormatCases(definition: FormatDefinition, fixtures: FormatCaseFixtures): void {
  describe(`${definition.name} output format: shared cases`, () => {
    const codec = definition.create();

    it('what it serialises parses back to the same value', () => {
      expect(codec.parse(codec.serialize(fixtures.sample))).toEqual(fixtures.sample);
    });

    it.skipIf(!fixtures.broken)('rejects broken output with an OutputSyntaxError giving the line', () => {
      let error: unknown;
      try {
        codec.parse(fixtures.broken!.text);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(OutputSyntaxError);
      expect((error as OutputSyntaxError).line).toBe(fixtures.broken!.line);
    });

    it('is the format of destinations with its extensions', () => {
      for (const ext of definition.extensions) expect(formatFromDestination(`conf/app${ext}`)).toBe(definition.name);
    });

    it.skipIf(!definition.capabilities.structured)('a structured format refuses values it cannot hold faithfully', () => {
      expect(() => codec.serialize({ bad: () => 1 })).toThrow();
    });
  });
}
