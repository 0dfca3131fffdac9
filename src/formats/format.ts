/**
 * An output format's definition, listed in `registry.ts`: the template `format:` enum of the
 * profile schema, the format a destination's name implies, and the codecs are derived from these.
 */
import { createRequire } from 'node:module';

/** A format's codec: serialising a `data:` tree, parsing output back to check it. */
export interface FormatCodec {
  /** Label used in messages: `JSON`, `YAML`, … */
  label: string;
  serialize(data: unknown): string;
  /** Parse output back; throws OutputSyntaxError. */
  parse(text: string): unknown;
}

export interface FormatDefinition<Name extends string = string> {
  readonly name: Name;
  /** One line, for documentation. */
  readonly description: string;
  /** Endings of a destination's file name that imply this format (`.yaml`, `.yml`; `.env` also matches a file named `.env`). */
  readonly extensions: readonly string[];
  readonly capabilities: {
    /** Has structure: can serialise a `data:` tree, and feed `env: true` (text cannot). */
    readonly structured: boolean;
  };
  /**
   * The codec. Libraries (yaml, smol-toml, ini) are loaded here, on first use and synchronously
   * (rendering is synchronous), so importing a definition costs nothing.
   */
  create(): FormatCodec;
}

/** Load a format's library on first use (CommonJS `require`, synchronous). */
export const requireLibrary = createRequire(import.meta.url);
