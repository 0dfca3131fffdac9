import type * as SmolToml from 'smol-toml';
import { OutputSyntaxError } from '../errors.js';
import { requireLibrary, type FormatDefinition } from '../format.js';
import { checkTree, requireObject } from '../tree.js';

export const tomlFormat: FormatDefinition<'toml'> = {
  name: 'toml',
  description: 'TOML 1.0 (a mapping at the top; no nulls)',
  extensions: ['.toml'],
  capabilities: { structured: true },
  create: () => {
    const { parse: parseToml, stringify: stringifyToml, TomlError } = requireLibrary('smol-toml') as typeof SmolToml;
    return {
      label: 'TOML',
      serialize: (data) => {
        checkTree(data, [], false);
        return `${stringifyToml(requireObject(data, 'TOML'))}\n`;
      },
      parse: (text) => {
        try {
          return parseToml(text);
        } catch (err) {
          if (err instanceof TomlError) throw new OutputSyntaxError(err.message.split('\n')[0] ?? 'invalid TOML', err.line, err.column);
          throw new OutputSyntaxError((err as Error).message);
        }
      },
    };
  },
};
