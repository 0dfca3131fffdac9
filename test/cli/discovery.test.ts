import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runStack, STACK_BIN } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { tmpFiles } from '../helpers/tmp.js';

let cleanups: (() => void)[] = [];
afterEach(() => {
  cleanups.forEach((c) => c());
  cleanups = [];
});
function stackDir(profile = 'services:\n  a: { command: [a] }\n') {
  const t = tmpFiles({ 'stack.yaml': profile });
  cleanups.push(t.cleanup);
  return t.dir;
}

describe('stack discovery (file backend)', () => {
  it('register, ls, deregister, with --json', async () => {
    const cwd = stackDir();
    const reg = await runStack(
      ['discovery', 'register', 'pds', '--address', '127.0.0.1', '--port', '2583', '--url', 'http://127.0.0.1:2583', '--tag', 'atproto', '--json'],
      { cwd },
    );
    expect(reg.code, reg.stderr).toBe(0);
    expect(JSON.parse(reg.stdout)).toMatchObject({ service: 'pds', id: 'pds-manual', port: 2583 });
    const ls = await runStack(['discovery', 'ls', '--json'], { cwd });
    expect(JSON.parse(ls.stdout)).toEqual([expect.objectContaining({ service: 'pds', id: 'pds-manual', url: 'http://127.0.0.1:2583', tags: ['atproto'] })]);
    const table = await runStack(['discovery', 'ls', 'pds'], { cwd });
    expect(table.stdout).toMatch(/pds\s+pds-manual\s+127\.0\.0\.1:2583/);
    expect((await runStack(['discovery', 'deregister', 'pds', 'pds-manual'], { cwd })).code).toBe(0);
    expect(JSON.parse((await runStack(['discovery', 'ls', '--json'], { cwd })).stdout)).toEqual([]);
  });

  it('--dry-run registers nothing; bad names are invalid input', async () => {
    const cwd = stackDir();
    expect((await runStack(['discovery', 'register', 'pds', '--address', '127.0.0.1', '--dry-run'], { cwd })).stdout).toContain(
      'would register pds/pds-manual',
    );
    expect(JSON.parse((await runStack(['discovery', 'ls', '--json'], { cwd })).stdout)).toEqual([]);
    const bad = await runStack(['discovery', 'register', '../etc', '--address', '127.0.0.1'], { cwd });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("service '../etc'");
  });

  it('watch prints every topology change as it happens', async () => {
    const cwd = stackDir();
    const watcher = spawn(process.execPath, [STACK_BIN, 'discovery', 'watch', 'relay', '--json'], { cwd, env: { ...process.env, NO_COLOR: '1' } });
    cleanups.push(() => watcher.kill('SIGKILL'));
    const lists: { instances: { id: string }[] }[] = [];
    let buffer = '';
    const seen = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => (lists.length >= n ? resolve() : setTimeout(check, 20));
        check();
      });
    watcher.stdout.on('data', (d) => {
      buffer += d;
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) lists.push(JSON.parse(l));
    });
    await seen(1);
    expect(lists[0]?.instances).toEqual([]);
    await runStack(['discovery', 'register', 'relay', '--id', 'r1', '--address', '127.0.0.1', '--port', '2470'], { cwd });
    await seen(2);
    expect(lists[1]?.instances.map((i) => i.id)).toEqual(['r1']);
    await runStack(['discovery', 'deregister', 'relay', 'r1'], { cwd });
    await seen(3);
    expect(lists[2]?.instances).toEqual([]);
    const exited = new Promise<number | null>((resolve) => watcher.on('close', resolve));
    watcher.kill('SIGINT');
    expect(await exited).toBe(130);
  });

  it('test: reachable and writable, exit 0', async () => {
    const r = await runStack(['discovery', 'test'], { cwd: stackDir() });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('file: reachable and writable');
  });

  it('test: an unreachable backend is exit 3 with a clear message', async () => {
    const port = await freePort(); // nothing listens there
    const cwd = stackDir(`discovery:\n  backend: etcd\n  etcdEndpoints: [http://127.0.0.1:${port}]\nservices:\n  a: { command: [a] }\n`);
    const r = await runStack(['discovery', 'test', '--json'], { cwd, timeoutMs: 60_000 });
    expect(r.code).toBe(3);
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(false);
    expect(out.backends[0].error).toContain(`127.0.0.1:${port}`);
  });

  it('ls escapes what a record holds: no escape sequence, CR or newline reaches the terminal', async () => {
    const cwd = stackDir();
    const hostile = {
      id: 'evil-1',
      service: 'pds',
      address: '127.0.0.1\u001b]0;pwned\u0007\nfake-row  10.0.0.1',
      url: 'http://x\rSERVICE  OVERWRITTEN\u001b[2J',
      tags: ['a\u202eb', 'c\u009bd'],
      meta: {},
      registeredAt: new Date().toISOString(),
    };
    mkdirSync(path.join(cwd, '.stack/discovery/pds'), { recursive: true });
    writeFileSync(path.join(cwd, '.stack/discovery/pds/evil-1.json'), JSON.stringify(hostile));
    const ls = await runStack(['discovery', 'ls'], { cwd });
    expect(ls.code, ls.stderr).toBe(0);
    // eslint-disable-next-line no-control-regex
    expect(ls.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(ls.stdout.trimEnd().split('\n')).toHaveLength(2); // the header and one row
    expect(ls.stdout).toContain('127.0.0.1\\x1b]0;pwned\\x07\\nfake-row');
    expect(ls.stdout).toContain('http://x\\rSERVICE');
    // --json stays exact: JSON escapes it.
    const json = await runStack(['discovery', 'ls', '--json'], { cwd });
    expect(JSON.parse(json.stdout)[0].address).toBe(hostile.address);
  });

  it('an unreachable etcd endpoint with credentials: the password is in no message', async () => {
    const port = await freePort();
    const cwd = stackDir(
      `discovery:\n  backend: etcd\n  etcdEndpoints: ["http://alice:etcd-pa55word-9@127.0.0.1:${port}"]\nservices:\n  a: { command: [a] }\n`,
    );
    for (const args of [
      ['discovery', 'ls'],
      ['discovery', 'test'],
      ['discovery', 'test', '--json'],
    ]) {
      const r = await runStack(args, { cwd, timeoutMs: 60_000 });
      expect(r.code).toBe(3);
      expect(r.stdout + r.stderr).not.toContain('etcd-pa55word-9');
    }
  });
});
