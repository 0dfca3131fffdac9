/**
 * `stack ui [--port N] [--open]`: a live page of the stack of this folder (or `--profile`) —
 * graph, states, health, logs, configs, events, and a few confirmed actions (src/ui).
 *
 * It binds 127.0.0.1 only and prints its address with a fresh random token; a request without
 * the token is refused. It works for a stack run by a foreground or detached `stack up`, and for
 * one whose `stack up` died (from the state folder, the runtimes and discovery). Runs until
 * Ctrl-C (exit 130).
 *
 * `--open` ($BROWSER, else xdg-open/open) hands the browser a 0600 file in the state folder that forwards to the page, never
 * the address itself: a command line (the opener's, the browser's) is readable by every user of
 * the machine, and the token must not be.
 */
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ExitCode, UsageError } from '../../errors.js';
import { loadProfile } from '../../profile/load.js';
import { profileRef, type CommonOptions } from '../common.js';
import type { Output } from '../output.js';

interface UiOptions extends CommonOptions {
  port?: string;
  open?: boolean;
  var?: string[];
  vars?: string;
}

export function parsePort(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new UsageError(`--port: '${value}' is not a port number (0-65535)`, { path: '--port' });
  return port;
}

export async function run(opts: UiOptions, o: Output): Promise<number> {
  const port = parsePort(opts.port);
  const profile = loadProfile(profileRef(opts, o));
  const cwd = process.cwd();
  const { stateDirOf } = await import('../../engine/state.js');
  const { serveUi } = await import('../../ui/index.js');
  const stateDir = stateDirOf(profile, cwd);
  const ui = await serveUi({
    profile,
    stateDir,
    cwd,
    ...(port !== undefined ? { port } : {}),
    ...(opts.var && opts.var.length > 0 ? { vars: opts.var } : {}),
    ...(opts.vars ? { varsFile: opts.vars } : {}),
    onWarning: (m) => o.err(`warning: ${m}`),
  });
  if (opts.json) o.out(JSON.stringify({ stack: profile.name, url: ui.url, port: ui.port }));
  else o.out(`stack ui for '${profile.name}': ${ui.url}\n(only this address, with its token, opens the page; Ctrl-C stops serving it)`);
  if (opts.open) await openInBrowser(ui.url, stateDir, o);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await ui.close();
  return ExitCode.interrupted;
}

/** Open the page through a 0600 forwarding file, so the token never appears in a command line. */
export async function openInBrowser(url: string, stateDir: string, o: Output): Promise<void> {
  const file = path.join(stateDir, 'ui-open.html');
  await mkdir(stateDir, { recursive: true });
  await rm(file, { force: true });
  const escaped = url.replaceAll('&', '&amp;').replaceAll('"', '&quot;');
  await writeFile(file, `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${escaped}"><title>stack ui</title>\n`, {
    mode: 0o600,
    flag: 'wx',
  });
  // $BROWSER, as xdg-open and Python's webbrowser honour it; else the platform's opener.
  const opener = process.env.BROWSER || (process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open');
  const child = spawn(opener, [path.resolve(file)], { stdio: 'ignore', detached: true });
  child.on('error', (err) => o.err(`warning: could not open a browser (${opener}: ${err.message}); open the address above`));
  child.unref();
  // Long enough for a browser to read it; then gone (it holds the token).
  setTimeout(() => void rm(file, { force: true }), 30_000).unref();
}
