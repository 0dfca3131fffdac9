import { OutputSyntaxError } from '../errors.js';
import type { FormatDefinition } from '../format.js';
import { checkJsonDuplicates } from '../duplicates.js';
import { checkTree } from '../tree.js';

export const jsonFormat: FormatDefinition<'json'> = {
  name: 'json',
  description: 'JSON, two-space indented',
  extensions: ['.json'],
  capabilities: { structured: true },
  create: () => ({
    label: 'JSON',
    serialize: (data) => {
      checkTree(data, [], true);
      return `${JSON.stringify(data, null, 2)}\n`;
    },
    parse: (text) => {
      let value: unknown;
      try {
        value = JSON.parse(text) as unknown;
      } catch {
        // Node's message quotes a snippet of the input (maybe half a secret, which masking cannot
        // recognise): report only the kind of error, and find the position ourselves.
        const offset = jsonErrorOffset(text);
        const before = text.slice(0, offset);
        const line = before.split('\n').length;
        const kind = offset >= text.trimEnd().length ? 'unexpected end of input' : 'unexpected character';
        throw new OutputSyntaxError(kind, line, offset - before.lastIndexOf('\n'));
      }
      checkJsonDuplicates(text); // JSON.parse keeps the last of two equal keys
      return value;
    },
  }),
};

/**
 * Where JSON text stops being valid: the shortest prefix that fails with something other than
 * "unexpected end" (a prefix of valid JSON only ever runs out early). Binary search, O(log n) parses.
 */
function jsonErrorOffset(text: string): number {
  const broken = (n: number) => {
    try {
      JSON.parse(text.slice(0, n));
      return false;
    } catch (e) {
      const msg = (e as Error).message;
      if (/^Unexpected end of JSON input/.test(msg)) return false;
      const at = /at position (\d+)/.exec(msg);
      return !(at && Number(at[1]) >= n); // an error at the very end of the prefix: it just ran out
    }
  };
  let lo = 0;
  let hi = text.length; // the whole text is broken: the answer is at most its length
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (broken(mid + 1)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
