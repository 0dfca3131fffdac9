import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, lstat, mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { StackFailedError } from '../errors.js';

export interface AtomicWriteOptions {
  /**
   * A folder the file must stay inside without following a symlink: every folder from below
   * `within` down to the file's own is created if missing, and must be a real folder, not a
   * symlink (a planted `config -> /etc` would otherwise receive the file). The state folder itself
   * may be a symlink the user made.
   */
  within?: string;
}

/**
 * `mkdir -p`, one level at a time. Node's `mkdir(…, { recursive: true })` retries forever on some
 * paths that can never be made (under /proc, seen with strace); this fails with the first error.
 */
export async function makeDirs(dir: string): Promise<void> {
  const target = path.resolve(dir);
  const missing: string[] = [];
  for (let current = target; ; current = path.dirname(current)) {
    try {
      if ((await stat(current)).isDirectory()) break;
      throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${target}'`), { code: 'ENOTDIR', syscall: 'mkdir', path: current });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(current) === current) throw err;
      missing.push(current);
    }
  }
  for (const folder of missing.reverse()) {
    try {
      await mkdir(folder);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/**
 * Write a file atomically: a temp file in the same folder, then rename over the target.
 * Readers see the old content or the new one, never half a file. `mode` applies before the
 * rename, so a secret file is never readable by others, even for a moment. The rename replaces
 * a symlink at the target itself; it never writes through it.
 */
export async function atomicWrite(file: string, data: string | Uint8Array, mode = 0o644, opts: AtomicWriteOptions = {}): Promise<void> {
  const dir = path.dirname(file);
  if (opts.within !== undefined) await ensureRealDir(opts.within, dir);
  else await makeDirs(dir);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    // O_EXCL and O_NOFOLLOW: never through something planted at the temp name.
    const fh = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, mode);
    try {
      await fh.writeFile(data);
    } finally {
      await fh.close();
    }
    await chmod(tmp, mode); // umask may have narrowed or widened it
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Make sure `dir` exists as real folders below `root`: each missing folder is created, and none
 * from below `root` down to `dir` may be a symlink or anything but a folder (`symlink_refused`).
 * `root` itself is created if missing and may be a symlink (the user chose it).
 */
export async function ensureRealDir(root: string, dir: string): Promise<void> {
  const base = path.resolve(root);
  const target = path.resolve(dir);
  const rel = path.relative(base, target);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new StackFailedError(`${target} is outside ${base}`, { code: 'path_outside_state' });
  }
  await makeDirs(base);
  let current = base;
  for (const part of rel.split(path.sep).filter(Boolean)) {
    current = path.join(current, part);
    try {
      await mkdir(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = await lstat(current);
    if (st.isSymbolicLink()) throw symlinkRefused(current);
    if (!st.isDirectory()) throw new StackFailedError(`${current} is not a folder`, { code: 'not_a_folder' });
  }
}

/**
 * Open a file below `root` without following a symlink at any level below `root`: the folders
 * are checked (`ensureRealDir`), the file itself is opened with O_NOFOLLOW. `flags` are
 * `fs.constants` O_* flags. A symlink anywhere fails with `symlink_refused`.
 */
export async function openNoFollow(root: string, file: string, flags: number, mode = 0o600): Promise<FileHandle> {
  await ensureRealDir(root, path.dirname(file));
  try {
    return await open(file, flags | fsConstants.O_NOFOLLOW, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw symlinkRefused(file);
    throw err;
  }
}

function symlinkRefused(at: string): StackFailedError {
  return new StackFailedError(`${at} is a symlink; refusing to follow it out of the state folder (remove it)`, { code: 'symlink_refused', path: at });
}
