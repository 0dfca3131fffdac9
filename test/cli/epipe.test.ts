/**
 * Output errors never stop the work: `stack down | head -1` and `stack plan | head -1` through a
 * real pipe whose reader leaves after the first line (EPIPE on every later write). `down` must
 * still stop every service and exit with its own code; nothing may crash with a stack trace.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { survivors, tempDir } from '../engine/helpers.js';
import { freePort } from '../helpers/net.js';
import { runStack, stackBin, supervisorPid, useStackFolders, webService } from './helpers.js';

const { stackFolder } = useStackFolders({ prefix: 'stack-epipe-', name: 'epipe-test', dependencyTimeout: '60s' });

/** `stack ARGS | head -1` in bash: the first line, what stack wrote to stderr, and stack's own exit code. */
function throughHead(args: string[], cwd: string): Promise<{ stdout: string; stderr: string; code: number }> {
  const quoted = [process.execPath, stackBin, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `${quoted} | head -1; echo "stack-exit=\${PIPESTATUS[0]}" >&2`], { cwd, env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const m = /stack-exit=(\d+)/.exec(stderr);
      resolve({ stdout, stderr: stderr.replace(/stack-exit=\d+\n?/, ''), code: m ? Number(m[1]) : -1 });
    });
  });
}

describe('a closed output pipe', () => {
  it('`stack down | head -1` still stops every service and exits 0', async () => {
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const { dir, pids } = await stackFolder({
      a: webService(pa),
      b: webService(pb, {}, { dependencies: ['a'] }),
      c: webService(pc, {}, { dependencies: ['b'] }),
    });
    const up = await runStack(['up', '--detach', '--json'], dir);
    expect(up.code, up.stderr).toBe(0);
    const events = up.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    pids.push(...new Set(events.flatMap((e) => (typeof e.pid === 'number' ? [e.pid] : []))), supervisorPid(up.stdout)!);
    expect(survivors(pids)).toHaveLength(4);

    const down = await throughHead(['down'], dir);
    expect(down.stdout.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).not.toMatch(/EPIPE|Error:|at .*\.js:\d+/);
    expect(down.code).toBe(0);
    expect(survivors(pids)).toEqual([]);
    const status = await runStack(['status', '--json'], dir);
    const view = JSON.parse(status.stdout) as { services: { running: boolean }[] };
    expect(view.services.filter((s) => s.running)).toEqual([]);
  });

  it('`stack plan | head -1` prints its first line and exits 0 without a crash', async () => {
    const { dir, cleanup } = await tempDir('stack-epipe-');
    // Far more than a pipe buffer (64 KiB) of plan text, so later writes meet the closed pipe.
    const services = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`svc${i}`, { command: ['true'] }]));
    await writeFile(path.join(dir, 'stack.json'), JSON.stringify({ name: 'big', runtime: 'process', services }));
    try {
      const plan = await throughHead(['plan'], dir);
      expect(plan.stdout).toMatch(/^Plan for stack 'big'/);
      expect(plan.stdout.trim().split('\n')).toHaveLength(1);
      expect(plan.stderr).not.toMatch(/EPIPE|Error:|at .*\.js:\d+/);
      expect(plan.code).toBe(0);
    } finally {
      await cleanup();
    }
  });
});
