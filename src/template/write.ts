/**
 * Writing rendered configs: atomic (temp file + rename, src/util/fs.ts), mode 0600 for files that
 * hold a secret, and never outside the folder they belong to.
 */
import path from 'node:path';
import { StackError } from '../errors.js';
import { atomicWrite } from '../util/fs.js';
import type { RenderedConfig } from './types.js';

export interface WrittenConfig {
  service: string;
  destination: string;
  /** Absolute path written. */
  path: string;
  mode: number;
  bytes: number;
  secret: boolean;
}

/** `<dir>/<destination>`, refusing a destination that would leave `dir` (the profile rules reject those too). */
export function pathInside(dir: string, destination: string): string {
  const root = path.resolve(dir);
  const target = path.resolve(root, destination);
  const rel = path.relative(root, target);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new StackError(`config destination '${destination}' is outside its folder ${root}`, { code: 'invalid_destination', exitCode: 2 });
  }
  return target;
}

/**
 * Write `<dir>/<destination>`. No folder between `root` (default `dir`) and the file may be a
 * symlink: a planted `config/<service> -> /etc` must not receive a rendered secret.
 */
export async function writeFileInside(dir: string, destination: string, content: string, mode: number, root = dir): Promise<string> {
  const target = pathInside(dir, destination);
  await atomicWrite(target, content, mode, { within: root });
  return target;
}

/** Where a rendered file goes under an output folder: `<outDir>/<service>/<destination>`. */
export function outputPath(outDir: string, file: Pick<RenderedConfig, 'service' | 'destination'>): string {
  return pathInside(path.join(path.resolve(outDir), file.service), file.destination);
}

/** Write rendered files under `<outDir>/<service>/<destination>`; every path is checked before the first write. */
export async function writeRenderedConfigs(files: readonly RenderedConfig[], outDir: string): Promise<WrittenConfig[]> {
  const planned = files.map((f) => ({ file: f, target: outputPath(outDir, f) }));
  const written: WrittenConfig[] = [];
  for (const { file, target } of planned) {
    await atomicWrite(target, file.content, file.mode, { within: outDir });
    written.push({
      service: file.service,
      destination: file.destination,
      path: target,
      mode: file.mode,
      bytes: Buffer.byteLength(file.content),
      secret: file.secret,
    });
  }
  return written;
}
