import type * as Yaml from 'yaml';
import { OutputSyntaxError } from '../errors.js';
import { requireLibrary, type FormatDefinition } from '../format.js';
import { checkYamlDuplicates } from '../duplicates.js';
import { checkTree } from '../tree.js';

export const yamlFormat: FormatDefinition<'yaml'> = {
  name: 'yaml',
  description: 'YAML 1.2; long values never folded',
  extensions: ['.yaml', '.yml'],
  capabilities: { structured: true },
  create: () => {
    const { Document, LineCounter, parseDocument, visit } = requireLibrary('yaml') as typeof Yaml;
    /**
     * NEL, LS and PS (U+0085, U+2028, U+2029) are line breaks to YAML 1.1 readers (PyYAML, many
     * others) and text to YAML 1.2: written raw, a value's `#…` becomes a comment there, or the rest
     * of the line something else. Strings holding them are double-quoted, where the escapes `\N`,
     * `\L` and `\P` stand for them in every YAML version.
     */
    const withoutOddBreaks = (data: unknown, options: { lineWidth: number }): string => {
      const doc = new Document(data);
      if (!holdsOddBreak(data)) return doc.toString(options); // the common case: no walk over the document
      let found = false;
      visit(doc, {
        Scalar(_, node) {
          if (typeof node.value === 'string' && ODD_BREAK.test(node.value)) {
            node.type = 'QUOTE_DOUBLE';
            found = true;
          }
        },
      });
      const text = doc.toString(options);
      return found
        ? text
            .replace(/\u0085/g, '\\N')
            .replace(/\u2028/g, '\\L')
            .replace(/\u2029/g, '\\P')
        : text;
    };
    return {
      label: 'YAML',
      serialize: (data) => {
        checkTree(data, [], true);
        // lineWidth 0: never fold long values (folding round-trips, but reads badly in a config file).
        return withoutOddBreaks(data, { lineWidth: 0 });
      },
      parse: (text) => {
        const lineCounter = new LineCounter();
        const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true, lineCounter });
        const err = doc.errors[0];
        if (err) throw new OutputSyntaxError(err.message.split('\n')[0] ?? 'invalid YAML', err.linePos?.[0].line, err.linePos?.[0].col);
        checkYamlDuplicates(doc, (offset) => lineCounter.linePos(offset)); // `123` and `"123"` are one key in toJS
        // A lone CR is a line break to some readers (PyYAML) and text to others: where they disagree, a
        // value can start a key only one of them sees. Our writer escapes it (`\r`).
        const cr = /\r(?!\n)/.exec(text);
        if (cr) {
          const pos = lineCounter.linePos(cr.index);
          throw new OutputSyntaxError('a carriage return inside a line (some YAML readers take it as a line break)', pos.line, pos.col);
        }
        try {
          return doc.toJS({ maxAliasCount: 100 }) as unknown;
        } catch (e) {
          throw new OutputSyntaxError((e as Error).message);
        }
      },
    };
  },
};

const ODD_BREAK = /[\u0085\u2028\u2029]/;
const holdsOddBreak = (v: unknown): boolean =>
  typeof v === 'string' ? ODD_BREAK.test(v) : typeof v === 'object' && v !== null && Object.entries(v).some(([k, x]) => ODD_BREAK.test(k) || holdsOddBreak(x));
