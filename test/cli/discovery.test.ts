import { spawn } from 'node:child_process';
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
    const reg = await runStack(['discovery', 'register', 'pds', '--address', '127.0.0.1', '--port', '2583', '--url', 'http://127.0.0.1:2583', '--tag', 'atproto', '--json'], { cwd });
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
    expect((await runStack(['discovery', 'register', 'pds', '--address', '127.0.0.1', '--dry-run'], { cwd })).stdout).toContain('would register pds/pds-manual');
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
});
