/**
 * `stack ui` end to end, in Debian's Chromium (headless, driven by playwright-core), against a
 * detached process stack: every service is shown, a killed service is seen restarting and healthy
 * again without a reload, the log pane follows, requests without the token are refused, no secret
 * value reaches the page or its event stream, the actions work (each confirmed in the page), and
 * the page goes on showing the stack after its supervisor was killed. Screenshots are saved under
 * test-results/ui/.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../helpers/net.js';
import { healthyPids, repoRoot, runStack, StackProcess, supervisorPid, useStackFolders, webService } from '../cli/helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(repoRoot, 'test-results', 'ui');

const { stackFolder, cleanups } = useStackFolders({
  prefix: 'stack-ui-',
  name: 'ui-test',
  dependencyTimeout: '30s',
  discovery: { ttl: '5s', heartbeatInterval: '1s' },
});

let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  await mkdir(ARTIFACTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
});

/** db (holds a secret in its rendered config), web (requires db, optionally cache), cache (soft on db), a circular pair. */
async function uiStack(): Promise<{ dir: string; pids: number[]; ports: Record<string, number> }> {
  const ports = { db: await freePort(), web: await freePort(), cache: await freePort(), ping: await freePort(), pong: await freePort() };
  // A backoff long enough for the page to show db waiting to restart.
  const always = { restart: { policy: 'always', backoff: '500ms' } };
  const services = {
    db: webService(ports.db, {}, { ...always, templates: [{ destination: 'db.env', format: 'env', data: { PASSWORD: '{{pw}}', NAME: 'db' } }] }),
    web: webService(ports.web, {}, { ...always, dependencies: [{ name: 'db' }, { name: 'cache', type: 'optional' }] }),
    cache: webService(ports.cache, {}, { dependencies: [{ name: 'db', type: 'soft' }] }),
    ping: webService(ports.ping, {}, { dependencies: [{ name: 'pong', type: 'circular' }] }),
    pong: webService(ports.pong, {}, { dependencies: [{ name: 'ping', type: 'circular' }] }),
  };
  const { dir, pids } = await stackFolder(services);
  const file = path.join(dir, 'stack.json');
  const profile = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  await writeFile(file, JSON.stringify({ ...profile, variables: { pw: { type: 'secret', generate: { bytes: 24, encoding: 'hex' } } } }, null, 2));
  return { dir, pids, ports };
}

/** `stack ui` in the folder: its address, once printed. */
async function startUi(dir: string): Promise<{ ui: StackProcess; url: string; base: string; token: string }> {
  const ui = new StackProcess(['ui', '--json'], dir);
  cleanups.push(async () => {
    ui.child.kill('SIGINT');
    await ui.exited;
  });
  const line = await waitFor(() => ui.lines.find((l) => l.includes('"url"')), 20_000, `stack ui's address (stderr: ${ui.stderr})`);
  const { url } = JSON.parse(line) as { url: string };
  const parsed = new URL(url);
  return { ui, url, base: parsed.origin, token: parsed.searchParams.get('token')! };
}

/** GET (or POST) with Node's http: status and body, reading a stream for at most `forMs`. */
function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; forMs?: number } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      const timer = opts.forMs ? setTimeout(() => res.destroy(), opts.forMs) : undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body });
      };
      res.on('end', done);
      res.on('close', done);
    });
    req.on('error', (err) => reject(new Error(`${opts.method ?? 'GET'} ${url}: ${err.message}`)));
    req.end(opts.body);
  });
}

async function cellText(page: Page, service: string, col: string): Promise<string> {
  return (await page.locator(`tr[data-service="${service}"] td[data-col="${col}"]`).textContent()) ?? '';
}

async function confirmAction(page: Page, button: string): Promise<string> {
  await page.getByRole('button', { name: button }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await dialog.waitFor({ state: 'detached', timeout: 30_000 }); // closed once the action answered, its outcome shown
  const outcome = page.getByTestId('outcome');
  await outcome.waitFor();
  return (await outcome.textContent()) ?? '';
}

describe('stack ui in Chromium', () => {
  it('shows a running process stack live: graph, restarts, logs; refuses requests without the token; never shows a secret', async () => {
    const { dir, pids, ports } = await uiStack();
    const up = await runStack(['up', '--detach', '--json'], dir);
    expect(up.code, up.stderr).toBe(0);
    const services = healthyPids(up);
    pids.push(supervisorPid(up.stdout)!, ...Object.values(services));
    const secret = (JSON.parse(await readFile(path.join(dir, '.stack', 'ui-test', 'secrets.json'), 'utf8')) as { secrets: { pw: string } }).secrets.pw;
    expect(secret).toMatch(/^[0-9a-f]{48}$/);

    const { url, base, token } = await startUi(dir);
    expect(new URL(url).hostname).toBe('127.0.0.1');

    // ---- the token: nothing without it ----------------------------------------------------
    expect((await request(`${base}/`)).status).toBe(401);
    expect((await request(`${base}/?token=${'x'.repeat(token.length)}`)).status).toBe(401);
    expect((await request(`${base}/events`, { forMs: 500 })).status).toBe(401);
    expect((await request(`${base}/logs?service=db`, { forMs: 500 })).status).toBe(401);
    expect((await request(`${base}/api/configs?service=db`)).status).toBe(401);
    const json = { 'content-type': 'application/json' };
    expect((await request(`${base}/api/actions/stop`, { method: 'POST', headers: json, body: '{}' })).status).toBe(401);
    // The token in the query is not enough for an action (a cross-site form could carry it), nor a foreign Origin or Host.
    expect((await request(`${base}/api/actions/stop?token=${token}`, { method: 'POST', headers: json, body: '{}' })).status).toBe(403);
    expect(
      (await request(`${base}/api/actions/stop`, { method: 'POST', headers: { ...json, 'x-stack-token': token, origin: 'http://evil.example' }, body: '{}' }))
        .status,
    ).toBe(403);
    expect((await request(`${base}/?token=${token}`, { headers: { host: `evil.example:${new URL(base).port}` } })).status).toBe(403);

    // ---- every service, the edge types, the states ------------------------------------------
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const sse: string[] = [];
    page.on('response', (r) => void (r.url().includes('/events') ? sse.push(r.url()) : undefined));
    await page.goto(url);
    for (const name of ['db', 'web', 'cache', 'ping', 'pong']) {
      await page.locator(`g.node[data-service="${name}"][data-state="healthy"]`).waitFor({ timeout: 15_000 });
      await page.locator(`tr[data-service="${name}"]`).waitFor();
    }
    expect(await page.locator('path.edge-required').count()).toBe(1);
    expect(await page.locator('path.edge-optional').count()).toBe(1);
    expect(await page.locator('path.edge-soft').count()).toBe(1);
    expect(await page.locator('path.edge-circular').count()).toBe(2);
    expect(await page.locator('g.group').count()).toBe(1);
    await page.getByText('supervised by pid').waitFor();
    await waitFor(async () => (await cellText(page, 'db', 'registrations')).includes(String(ports.db)), 10_000, 'db registration');
    expect(await cellText(page, 'web', 'host')).toContain(`127.0.0.1:${ports.web}`);

    // ---- a killed service: restarting, then healthy again, without a reload -----------------
    // In the page (a string: this file is compiled without the DOM's types).
    await page.evaluate(`(() => {
      window.marker = 42;
      window.seen = [];
      const node = document.querySelector('g.node[data-service="db"]');
      new MutationObserver(() => window.seen.push(node.getAttribute('data-state') ?? '')).observe(node, { attributes: true, attributeFilter: ['data-state'] });
    })()`);
    process.kill(services.db!, 'SIGKILL');
    await waitFor(async () => (await cellText(page, 'db', 'restarts')) === '1', 15_000, 'the restart of db on the page');
    // Seen on its way back (waiting, starting or checking), then healthy again.
    const seen = await waitFor(
      async () => {
        const states = (await page.evaluate('window.seen')) as string[];
        const back = states.findIndex((s) => s === 'waiting' || s === 'starting' || s === 'checking');
        return back >= 0 && states.at(-1) === 'healthy' ? states : undefined;
      },
      15_000,
      'db restarting, then healthy, on the page',
    );
    expect(seen.at(-1)).toBe('healthy');
    expect(await page.evaluate('window.marker')).toBe(42); // same page: no reload
    await page
      .getByTestId('events')
      .getByText(/db: killed by SIGKILL; restart 1/)
      .waitFor();
    const newDb = JSON.parse((await runStack(['status', '--json'], dir)).stdout) as { services: { name: string; handle?: { pid?: number } }[] };
    pids.push(...newDb.services.flatMap((s) => (s.handle?.pid ? [s.handle.pid] : [])));

    // ---- the log pane follows; secrets in a log line are masked --------------------------------
    await page.locator('g.node[data-service="db"]').focus();
    await page.keyboard.press('Enter'); // keyboard selection
    await page.getByRole('heading', { name: 'Service db' }).waitFor();
    const log = page.getByTestId('log');
    const marker = `ui-marker-${Date.now()}`;
    await request(`http://127.0.0.1:${ports.db}/${marker}`);
    await waitFor(async () => ((await log.textContent()) ?? '').includes(marker), 10_000, 'the marker in the log pane');
    await request(`http://127.0.0.1:${ports.db}/leak-${secret}`);
    await waitFor(async () => ((await log.textContent()) ?? '').includes('/leak-••••'), 10_000, 'the masked line in the log pane');

    // ---- configs: masked as the CLI masks them, with when and why ------------------------------
    await page.getByText('PASSWORD=••••').waitFor();
    expect(await page.getByTestId('render-why').textContent()).toMatch(/restart 1/);

    // ---- no secret anywhere: the page's HTML, its event stream, its config answer -------------
    await page.screenshot({ path: path.join(ARTIFACTS, 'stack-ui.png'), fullPage: true });
    expect(await page.content()).not.toContain(secret);
    const stream = await request(`${base}/events?token=${token}`, { forMs: 1500 });
    expect(stream.status).toBe(200);
    expect(stream.body).toContain('"kind":"hello"');
    expect(stream.body).not.toContain(secret);
    const configs = await request(`${base}/api/configs?service=db&token=${token}`);
    expect(configs.body).toContain('PASSWORD=••••');
    expect(configs.body).not.toContain(secret);
    const logs = await request(`${base}/logs?service=db&token=${token}`, { forMs: 1000 });
    expect(logs.body).toContain('/leak-••••');
    expect(logs.body).not.toContain(secret);

    // ---- narrow window: still one readable column ----------------------------------------------
    await page.setViewportSize({ width: 420, height: 900 });
    const graphBox = await page.locator('.graph-panel').boundingBox();
    const detailBox = await page.locator('.detail-panel').boundingBox();
    expect(graphBox!.width).toBeLessThanOrEqual(420);
    expect(detailBox!.y).toBeGreaterThan(graphBox!.y); // stacked, not side by side
    await page.screenshot({ path: path.join(ARTIFACTS, 'stack-ui-narrow.png'), fullPage: true });
    await page.close();
  });

  it('restarts and re-renders through the running supervisor, and stops the stack once its supervisor is dead', async () => {
    const { dir, pids } = await uiStack();
    const up = await runStack(['up', '--detach', '--json'], dir);
    expect(up.code, up.stderr).toBe(0);
    const supervisor = supervisorPid(up.stdout)!;
    const services = healthyPids(up);
    pids.push(supervisor, ...Object.values(services));
    const { url } = await startUi(dir);
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(url);
    await page.locator('g.node[data-service="web"][data-state="healthy"]').waitFor({ timeout: 15_000 });

    // Restart: the supervisor stops web and starts it again (its restart policy is not involved).
    await page.locator('tr[data-service="web"] button').click();
    expect(await confirmAction(page, 'Restart web')).toContain('restarting web');
    await waitFor(async () => (await cellText(page, 'web', 'restarts')) === '1', 15_000, 'the restart of web');
    await page
      .getByTestId('events')
      .getByText(/web: .*restart requested/)
      .first()
      .waitFor();
    await page.getByTestId('events').getByText('web: healthy').nth(1).waitFor({ timeout: 15_000 }); // healthy again
    await page.locator('g.node[data-service="web"][data-state="healthy"]').waitFor();
    const after = JSON.parse((await runStack(['status', '--json'], dir)).stdout) as { services: { name: string; handle?: { pid?: number } }[] };
    const webPid = after.services.find((s) => s.name === 'web')?.handle?.pid;
    expect(webPid).not.toBe(services.web);
    pids.push(webPid!);

    // Re-render: written by the supervisor, with its reason shown.
    await page.locator('tr[data-service="db"] button').click();
    expect(await confirmAction(page, 'Re-render templates')).toContain('re-rendered 1 file');
    await waitFor(async () => ((await page.getByTestId('render-why').textContent()) ?? '').includes('re-render requested'), 10_000, 'the render reason');

    // The supervisor dies: the page goes on from the state folder; stop works as `stack down` does.
    process.kill(supervisor, 'SIGKILL');
    await page.getByText(/which is gone: nothing supervises it/).waitFor({ timeout: 10_000 });
    // Nobody to ask: a restart is refused, a re-render is done by stack ui itself.
    expect(await confirmAction(page, 'Restart db')).toMatch(/nothing supervises stack 'ui-test' now/);
    expect(await confirmAction(page, 'Re-render templates')).toContain('done by stack ui');
    await waitFor(async () => ((await page.getByTestId('render-why').textContent()) ?? '').includes('no engine running'), 10_000, 'the render reason');
    await page.getByText('PASSWORD=••••').waitFor();
    expect(await confirmAction(page, 'Stop stack')).toContain("stack 'ui-test' stopped");
    for (const name of ['db', 'web', 'cache', 'ping', 'pong'])
      await page.locator(`g.node[data-service="${name}"][data-state="stopped"]`).waitFor({ timeout: 15_000 });
    // What this stop did, as `stack down --json` prints it, in the events pane.
    await page.getByTestId('events').getByText('stack ui-test: stopped').waitFor();
    const status = JSON.parse((await runStack(['status', '--json'], dir)).stdout) as { empty: boolean };
    expect(status.empty).toBe(true);
    await page.screenshot({ path: path.join(ARTIFACTS, 'stack-ui-stopped.png'), fullPage: true });
    await page.close();
  });
});
