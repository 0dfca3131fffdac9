import type * as Yaml from 'yaml';
import { OutputSyntaxError } from '../errors.js';
import { requireLibrary, type FormatDefinition } from '../format.js';
import { checkTree } from '../tree.js';

export const yamlFormat: FormatDefinition<'yaml'> = {
  name: 'yaml',
  description: 'YAML 1.2; long values never folded',
  extensions: ['.yaml', '.yml'],
  capabilities: { structured: true },
  create: () => {
    const { parseDocument, stringify: stringifyYaml } = requireLibrary('yaml') as typeof Yaml;
    return {
      label: 'YAML',
      serialize: (data) => {
        checkTree(data, [], true);
        // lineWidth 0: never fold long values (folding round-trips, but reads badly in a config file).
        return stringifyYaml(data, { lineWidth: 0 });
      },
      parse: (text) => {
        const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true });
        const err = doc.errors[0];
        if (err) throw new OutputSyntaxError(err.message.split('\n')[0] ?? 'invalid YAML', err.linePos?.[0].line, err.linePos?.[0].col);
        try {
          return doc.toJS({ maxAliasCount: 100 }) as unknown;
        } catch (e) {
          throw new OutputSyntaxError((e as Error).message);
        }
      },
    };
  },
};
