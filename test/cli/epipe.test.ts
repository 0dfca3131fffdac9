/**
 * Output errors never stop the work: `stack down | head -1` and `stack plan | head -1` through a
 * real pipe whose reader leaves after the first line (EPIPE on every later write). `down` must
 * still stop every service and exit with its own code; nothing may crash with a stack trace.
 */
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { clean, createOutput } from '../../src/cli/output.js';
import { addKnownSecrets } from '../../src/util/redact.js';
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
    const events = up.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
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

  it('`stack logs -f | head -1` ends once the reader has gone, instead of following for nobody', async () => {
    const { dir, pids } = await stackFolder({
      chatty: { command: ['sh', '-c', 'while :; do echo tick; sleep 0.05; done'], stopGracePeriod: '1s' },
    });
    const up = await runStack(['up', '--detach', '--json'], dir);
    expect(up.code, up.stderr).toBe(0);
    pids.push(supervisorPid(up.stdout)!);
    const logs = await throughHead(['logs', '-f', 'chatty'], dir); // would never return if it kept following
    expect(logs.stdout.trim()).toBe('tick');
    expect(logs.stderr).not.toMatch(/EPIPE|Error:|at .*\.js:\d+/);
    expect(logs.code).toBe(0);
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

describe('createOutput', () => {
  /** A stream that fails every write with EPIPE, as a pipe whose reader left does. */
  function brokenPipe(): { stream: NodeJS.WriteStream; writes: string[] } {
    const writes: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        writes.push(chunk.toString());
        done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    return { stream: stream as unknown as NodeJS.WriteStream, writes };
  }

  it('an EPIPE on stdout stops writes there and nothing else; stderr still works', async () => {
    const out = brokenPipe();
    const errs: string[] = [];
    const err = new Writable({ write: (c: Buffer, _e, done) => (errs.push(c.toString()), done()) }) as unknown as NodeJS.WriteStream;
    const o = createOutput(out.stream, err);
    o.out('first');
    await new Promise((r) => setImmediate(r));
    o.out('second');
    o.json({ a: 1 });
    o.err('still reported');
    expect(out.writes).toEqual(['first\n']);
    expect(errs).toEqual(['still reported\n']);
  });

  it('masks known secrets in lines and JSON, and clean() escapes what came from outside', () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, done) => (lines.push(c.toString()), done()) }) as unknown as NodeJS.WriteStream;
    addKnownSecrets(['known-secret-value-42\nsecond-line-of-it']);
    const o = createOutput(sink, sink);
    o.out('a known-secret-value-42 b');
    o.json({ v: 'second-line-of-it', url: 'postgres://u:pw-in-url-1@h/db' });
    expect(lines.join('')).not.toMatch(/known-secret-value-42|second-line-of-it|pw-in-url-1/);
    expect(clean('a\u001b]0;t\u0007\nb\r\u202ec')).toBe('a\\x1b]0;t\\x07\\nb\\r\\u202ec');
  });
});
