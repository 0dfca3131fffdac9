/**
 * How each output format spells a string value, for masking secrets in printed text
 * (src/util/redact.ts): the value is written by the format's own serialiser, in each style it may
 * choose (YAML plain, quoted, block scalar; TOML basic string; ENV bare, single or double quotes;
 * INI bare or JSON-quoted), and what stands for the value is taken out of the document.
 */
import type * as Toml from 'smol-toml';
import type * as Yaml from 'yaml';
import { requireLibrary } from './format.js';
import type { Speller } from '../util/redact.js';
import { escapeEnvDoubleQuoted, quoteEnvValue } from './env.js';
import { iniValue } from './ini.js';

const unquote = (s: string) => (/^(["']).*\1$/s.test(s) ? s.slice(1, -1) : s);

function yamlSpellings(value: string): string[] {
  const { stringify: stringifyYaml } = requireLibrary('yaml') as typeof Yaml; // loaded on first use, as by the codecs
  const out: string[] = [];
  for (const defaultStringType of ['PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE', 'BLOCK_LITERAL'] as const) {
    // As a mapping value, under a key (the serialiser picks its style per value, so each is asked for).
    const text = stringifyYaml({ k: value }, { lineWidth: 0, defaultStringType }).replace(/\n$/, '');
    const spelled = unquote(text.replace(/^k: ?/, '').replace(/^[|>][-+0-9]*\n/, ''));
    out.push(spelled);
    // As our YAML writer escapes NEL, LS and PS (drivers/yaml.ts).
    if (/[\u0085\u2028\u2029]/.test(spelled))
      out.push(
        spelled
          .replace(/\u0085/g, '\\N')
          .replace(/\u2028/g, '\\L')
          .replace(/\u2029/g, '\\P'),
      );
  }
  return out;
}

function tomlSpelling(value: string): string[] {
  const { stringify: stringifyToml } = requireLibrary('smol-toml') as typeof Toml;
  return [unquote(stringifyToml({ k: value }).replace(/^k = /, '').trim())];
}

export const FORMAT_SPELLERS: readonly Speller[] = [
  yamlSpellings,
  tomlSpelling,
  (v) => [unquote(iniValue(v))],
  (v) => [unquote(quoteEnvValue(v)), escapeEnvDoubleQuoted(v)],
];
