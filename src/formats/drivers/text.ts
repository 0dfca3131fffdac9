import { FormatError } from '../errors.js';
import type { FormatDefinition } from '../format.js';

/** Free text with no structure to check (Caddyfile, nginx.conf): the fallback for unknown extensions. */
export const textFormat: FormatDefinition<'text'> = {
  name: 'text',
  description: 'Free text with no structure to check (Caddyfile, nginx.conf)',
  extensions: [],
  capabilities: { structured: false },
  create: () => ({
    label: 'text',
    serialize: (data) => {
      if (typeof data !== 'string') throw new FormatError('`text` output needs a template string, not a `data` tree');
      return data;
    },
    parse: (t) => t,
  }),
};
