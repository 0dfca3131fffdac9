/** The built-in profiles shipped in the package's `profiles/` folder. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: built-in profiles resolve their template paths against it. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILTIN_DIR = path.join(PACKAGE_ROOT, 'profiles');

export function builtinProfileNames(): string[] {
  if (!existsSync(BUILTIN_DIR)) return [];
  return readdirSync(BUILTIN_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

export function builtinProfileFile(name: string): string | undefined {
  const file = path.join(BUILTIN_DIR, `${name}.yaml`);
  return /^[a-z0-9-]+$/.test(name) && existsSync(file) ? file : undefined;
}

/** The `description:` line of a built-in, without parsing the whole file (keeps `profiles` instant). */
export function builtinDescription(name: string): string {
  const file = builtinProfileFile(name);
  if (!file) return '';
  const m = /^description:\s*(.+)$/m.exec(readFileSync(file, 'utf8'));
  return m?.[1]?.replace(/^["']|["']$/g, '').trim() ?? '';
}
