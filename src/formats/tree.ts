/** Checks shared by the codecs of structured formats. */
import { FormatError, type PathSegment } from './errors.js';

export const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reject values no format can hold faithfully (undefined, functions, NaN…), with their path. */
export function checkTree(v: unknown, at: PathSegment[], allowNull: boolean): void {
  if (v === null) {
    if (!allowNull) throw new FormatError('null has no form in this format', at);
    return;
  }
  if (typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new FormatError(`${v} is not a finite number`, at);
    return;
  }
  if (Array.isArray(v)) return v.forEach((x, i) => checkTree(x, [...at, i], allowNull));
  if (isPlainObject(v)) return Object.entries(v).forEach(([k, x]) => checkTree(x, [...at, k], allowNull));
  throw new FormatError(`a ${typeof v} value cannot be serialised`, at);
}

export function requireObject(data: unknown, label: string): Record<string, unknown> {
  if (!isPlainObject(data)) throw new FormatError(`${label} output needs a mapping of keys at the top of \`data\``);
  return data;
}
