/**
 * The server of `stack ui` on its own (a stub feed and stub actions): who may ask what, and that
 * every payload is masked on the way out. The browser test (page.test.ts) covers the whole.
 */
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServiceData } from '../../src/ui/data.js';
import type { Feed } from '../../src/ui/feed.js';
import type { Masker } from '../../src/ui/mask.js';
import { startUiServer, tokenMatches, type UiServer } from '../../src/ui/server.js';
import type { UiMessage } from '../../src/ui/view.js';

const SECRET = 'hunter2-hunter2';
const masker: Masker = { text: (t) => t.split(SECRET).join('••••'), configFile: (c) => c, unknownSecrets: [] };

function stubFeed(messages: UiMessage[]): Feed & { refreshed: number } {
  const feed = {
    refreshed: 0,
    subscribe(listener: (m: UiMessage) => void) {
      for (const m of messages) listener(m);
      return () => undefined;
    },
    refresh() {
      feed.refreshed++;
    },
    publish: () => undefined,
    close: async () => undefined,
  };
  return feed;
}

function stubData(calls: string[]): ServiceData {
  return {
    async logs(service, _signal, onLine) {
      onLine(`${service} says ${SECRET}`);
    },
    async configs(service) {
      return { service, files: [], unknownSecrets: [] };
    },
    async restart(service) {
      calls.push(`restart ${service}`);
      return `restarting ${service}`;
    },
    async render(service) {
      calls.push(`render ${service}`);
      throw new Error(`cannot render ${service}: ${SECRET} is wrong`);
    },
    async stop() {
      calls.push('stop');
      return 'stopped';
    },
  };
}

let server: UiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(calls: string[] = [], messages: UiMessage[] = []): Promise<UiServer> {
  server = await startUiServer({ feed: stubFeed(messages), data: stubData(calls), masker, assets: { js: 'console.log("page")', css: 'body{}' } });
  return server;
}

function request(
  s: UiServer,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; forMs?: number } = {},
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: s.port, path, method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      const timer = opts.forMs ? setTimeout(() => res.destroy(), opts.forMs) : undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      };
      res.on('end', done);
      res.on('close', done);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('tokenMatches', () => {
  it('accepts only the exact token, whatever the length of the guess', () => {
    expect(tokenMatches('abc', 'abc')).toBe(true);
    expect(tokenMatches('abd', 'abc')).toBe(false);
    expect(tokenMatches('ab', 'abc')).toBe(false);
    expect(tokenMatches('abcd', 'abc')).toBe(false);
    expect(tokenMatches(undefined, 'abc')).toBe(false);
    expect(tokenMatches('', 'abc')).toBe(false);
  });
});

describe('startUiServer', () => {
  it('listens on 127.0.0.1 with a long random token, different every time', async () => {
    const a = await start();
    expect(a.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}$/);
    const first = a.token;
    await a.close();
    server = undefined;
    const b = await start();
    expect(b.token).not.toBe(first);
  });

  it('serves the page only with the token, with a nonce CSP and no referrer', async () => {
    const s = await start();
    expect((await request(s, '/')).status).toBe(401);
    expect((await request(s, `/?token=${s.token}x`)).status).toBe(401);
    const page = await request(s, `/?token=${s.token}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('console.log("page")');
    const nonce = /nonce="([^"]+)"/.exec(page.body)?.[1];
    expect(page.headers['content-security-policy']).toContain(`script-src 'nonce-${nonce}'`);
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.headers['referrer-policy']).toBe('no-referrer');
  });

  it('refuses a foreign Host (DNS rebinding), even with the token', async () => {
    const s = await start();
    expect((await request(s, `/?token=${s.token}`, { headers: { host: `attacker.example:${s.port}` } })).status).toBe(403);
    expect((await request(s, `/?token=${s.token}`, { headers: { host: `localhost:${s.port}` } })).status).toBe(200);
  });

  it('runs an action only as a JSON POST with the token in its header and no foreign Origin', async () => {
    const calls: string[] = [];
    const s = await start(calls);
    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({ service: 'db' });
    expect((await request(s, '/api/actions/restart', { method: 'POST', headers: json, body })).status).toBe(401);
    expect((await request(s, `/api/actions/restart?token=${s.token}`, { method: 'POST', headers: json, body })).status).toBe(403);
    expect(
      (await request(s, '/api/actions/restart', { method: 'POST', headers: { ...json, 'x-stack-token': s.token, origin: 'http://attacker.example' }, body }))
        .status,
    ).toBe(403);
    expect(
      (await request(s, '/api/actions/restart', { method: 'POST', headers: { 'content-type': 'text/plain', 'x-stack-token': s.token }, body })).status,
    ).toBe(415);
    expect((await request(s, `/api/actions/restart?token=${s.token}`, { method: 'GET' })).status).toBe(405);
    expect(calls).toEqual([]);
    const ok = await request(s, '/api/actions/restart', {
      method: 'POST',
      headers: { ...json, 'x-stack-token': s.token, origin: `http://127.0.0.1:${s.port}` },
      body,
    });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ ok: true, message: 'restarting db' });
    expect(calls).toEqual(['restart db']);
  });

  it('masks secrets in every answer: events, logs, action errors', async () => {
    const calls: string[] = [];
    const s = await start(calls, [{ kind: 'note', text: `a note with ${SECRET}` }]);
    const events = await request(s, `/events?token=${s.token}`, { forMs: 300 });
    expect(events.headers['content-type']).toContain('text/event-stream');
    expect(events.body).toContain('a note with ••••');
    const logs = await request(s, `/logs?service=db&token=${s.token}`);
    expect(logs.body).toContain('db says ••••');
    const failed = await request(s, '/api/actions/render', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-stack-token': s.token },
      body: '{"service":"db"}',
    });
    expect(failed.status).toBe(409);
    expect(failed.body).toContain('cannot render db: •••• is wrong');
    for (const r of [events, logs, failed]) expect(r.body).not.toContain(SECRET);
  });
});
