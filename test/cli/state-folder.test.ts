/**
 * A state folder the machine will not let us write is a clean one-line error, never a stack trace
 * and never a hang: a read-only file system is exit 3 (the machine's state), a path that can never
 * be a folder (under /proc) exit 2 (the profile's choice).
 * And what `status` prints from a state file is escaped like any value from outside.
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
    for (const args of [
      ['up', '-p', file],
      ['render', '-p', file],
    ]) {
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

describe('status reads a state file written by someone else', () => {
  it('escapes what it holds: no escape sequence or newline from a state file reaches the terminal', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'stack.yaml'), 'name: esc\nruntime: process\nservices:\n  web: { command: [sleep, "1"] }\n');
    mkdirSync(path.join(dir, '.stack', 'esc'), { recursive: true });
    const hostile = '\u001b]0;owned\u0007boom\nweb      healthy  FAKE';
    const web = {
      name: 'web',
      kind: 'service',
      state: 'failed',
      started: false,
      health: 'none',
      restarts: 0,
      dependsOn: [],
      reason: hostile,
      stopSignal: 'SIGTERM',
      stopGracePeriodMs: 1000,
    };
    const state = {
      version: 1,
      stack: 'esc',
      owner: { pid: 999_999, startedAt: '2026-01-01T00:00:00Z' },
      phase: 'failed',
      updatedAt: '2026-01-01T00:00:00Z',
      profile: {},
      services: { web },
    };
    writeFileSync(path.join(dir, '.stack', 'esc', 'state.json'), JSON.stringify(state));
    const r = await runStack(['status'], { cwd: dir });
    expect(r.code).toBe(0);
    // eslint-disable-next-line no-control-regex -- asserts that no control character reaches the terminal
    expect(r.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
    expect(r.stdout).toContain('\\x1b]0;owned\\x07boom\\nweb');
    expect(r.stdout.split('\n').filter((l) => l.startsWith('web'))).toHaveLength(1);
  });
});
