import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';

/**
 * Write a file atomically: a temp file in the same folder, then rename over the target.
 * Readers see the old content or the new one, never half a file. `mode` applies before the
 * rename, so a secret file is never readable by others, even for a moment.
 */
export async function atomicWrite(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, data, { mode });
    await chmod(tmp, mode); // umask may have narrowed or widened it
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
