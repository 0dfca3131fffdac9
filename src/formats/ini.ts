/**
 * INI writer, read back by the `ini` package (and line-oriented INI readers): one `key=value` per
 * line, sections as `[name]` (nested objects as `[parent.child]`, which `ini` reads back as nesting),
 * arrays as repeated `key[]=value`.
 *
 * A value of only safe characters is written bare; any other is a one-line JSON string, which `ini`
 * reads back with JSON.parse — so `=`, `;`, `#`, `[`, quotes, newlines and even U+2028 (which the
 * `ini` reader's line pattern would otherwise drop, key and all) stay inside one value.
 * Keys and section names come from the profile and are checked, not escaped.
 */
import { FormatError, type PathSegment } from './errors.js';

const BARE_SAFE = /^[A-Za-z0-9_./:@%+,-]+$/;
const KEY_UNSAFE = /[=[\]\r\n;#"'\\\u2028\u2029]/;

export function iniValue(value: string | number | boolean): string {
  const text = String(value);
  if (BARE_SAFE.test(text)) return text;
  return JSON.stringify(text)
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function checkKey(key: string, at: PathSegment[], section: boolean): void {
  if (key === '' || key !== key.trim() || KEY_UNSAFE.test(key) || key === '__proto__' || (section && key.includes('.'))) {
    throw new FormatError(`'${key}' cannot be an INI ${section ? 'section name' : 'key'}`, [...at, key]);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function stringifyIni(data: Record<string, unknown>): string {
  const out: string[] = [];
  const section = (obj: Record<string, unknown>, at: string[]) => {
    const lines: string[] = [];
    const children: [string, Record<string, unknown>][] = [];
    for (const [key, v] of Object.entries(obj)) {
      if (isObject(v)) {
        checkKey(key, at, true);
        children.push([key, v]);
        continue;
      }
      checkKey(key, at, false);
      if (Array.isArray(v)) {
        v.forEach((item, i) => {
          if (item === null || typeof item === 'object') throw new FormatError('INI arrays hold only strings, numbers or booleans', [...at, key, i]);
          lines.push(`${key}[]=${iniValue(item as string)}`);
        });
      } else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
        lines.push(`${key}=${iniValue(v)}`);
      } else {
        throw new FormatError('INI values must be strings, numbers or booleans', [...at, key]);
      }
    }
    if (lines.length > 0) {
      if (at.length > 0) out.push(`${out.length > 0 ? '\n' : ''}[${at.join('.')}]`);
      out.push(...lines);
    }
    for (const [key, child] of children) section(child, [...at, key]);
  };
  section(data, []);
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}
