/**
 * Every template output format, one line each. The profile schema's `format:` enum, the format a
 * destination's file name implies, and the codecs are derived from this list: adding a format is
 * one file, `drivers/<name>.ts` (copy `drivers/toml.ts`), one line here, and one line in
 * `test/template/format-registry.test.ts` running the shared format cases (`format.case.ts`).
 */
import path from 'node:path';
import { envFormat } from './drivers/env.js';
import type { FormatCodec, FormatDefinition } from './format.js';
import { iniFormat } from './drivers/ini.js';
import { jsonFormat } from './drivers/json.js';
import { textFormat } from './drivers/text.js';
import { tomlFormat } from './drivers/toml.js';
import { yamlFormat } from './drivers/yaml.js';

export const FORMATS = [jsonFormat, yamlFormat, tomlFormat, envFormat, iniFormat, textFormat] as const;

export type TemplateFormat = (typeof FORMATS)[number]['name'];
export const FORMAT_NAMES = FORMATS.map((f) => f.name) as readonly TemplateFormat[] as readonly [TemplateFormat, ...TemplateFormat[]];
/** The format of a destination no definition claims: free text. */
export const FALLBACK_FORMAT: TemplateFormat = 'text';

export function formatDefinition(name: TemplateFormat): FormatDefinition<TemplateFormat> {
  const found = FORMATS.find((f) => f.name === name);
  if (!found) throw new Error(`unknown output format '${String(name)}'`);
  return found;
}

/** The format a destination's file name implies (`config.yml` → yaml, `.env` → env), else text. */
export function formatFromDestination(destination: string): TemplateFormat {
  const base = path.basename(destination).toLowerCase();
  return FORMATS.find((f) => f.extensions.some((ext) => base.endsWith(ext)))?.name ?? FALLBACK_FORMAT;
}

const codecs = new Map<TemplateFormat, FormatCodec>();

/** A format's codec, created (its library loaded) on first use. */
export function codecFor(name: TemplateFormat): FormatCodec {
  let codec = codecs.get(name);
  if (!codec) {
    codec = formatDefinition(name).create();
    codecs.set(name, codec);
  }
  return codec;
}
