/**
 * The HTTP side of `stack ui`: one page, its event stream, a service's log and configs, and the
 * actions — on 127.0.0.1 only, and only for whoever has the token printed at start.
 *
 * Who may ask (every request, the page itself too):
 * - the token: 32 crypto-random bytes, given as `?token=` (the page, event streams) or in the
 *   `X-Stack-Token` header (the page's fetches), compared in constant time; without it: 401;
 * - the Host header must name this server (127.0.0.1:PORT or localhost:PORT): a page of another
 *   site whose name was re-pointed at 127.0.0.1 (DNS rebinding) is refused with 403;
 * - actions are POSTs carrying the token in the header (a cross-site form cannot set one), with a
 *   JSON body, and an Origin, when the browser sends one, of this server: CSRF is refused.
 * The page's script and style are inlined with a per-response nonce, under a Content Security
 * Policy allowing nothing else; nothing is fetched from anywhere but this server.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { redactDeep } from '../util/redact.js';
import type { ServiceData } from './data.js';
import type { Feed } from './feed.js';
import type { Masker } from './mask.js';
import type { UiMessage } from './view.js';

export interface UiServerOptions {
  feed: Feed;
  data: ServiceData;
  masker: Masker;
  /** 0 (default): any free port. */
  port?: number;
  /** The page's bundle; default dist/ui/app.js and app.css next to this module's build. */
  assets?: { js: string; css: string };
}

export interface UiServer {
  readonly port: number;
  readonly token: string;
  /** http://127.0.0.1:PORT/?token=… */
  readonly url: string;
  close(): Promise<void>;
}

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant time, whatever the lengths: both sides are hashed first. */
export function tokenMatches(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b) && given.length === token.length;
}

export function loadAssets(): { js: string; css: string } {
  const dir = fileURLToPath(new URL('../../dist/ui/web/', import.meta.url));
  try {
    return { js: readFileSync(`${dir}app.js`, 'utf8'), css: readFileSync(`${dir}app.css`, 'utf8') };
  } catch (err) {
    throw new Error(`the page of stack ui is not built (dist/ui/web): run \`npm run build\` (${(err as Error).message})`);
  }
}

export async function startUiServer(opts: UiServerOptions): Promise<UiServer> {
  const token = newToken();
  const assets = opts.assets ?? loadAssets();
  const streams = new Set<http.ServerResponse>();
  let port = 0;

  const server = http.createServer((req, res) => {
    void route(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain', opts.masker.text(`internal error: ${err instanceof Error ? err.message : String(err)}`));
      else res.end();
    });
  });

  // Every JSON answer, whatever it holds (events, status, log lines, errors): each string masked
  // before serialising, so a mask never cuts across JSON's own quoting.
  const maskedJson = (value: unknown) => JSON.stringify(redactDeep(value, opts.masker.text));
  const hostAllowed = (host: string | undefined) => host === `127.0.0.1:${port}` || host === `localhost:${port}`;
  const originAllowed = (origin: string | undefined) => origin === undefined || origin === `http://127.0.0.1:${port}` || origin === `http://localhost:${port}`;

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (!hostAllowed(req.headers.host)) return send(res, 403, 'text/plain', 'forbidden: unknown Host (stack ui answers 127.0.0.1 and localhost only)\n');
    const header = req.headers['x-stack-token'];
    const given = typeof header === 'string' ? header : (url.searchParams.get('token') ?? undefined);
    if (!tokenMatches(given, token)) return send(res, 401, 'text/plain', 'unauthorized: open the address `stack ui` printed (it carries the token)\n');

    if (req.method === 'GET' && url.pathname === '/') return page(res);
    if (req.method === 'GET' && url.pathname === '/events') return eventStream(req, res);
    if (req.method === 'GET' && url.pathname === '/logs') return logStream(req, res, url.searchParams.get('service') ?? '');
    if (req.method === 'GET' && url.pathname === '/api/configs') {
      const view = await opts.data.configs(url.searchParams.get('service') ?? '').catch((err: unknown) => ({ error: (err as Error).message }));
      return send(res, 'error' in view ? 404 : 200, 'application/json', maskedJson(view));
    }
    if (url.pathname.startsWith('/api/actions/')) {
      if (req.method !== 'POST') return send(res, 405, 'text/plain', 'actions are POSTs\n');
      if (typeof header !== 'string') return send(res, 403, 'text/plain', 'forbidden: actions carry the token in the X-Stack-Token header\n');
      if (!originAllowed(req.headers.origin)) return send(res, 403, 'text/plain', 'forbidden: cross-origin request\n');
      if (!(req.headers['content-type'] ?? '').startsWith('application/json')) return send(res, 415, 'text/plain', 'actions take a JSON body\n');
      return action(url.pathname.slice('/api/actions/'.length), await readBody(req), res);
    }
    return send(res, 404, 'text/plain', 'not found\n');
  }

  function page(res: http.ServerResponse): void {
    const nonce = randomBytes(16).toString('base64');
    const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stack ui</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${assets.css}</style>
</head>
<body>
<div id="app"><p>Loading…</p></div>
<script type="module" nonce="${nonce}">${assets.js.replaceAll('</script', '<\\/script')}</script>
</body>
</html>
`;
    res.writeHead(200, {
      ...SAFE_HEADERS,
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    });
    res.end(html);
  }

  function openStream(req: http.IncomingMessage, res: http.ServerResponse): (data: string) => void {
    res.writeHead(200, { ...SAFE_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    res.write('retry: 1000\n\n');
    streams.add(res);
    res.on('error', () => undefined); // the page went away mid-write
    req.on('close', () => streams.delete(res));
    return (data) => {
      if (!res.destroyed && !res.writableEnded) res.write(`data: ${data.replaceAll('\n', '\ndata: ')}\n\n`);
    };
  }

  function eventStream(req: http.IncomingMessage, res: http.ServerResponse): void {
    const write = openStream(req, res);
    const unsubscribe = opts.feed.subscribe((msg: UiMessage) => write(maskedJson(msg)));
    const keepAlive = setInterval(() => !res.destroyed && res.write(': keep-alive\n\n'), 15_000);
    req.on('close', () => {
      clearInterval(keepAlive);
      unsubscribe();
    });
  }

  function logStream(req: http.IncomingMessage, res: http.ServerResponse, service: string): void {
    const write = openStream(req, res);
    const stop = new AbortController();
    req.on('close', () => stop.abort());
    opts.data
      .logs(service, stop.signal, (line) => write(maskedJson({ line })))
      .catch((err: unknown) => {
        if (!stop.signal.aborted) write(maskedJson({ error: (err as Error).message }));
      })
      .finally(() => res.end());
  }

  async function action(name: string, body: unknown, res: http.ServerResponse): Promise<void> {
    const service = typeof (body as { service?: unknown } | undefined)?.service === 'string' ? (body as { service: string }).service : '';
    let run: (() => Promise<string>) | undefined;
    if (name === 'restart') run = () => opts.data.restart(service);
    else if (name === 'render') run = () => opts.data.render(service);
    else if (name === 'stop') run = () => opts.data.stop();
    if (!run) return send(res, 404, 'application/json', JSON.stringify({ ok: false, error: `no action '${name}'` }));
    try {
      const message = await run();
      opts.feed.refresh();
      send(res, 200, 'application/json', maskedJson({ ok: true, message }));
    } catch (err) {
      send(res, 409, 'application/json', maskedJson({ ok: false, error: err instanceof Error ? err.message : String(err) }));
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    port,
    token,
    url: `http://127.0.0.1:${port}/?token=${token}`,
    async close() {
      for (const s of streams) s.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const SAFE_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'same-origin',
};

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { ...SAFE_HEADERS, 'content-type': `${type}; charset=utf-8` });
  res.end(body);
}

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) return undefined;
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}
