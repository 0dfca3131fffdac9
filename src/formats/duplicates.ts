/**
 * Duplicate keys: the parsers of JSON (`JSON.parse`), YAML (`toJS`, where `123` and `"123"` are
 * one key) and INI (`ini`, which unquotes `"key"`) keep the last of two equal keys without a word —
 * exactly what a value injected into free text does to re-set a key the template set
 * (`{"admin": false, "name": "x", "admin": true, "name": "y"}`). So every format refuses them.
 */
import type * as Yaml from 'yaml';
import { requireLibrary } from './format.js';
import { OutputSyntaxError } from './errors.js';

/**
 * The first key set twice in one object of (valid) JSON text, with its position. Keys compare
 * decoded (`"w\u0065b"` is `"web"`).
 */
export function checkJsonDuplicates(text: string): void {
  const stack: (Set<string> | null)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') stack.push(new Set());
    else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
      const keys = stack[stack.length - 1];
      if (!keys) continue;
      let j = i + 1;
      while (j < text.length && /\s/.test(text[j]!)) j++;
      if (text[j] !== ':') continue; // a value, not a key
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      if (keys.has(key)) {
        const before = text.slice(0, start);
        throw new OutputSyntaxError(`key '${key}' is set twice in one object`, before.split('\n').length, start - before.lastIndexOf('\n'));
      }
      keys.add(key);
    }
  }
}

/** The first key of a YAML document whose JS form (a string) equals an earlier key's in the same mapping. */
export function checkYamlDuplicates(doc: Yaml.Document, lineOf: (offset: number) => { line: number; col: number }): void {
  const { isMap, isScalar, visit } = requireLibrary('yaml') as typeof Yaml; // loaded with the YAML codec, not before
  visit(doc, {
    Map(_, map) {
      if (!isMap(map)) return;
      const seen = new Set<string>();
      for (const pair of map.items) {
        const key = pair.key;
        const id = isScalar(key) ? String(key.value) : JSON.stringify(key ?? null);
        if (seen.has(id)) {
          const pos = isScalar(key) && key.range ? lineOf(key.range[0]) : undefined;
          throw new OutputSyntaxError(`key '${id}' is set twice in one mapping`, pos?.line, pos?.col);
        }
        seen.add(id);
      }
    },
  });
}
