import type * as Ini from 'ini';
import { requireLibrary, type FormatDefinition } from '../format.js';
import { checkIni } from '../ini-check.js';
import { stringifyIni } from '../ini.js';
import { checkTree, requireObject } from '../tree.js';

export const iniFormat: FormatDefinition<'ini'> = {
  name: 'ini',
  description: 'INI sections and keys, read back by the ini package',
  extensions: ['.ini'],
  capabilities: { structured: true },
  create: () => {
    const ini = requireLibrary('ini') as typeof Ini;
    return {
      label: 'INI',
      serialize: (data) => {
        const obj = requireObject(data, 'INI');
        checkTree(obj, [], false);
        return stringifyIni(obj);
      },
      parse: (text) => {
        checkIni(text);
        return ini.parse(text);
      },
    };
  },
};
