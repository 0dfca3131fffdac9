import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * CLI, Docker and end-to-end tests run the built command. Build it once, here, before any test
 * worker starts — and only when a source is newer than the last build (scripts/test.sh has
 * usually just built). Tests never rebuild dist/ themselves: a rebuild while another worker
 * spawns `stack` would hand it half-written modules.
 */
export default function setup(): void {
  const root = path.resolve(import.meta.dirname, '..');
  const stamp = path.join(root, 'dist', '.build-stamp');
  const builtAt = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
  const stale = ['src', 'profiles', 'scripts'].some((dir) => newestMtime(path.join(root, dir)) > builtAt);
  if (stale) execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}
