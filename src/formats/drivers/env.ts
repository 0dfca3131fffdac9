import { EnvSyntaxError, parseEnv, stringifyEnv } from '../env.js';
import { FormatError, OutputSyntaxError } from '../errors.js';
import type { FormatDefinition } from '../format.js';
import { checkTree, requireObject } from '../tree.js';

export const envFormat: FormatDefinition<'env'> = {
  name: 'env',
  description: 'KEY=value lines (dotenv conventions), quoted so no value can add a key',
  extensions: ['.env'],
  capabilities: { structured: true },
  create: () => ({
    label: 'ENV',
    serialize: (data) => {
      const obj = requireObject(data, 'ENV');
      const flat: Record<string, string> = {};
      for (const [k, v] of Object.entries(obj)) {
        if (v === null || typeof v === 'object') throw new FormatError('ENV values must be strings, numbers or booleans', [k]);
        checkTree(v, [k], false); // no functions, undefined or NaN written out as text
        flat[k] = String(v);
      }
      try {
        return stringifyEnv(flat);
      } catch (err) {
        const key = Object.keys(flat).find((k) => (err as Error).message.includes(`'${k}'`));
        throw new FormatError((err as Error).message, key !== undefined ? [key] : []);
      }
    },
    parse: (text) => {
      try {
        return parseEnv(text);
      } catch (err) {
        if (err instanceof EnvSyntaxError) throw new OutputSyntaxError(err.message, err.line, err.column);
        throw err;
      }
    },
  }),
};
