/**
 * Output formats: serialising a rendered `data:` tree (escaping by construction: a value is always
 * one value), and parsing free-text output back before it is written.
 *
 * One small codec per format, like unstorage's drivers, each defined in its own `drivers/<name>.ts`
 * and listed in `registry.ts`: `serialize` for structured templates, `parse` to check free text
 * (and to read `env: true` files into an environment).
 */
import { FormatError } from './errors.js';
import type { FormatCodec } from './format.js';
import { codecFor, FORMAT_NAMES, formatDefinition, type TemplateFormat } from './registry.js';
import { isPlainObject } from './tree.js';

export { FormatError, OutputSyntaxError, type PathSegment } from './errors.js';
export type { FormatCodec, FormatDefinition } from './format.js';
export { codecFor, FORMATS, FORMAT_NAMES, formatDefinition, formatFromDestination, type TemplateFormat } from './registry.js';

/** Every format's codec by name; each is created (its library loaded) when first read. */
export const CODECS: Readonly<Record<TemplateFormat, FormatCodec>> = Object.defineProperties(
  {} as Record<TemplateFormat, FormatCodec>,
  Object.fromEntries(FORMAT_NAMES.map((name) => [name, { enumerable: true, get: () => codecFor(name) }])),
);

/**
 * What an `env: true` file gives the service's environment: an ENV file's variables, or the
 * top-level scalars of a structured file.
 */
export function environmentOf(format: TemplateFormat, content: string): Record<string, string> {
  if (!formatDefinition(format).capabilities.structured) {
    const structured = FORMAT_NAMES.filter((f) => formatDefinition(f).capabilities.structured);
    throw new FormatError(`\`env: true\` needs a structured format (${structured.join(', ')}), not ${format}`);
  }
  const value = codecFor(format).parse(content);
  const out: Record<string, string> = {};
  if (!isPlainObject(value)) return out;
  for (const [k, v] of Object.entries(value)) {
    if (v === null || typeof v === 'object') continue;
    out[k] = String(v);
  }
  return out;
}
