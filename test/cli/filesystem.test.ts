/**
 * A state folder the machine will not let us write is a clean one-line error, never a stack trace
 * and never a hang: a read-only file system is exit 3 (the machine's state), a path that can never
 * be a folder (under /proc) exit 2 (the profile's choice).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runStack } from '../helpers/cli.js';
import { tmpFiles } from '../helpers/tmp.js';

const mounted: string[] = [];
const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const dir of mounted) execFileSync('umount', [dir]);
  for (const cleanup of cleanups) cleanup();
});

function tempDir(): string {
  const t = tmpFiles();
  cleanups.push(t.cleanup);
  return t.dir;
}

function profileWithStateDir(stateDir: string): string {
  const dir = tempDir();
  const file = path.join(dir, 'stack.yaml');
  writeFileSync(
    file,
    `name: fs\nruntime: process\nstateDir: ${stateDir}\nservices:\n  web:\n    command: [sleep, "100"]\n    templates:\n      - destination: a.env\n        data: { A: "1" }\n`,
  );
  return file;
}

describe('a state folder that cannot be written', () => {
  it.skipIf(process.getuid?.() !== 0)('on a read-only file system: up and render exit 3 naming the folder, no stack trace', async () => {
    const ro = path.join(tempDir(), 'ro');
    mkdirSync(ro);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', ro]);
    mounted.push(ro);
    const file = profileWithStateDir(path.join(ro, 'state'));
    for (const args of [['up', '-p', file], ['render', '-p', file]]) {
      const r = await runStack(args, { timeoutMs: 20_000 });
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`${ro}/state: the file system is read-only (EROFS)`);
      expect(r.stderr).not.toMatch(/unexpected error|\n\s+at /);
    }
  });

  it('under /proc (Node’s recursive mkdir would spin forever): exit 2 at once', async () => {
    const file = profileWithStateDir('/proc/1/stack-test/state');
    const r = await runStack(['up', '-p', file], { timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot mkdir \/proc\/1\/stack-test/);
    expect(r.stderr).not.toMatch(/unexpected error|\n\s+at /);
  });
});
