/**
 * The commands around the page, without a browser: `stack up --ui` serves it while it runs (and
 * its stop action ends that run), `stack ui` next to a foreground `stack up` streams that engine's
 * events live (through its control channel), and bad flags are usage errors.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../helpers/net.js';
import { runStack, StackProcess, useStackFolders, webService } from '../cli/helpers.js';

const { stackFolder, cleanups } = useStackFolders({ prefix: 'stack-ui-cli-', name: 'ui-cli', dependencyTimeout: '30s' });

function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; until?: (body: string) => boolean; forMs?: number } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      let body = '';
      const timer = setTimeout(() => res.destroy(), opts.forMs ?? 10_000);
      const done = () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body });
      };
      res.on('data', (d: Buffer) => {
        body += d.toString();
        if (opts.until?.(body)) res.destroy();
      });
      res.on('end', done);
      res.on('close', done);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function addressIn(text: string): URL | undefined {
  const m = /http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]+/.exec(text);
  return m ? new URL(m[0]) : undefined;
}

describe('stack up --ui', () => {
  it('serves the page while it runs, on stderr with --json; the stop action ends the run', async () => {
    const { dir, pids } = await stackFolder({ app: webService(await freePort()) });
    const up = new StackProcess(['up', '--ui', '--json'], dir);
    cleanups.push(async () => {
      up.child.kill('SIGINT');
      await up.exited;
    });
    const url = await waitFor(() => addressIn(up.stderr), 20_000, 'the address of the page');
    await waitFor(() => up.hasState('app', 'healthy'), 20_000, 'app healthy');
    pids.push(...up.pids());
    expect(up.lines.every((l) => l.startsWith('{'))).toBe(true); // stdout: events only
    const token = url.searchParams.get('token')!;
    expect((await request(`${url.origin}/`)).status).toBe(401);
    expect((await request(url.href)).status).toBe(200);
    const stream = await request(`${url.origin}/events?token=${token}`, { until: (b) => b.includes('"state":"healthy"') && b.includes('"kind":"status"') });
    expect(stream.body).toContain('"kind":"hello"');
    expect(stream.body).toContain('"type":"stack","stack":"ui-cli","phase":"up"');

    const stop = await request(`${url.origin}/api/actions/stop`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-stack-token': token },
      body: '{}',
    });
    expect(JSON.parse(stop.body)).toEqual({ ok: true, message: "stack 'ui-cli' stopped" });
    expect(await up.exited).toBe(0);
    expect(up.hasState('app', 'stopped')).toBe(true);
  });

  it('is refused with --detach (the page lives as long as this process): exit 2', async () => {
    const { dir } = await stackFolder({ app: webService(await freePort()) });
    const r = await runStack(['up', '--detach', '--ui'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--ui');
  });
});

describe('stack ui', () => {
  it("follows a foreground `stack up`'s events live through its control channel", async () => {
    const { dir, pids } = await stackFolder({ app: webService(await freePort(), {}, { restart: { policy: 'always', backoff: '100ms' } }) });
    const up = new StackProcess(['up', '--json'], dir);
    cleanups.push(async () => {
      up.child.kill('SIGINT');
      await up.exited;
    });
    await waitFor(() => up.hasState('app', 'healthy'), 20_000, 'app healthy');
    const [pid] = up.pids();
    pids.push(pid!);
    const ui = new StackProcess(['ui', '--port', '0'], dir);
    cleanups.push(async () => {
      ui.child.kill('SIGINT');
      await ui.exited;
    });
    const url = await waitFor(() => addressIn(ui.lines.join('\n')), 20_000, "stack ui's address");
    const token = url.searchParams.get('token')!;
    const stream = request(`${url.origin}/events?token=${token}`, {
      until: (b) => /"type":"restart","service":"app"/.test(b) && /"state":"healthy","previous":"checking"/.test(b.slice(b.indexOf('"type":"restart"'))),
      forMs: 20_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 500)); // subscribed
    process.kill(pid!, 'SIGKILL');
    const { body } = await stream;
    expect(body).toMatch(/"type":"restart","service":"app","attempt":1/);
    await waitFor(() => up.pids().length > 1, 10_000, 'the new pid');
    pids.push(...up.pids());
  });

  it('--open hands the browser a 0600 file forwarding to the page, never the token in a command line', async () => {
    const { dir } = await stackFolder({ app: webService(await freePort()) });
    const record = path.join(dir, 'browser.json');
    const fakeBrowser = path.join(dir, 'browser.cjs');
    await writeFile(
      fakeBrowser,
      `#!${process.execPath}\nconst fs = require('node:fs');\nconst file = process.argv[2];\nfs.writeFileSync(${JSON.stringify(record)}, JSON.stringify({ argv: process.argv.slice(2), mode: fs.statSync(file).mode & 0o777, html: fs.readFileSync(file, 'utf8') }));\n`,
      { mode: 0o755 },
    );
    process.env.BROWSER = fakeBrowser; // the child's environment is copied when it is spawned
    let ui: StackProcess;
    try {
      ui = new StackProcess(['ui', '--open'], dir);
    } finally {
      delete process.env.BROWSER;
    }
    cleanups.push(async () => {
      ui.child.kill('SIGINT');
      await ui.exited;
    });
    const url = await waitFor(() => addressIn(ui.lines.join('\n')), 20_000, "stack ui's address");
    const seen = await waitFor(
      async () => (existsSync(record) ? (JSON.parse(await readFile(record, 'utf8')) as { argv: string[]; mode: number; html: string }) : undefined),
      10_000,
      'the browser to be started',
    );
    expect(seen.argv.join(' ')).not.toContain(url.searchParams.get('token')!);
    expect(seen.mode).toBe(0o600);
    expect(seen.html).toContain(`url=${url.href}`);
  });

  it('rejects a bad --port with exit 2', async () => {
    const { dir } = await stackFolder({ app: webService(await freePort()) });
    const r = await runStack(['ui', '--port', 'http'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--port: 'http' is not a port number");
  });
});
