import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** CLI tests run the built command; build it when a plain `npx vitest` finds no dist/. */
export default function setup(): void {
  const root = path.resolve(import.meta.dirname, '..');
  if (!existsSync(path.join(root, 'dist', 'cli', 'main.js'))) {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  }
}
