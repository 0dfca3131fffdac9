/**
 * What the dev-cluster launchers share: where the service packages are installed, where each
 * service keeps its data, loading a package from the install, and log lines on stdout.
 *
 * Package cache (written by install.mjs, read by plc.mjs and pds.mjs):
 *   $ATPROTO_STACKS_CACHE, else $XDG_CACHE_HOME/atproto-stacks, else ~/.cache/atproto-stacks,
 *   then  dev-cluster/<key>/  holding package.json, package-lock.json and node_modules/.
 * `<key>` hashes the pinned lockfile with what a native build depends on (Node's module ABI,
 * platform, architecture), so a changed pin or a new Node version gets a fresh folder and an
 * unchanged one is reused by every working directory (and every test run) on the machine.
 * Why not under `.stack/` of the working directory: the install takes minutes (better-sqlite3
 * builds from source) and holds nothing specific to one stack.
 *
 * Data folder of a service (kept across `stack down` / `stack up`), first of:
 *   1. the service's own variable (PLC_DATA_DIR for plc; PDS_DATA_DIRECTORY for pds);
 *   2. $STACK_STATE_DIR/data/<service>, when the engine tells services its state folder;
 *   3. <state folder>/data/<service>, where the state folder is found from our own stdout: the
 *      process runtime points it at `<state folder>/logs/<service>.log` (Linux /proc);
 *   4. .stack/dev-cluster/data/<service> under the current directory (a launcher run by hand).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder holding the pinned package.json and package-lock.json. */
export const PINNED_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'packages');

/** The exact versions the launchers were verified with (from the pinned package.json). */
export function pinnedPackages() {
  const manifest = JSON.parse(readFileSync(path.join(PINNED_DIR, 'package.json'), 'utf8'));
  return /** @type {Record<string, string>} */ (manifest.dependencies);
}

/** Root of the package cache (see the header). */
export function cacheRoot(env = process.env) {
  if (env.ATPROTO_STACKS_CACHE) return path.resolve(env.ATPROTO_STACKS_CACHE);
  const base = env.XDG_CACHE_HOME ? path.resolve(env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache');
  return path.join(base, 'atproto-stacks');
}

/** The install folder for the pinned packages on this Node version and platform. */
export function packagesDir(env = process.env) {
  const hash = createHash('sha256');
  hash.update(readFileSync(path.join(PINNED_DIR, 'package-lock.json')));
  hash.update(`\0${process.versions.modules}\0${process.platform}\0${process.arch}`);
  return path.join(cacheRoot(env), 'dev-cluster', hash.digest('hex').slice(0, 16));
}

/** `require` rooted in the install folder, so packages load from there and nowhere else. */
export function requireFromPackages(env = process.env) {
  return createRequire(path.join(packagesDir(env), 'package.json'));
}

/** Loads an installed package, with a clear message when the setup task has not run. */
export function loadPackage(name, env = process.env) {
  const dir = packagesDir(env);
  try {
    return requireFromPackages(env)(name);
  } catch (err) {
    if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(`'${name}'`)) {
      fail(`${name} is not installed in ${dir}: run \`node launchers/install.mjs\` (the profile's setup task) first`);
    }
    throw err;
  }
}

/** Version of an installed package, or undefined. */
export function installedVersion(name, env = process.env) {
  try {
    const file = path.join(packagesDir(env), 'node_modules', ...name.split('/'), 'package.json');
    return JSON.parse(readFileSync(file, 'utf8')).version;
  } catch {
    return undefined;
  }
}

/** The data folder of `service` (see the header for the order). */
export function dataDirFor(service, ownVariable, env = process.env) {
  if (ownVariable && env[ownVariable]) return path.resolve(env[ownVariable]);
  if (env.STACK_STATE_DIR) return path.join(path.resolve(env.STACK_STATE_DIR), 'data', service);
  const fromLog = stateDirFromStdout();
  if (fromLog) return path.join(fromLog, 'data', service);
  return path.resolve('.stack', 'dev-cluster', 'data', service);
}

/** `<state folder>` when our stdout is `<state folder>/logs/<name>.log` (the process runtime's layout). */
function stateDirFromStdout() {
  let target;
  try {
    target = readlinkSync('/proc/self/fd/1');
  } catch {
    return undefined; // not Linux, or no /proc
  }
  if (!path.isAbsolute(target) || !target.endsWith('.log')) return undefined;
  const logs = path.dirname(target);
  return path.basename(logs) === 'logs' ? path.dirname(logs) : undefined;
}

/** Address services listen on: loopback unless HOST says otherwise. */
export function listenHost(env = process.env) {
  return env.HOST || '127.0.0.1';
}

/** Makes an express app's `listen(port)` listen on `host` only (upstream listens on every interface). */
export function bindAppTo(app, host) {
  const listen = app.listen.bind(app);
  app.listen = (port, ...rest) => listen(port, host, ...rest);
}

/** A log line on stdout, in the shape of the services' own (pino) lines. */
export function log(name, msg, extra = {}) {
  process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), name, msg, ...extra })}\n`);
}

export function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/**
 * Stop on SIGTERM or SIGINT: run `close` once, then exit 0 (1 if closing failed). A second signal
 * while closing exits at once.
 */
export function stopOnSignals(name, close) {
  let closing = false;
  const onSignal = async (signal) => {
    if (closing) process.exit(1);
    closing = true;
    log(name, `received ${signal}, stopping`);
    try {
      await close();
      log(name, 'stopped');
      process.exit(0);
    } catch (err) {
      process.stderr.write(`${name}: error while stopping: ${err?.stack ?? err}\n`);
      process.exit(1);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * Runs `start` (which creates servers with a bare `listen(port)`, as @atproto/bsky's dataplane and
 * MockBsync do: every interface) so that those servers listen on `host` only. The patch of
 * net.Server's listen is undone as soon as `start` settles; calls that name a host are untouched.
 */
export async function listeningOn(host, start) {
  const original = net.Server.prototype.listen;
  net.Server.prototype.listen = function listen(...args) {
    if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function')) args.splice(1, 0, host);
    return original.apply(this, args);
  };
  try {
    return await start();
  } finally {
    net.Server.prototype.listen = original;
  }
}

/** Where the service-dids task keeps the AppView's and Ozone's DIDs (data/service-dids/dids.json). */
export function serviceDidsFile(env = process.env) {
  return path.join(dataDirFor('service-dids', 'SERVICE_DIDS_DIR', env), 'dids.json');
}

/** The DIDs the service-dids task registered: `{ appview: { did, … }, ozone: { did, … } }`. */
export function readServiceDids(env = process.env) {
  const file = serviceDidsFile(env);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`cannot read the service DIDs from ${file} (${err?.code ?? err}): run \`node launchers/service-dids.mjs\` (the profile's service-dids task) first`);
  }
}

/** Sets `env[name]` from `value()` when it is unset or empty (so the profile can still override it). */
export function defaultEnv(name, value, env = process.env) {
  if (!env[name]) env[name] = value();
}

/**
 * Makes `idResolver` resolve handles under the PDS's handle domains (e.g. `.test`, which no DNS
 * server knows) by asking the PDS itself: GET <pds>/.well-known/atproto-did with `Host: <handle>`,
 * as atproto's dev-env does. Other handles resolve as upstream does (DNS, then HTTPS).
 */
export function resolveHandlesAtPds(idResolver, pdsUrl, domains) {
  const upstream = idResolver.handle.resolve.bind(idResolver.handle);
  const under = domains.filter(Boolean).map((d) => (d.startsWith('.') ? d : `.${d}`));
  idResolver.handle.resolve = async (handle) => {
    if (!under.some((d) => handle.endsWith(d))) return upstream(handle);
    return new Promise((resolve) => {
      const url = new URL('/.well-known/atproto-did', pdsUrl);
      const req = http.get(url, { headers: { host: handle }, timeout: 3000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(res.statusCode === 200 && body.trim().startsWith('did:') ? body.trim() : undefined));
        res.on('error', () => resolve(undefined));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(undefined));
    });
  };
}

/** A comma-separated list from the environment (empty entries dropped). */
export function envList(value) {
  return String(value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
