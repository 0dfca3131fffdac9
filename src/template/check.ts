/**
 * `stack render --check`: compare what would be rendered with the files already in the output
 * folder (content, mode, missing and extra files), like `terraform fmt -check`, and explain each
 * difference with a unified diff in which no secret can appear.
 *
 * Known secret values are masked on both sides. A file that holds a secret may also hold an *old*
 * secret we no longer know (a rotated one), so in such files a line that exists only on the old
 * side is shown with its value masked (`KEY=••••`).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { MASK } from './secrets.js';
import type { RenderedConfig } from './types.js';
import { outputPath } from './write.js';

export interface ConfigDifference {
  service: string;
  /** Path relative to the service's folder. */
  destination: string;
  /** Absolute path in the output folder. */
  path: string;
  status: 'changed' | 'missing' | 'extra' | 'mode';
  /** Unified diff (changed, missing), secrets masked. */
  patch?: string;
  expectedMode?: number;
  actualMode?: number;
}

export interface CheckOptions {
  /** Services whose folders are compared (extra files are looked for in these only). */
  services: readonly string[];
  /** Masks known secret values (TemplateContext.redact). */
  redact: (text: string) => string;
  /**
   * Secret values made up for this check because none were stored (a CI checkout has the
   * rendered files but not `secrets.json`): a line that differs only where such a value stands
   * counts as equal, since the real value cannot be known here.
   */
  unknownSecrets?: readonly string[];
}

export async function checkRenderedConfigs(files: readonly RenderedConfig[], outDir: string, opts: CheckOptions): Promise<ConfigDifference[]> {
  const out: ConfigDifference[] = [];
  const expected = new Set<string>();
  for (const file of files) {
    const target = outputPath(outDir, file);
    expected.add(target);
    const label = path.posix.join(file.service, file.destination.replace(/\\/g, '/'));
    const base = { service: file.service, destination: file.destination, path: target };
    let old: string;
    let mode: number;
    try {
      [old, mode] = await Promise.all([readFile(target, 'utf8'), stat(target).then((s) => s.mode & 0o777)]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      out.push({ ...base, status: 'missing', patch: createTwoFilesPatch(`a/${label}`, `b/${label}`, '', file.masked, '', '') });
      continue;
    }
    if (opts.unknownSecrets?.length) old = adoptUnknownSecrets(old, file.content, opts.unknownSecrets);
    if (old !== file.content) {
      const secretish = file.secret || (mode & 0o077) === 0;
      out.push({ ...base, status: 'changed', patch: maskedPatch(label, old, file, secretish, opts.redact) });
    }
    if (mode !== file.mode) out.push({ ...base, status: 'mode', expectedMode: file.mode, actualMode: mode });
  }
  for (const service of opts.services) {
    const dir = path.join(path.resolve(outDir), service);
    for (const found of await listFiles(dir)) {
      if (!expected.has(found)) out.push({ service, destination: path.relative(dir, found), path: found, status: 'extra' });
    }
  }
  return out;
}

function maskedPatch(label: string, old: string, file: RenderedConfig, secretish: boolean, redact: (t: string) => string): string {
  const now = redact(file.content);
  let before = redact(old);
  if (secretish) {
    const kept = new Set(now.split('\n'));
    const keys = new Set([...kept].map(lineKey).filter((k): k is string => k !== undefined));
    before = before
      .split('\n')
      .map((line) => (kept.has(line) ? line : maskLineValue(line, keys)))
      .join('\n');
  }
  const patch = createTwoFilesPatch(`a/${label}`, `b/${label}`, before, now, '', '');
  if (before === now) return `${patch}(the difference is in secret values, which are not shown)\n`;
  return patch;
}

/**
 * Where a line of the new content holds a made-up secret and the old line matches it with any value
 * in those places, take the new line: the difference is only the secret nobody here knows.
 */
function adoptUnknownSecrets(old: string, now: string, secrets: readonly string[]): string {
  const oldLines = old.split('\n');
  const newLines = now.split('\n');
  if (oldLines.length !== newLines.length) return old;
  const escape = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return oldLines
    .map((line, i) => {
      const target = newLines[i]!;
      const present = secrets.filter((v) => v.length > 0 && target.includes(v));
      if (line === target || present.length === 0) return line;
      let pattern = escape(target);
      for (const v of present) pattern = pattern.split(escape(v)).join('.+?');
      return new RegExp(`^${pattern}$`).test(line) ? target : line;
    })
    .join('\n');
}

const KEY_PREFIX = /^(\s*[^\s=:#;[\]]+\s*[=:]\s*)\S/;

/** The `KEY=` / `key: ` / `key = ` a line starts with, if any. */
function lineKey(line: string): string | undefined {
  return KEY_PREFIX.exec(line)?.[1]?.trim();
}

/**
 * `KEY=value` / `key: value` / `key = value` → the key with a masked value, when the new file has
 * that key too (so a line of an old PEM key such as `MIIBab==` is not taken for `MIIBab=` and a
 * value); any other line masked whole, its indentation kept.
 */
function maskLineValue(line: string, keys: ReadonlySet<string>): string {
  if (line.trim() === '') return line;
  const m = KEY_PREFIX.exec(line);
  if (m && keys.has(m[1]!.trim())) return `${m[1]}${MASK}`;
  return `${/^\s*/.exec(line)![0]}${MASK}`;
}

async function listFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
  const out: string[] = [];
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(full)));
    else out.push(full);
  }
  return out.sort();
}
