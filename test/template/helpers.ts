/** Fixtures for template tests: a profile written to a fresh folder, loaded as `stack` would load it. */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import { loadProfile } from '../../src/profile/load.js';
import type { Profile } from '../../src/profile/types.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

export function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'stack-template-'));
  dirs.push(dir);
  return dir;
}

/** Write `stack.yaml` and any other files into a fresh folder and load the profile from there. */
export function profileIn(yaml: string, files: Record<string, string> = {}): { dir: string; profile: Profile } {
  const dir = tempDir();
  writeFiles(dir, { 'stack.yaml': yaml, ...files });
  return { dir, profile: loadProfile(path.join(dir, 'stack.yaml'), { cwd: dir, env: {} }) };
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
}
