#!/usr/bin/env node
/**
 * The dev-cluster setup task: installs the pinned service packages (launchers/packages/:
 * @did-plc/server, @atproto/pds, @atproto/api and their whole locked tree) into the package cache
 * (lib/common.mjs says where), or does nothing when they are already there.
 *
 *   node launchers/install.mjs            install if needed; exit 0 only when the packages load
 *   node launchers/install.mjs --print-dir  print the install folder and exit
 *
 * How: `npm ci --prefix <temp folder>` (argv, no shell) with the pinned package-lock.json, then
 * check that the packages are there at the pinned versions and that better-sqlite3's native
 * module loads, then rename the temp folder into place. The rename is atomic, so the install
 * folder either holds a complete install or does not exist, and two installs racing (two stacks,
 * two test workers) cannot corrupt each other: the loser discards its copy.
 *
 * better-sqlite3 is built from source with node-gyp (npm_config_build_from_source=true unless set
 * otherwise): prebuilt binaries would come from GitHub, which a locked-down machine cannot reach.
 * This needs python3, make and a C++ compiler, and takes a couple of minutes, once. Node's headers
 * are taken from beside the running node (`<prefix>/include/node`) when npm has no `nodedir`.
 */
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { PINNED_DIR, packagesDir, pinnedPackages } from './lib/common.mjs';

const NAME = 'install';
const say = (line) => process.stdout.write(`${NAME}: ${line}\n`);

/** Problems with an install folder: missing packages, wrong versions, a native module that does not load. */
function installProblems(dir) {
  const problems = [];
  const require = createRequire(path.join(dir, 'package.json'));
  for (const [name, version] of Object.entries(pinnedPackages())) {
    // Read the file: a package's `exports` map may hide its package.json from require().
    let found;
    try {
      found = JSON.parse(readFileSync(path.join(dir, 'node_modules', ...name.split('/'), 'package.json'), 'utf8')).version;
    } catch {
      found = undefined;
    }
    if (found !== version) problems.push(`${name}: want ${version}, found ${found ?? 'nothing'}`);
  }
  try {
    const Sqlite = require('better-sqlite3');
    new Sqlite(':memory:').close();
  } catch (err) {
    problems.push(`better-sqlite3 does not load: ${String(err?.message ?? err).split('\n')[0]}`);
  }
  return problems;
}

/** Whether npm has a value for `key` (from any npmrc or the environment). */
function npmConfigured(key, env) {
  return new Promise((resolve) => {
    execFile('npm', ['config', 'get', key], { env }, (err, stdout) => {
      const value = String(stdout ?? '').trim();
      resolve(!err && value !== '' && value !== 'undefined' && value !== 'null');
    });
  });
}

function run(argv, opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** Removes temp folders left by installs that were killed (their pid is gone). */
function removeStaleTempFolders(dir) {
  const parent = path.dirname(dir);
  const prefix = `${path.basename(dir)}.tmp-`;
  let names;
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) continue;
    rmSync(path.join(parent, name), { recursive: true, force: true });
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

async function main() {
  const dir = packagesDir();
  if (process.argv.includes('--print-dir')) {
    process.stdout.write(`${dir}\n`);
    return 0;
  }
  const pinned = Object.entries(pinnedPackages()).map(([n, v]) => `${n}@${v}`).join(' ');
  if (existsSync(dir) && installProblems(dir).length === 0) {
    say(`packages already installed in ${dir} (${pinned})`);
    return 0;
  }
  if (existsSync(dir)) {
    say(`removing an incomplete or outdated install in ${dir}`);
    rmSync(dir, { recursive: true, force: true });
  }

  mkdirSync(path.dirname(dir), { recursive: true });
  removeStaleTempFolders(dir);
  const temp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(temp);
  const cleanup = () => rmSync(temp, { recursive: true, force: true });
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      cleanup();
      process.exit(130);
    });
  }

  try {
    copyFileSync(path.join(PINNED_DIR, 'package.json'), path.join(temp, 'package.json'));
    copyFileSync(path.join(PINNED_DIR, 'package-lock.json'), path.join(temp, 'package-lock.json'));
    say(`installing ${pinned} into ${dir}`);
    say('the first run builds better-sqlite3 from source: this takes a few minutes; later runs reuse the install');
    const started = Date.now();
    const heartbeat = setInterval(() => say(`still installing (${Math.round((Date.now() - started) / 1000)} s)`), 15_000);
    const env = { ...process.env, npm_config_build_from_source: process.env.npm_config_build_from_source ?? 'true', npm_config_update_notifier: 'false' };
    // node-gyp downloads Node's headers unless told where they are: use the ones installed with
    // this Node (e.g. /usr/include/node from Debian's nodejs) when nothing else is configured.
    const nodePrefix = path.dirname(path.dirname(process.execPath));
    if (existsSync(path.join(nodePrefix, 'include', 'node', 'node_version.h')) && !(await npmConfigured('nodedir', env))) env.npm_config_nodedir = nodePrefix;
    let result;
    try {
      result = await run(['npm', 'ci', '--prefix', temp, '--no-audit', '--no-fund', '--loglevel=warn'], { cwd: temp, env });
    } finally {
      clearInterval(heartbeat);
    }
    if (result.code !== 0) {
      say(`npm ci failed (${result.signal ?? `exit code ${result.code}`})`);
      cleanup();
      return 1;
    }
    let problems = installProblems(temp);
    if (problems.some((p) => p.startsWith('better-sqlite3'))) {
      // npm may skip install scripts it was not told to allow: build the one native module we need.
      say('building better-sqlite3 from source');
      await run(['npm', 'rebuild', 'better-sqlite3', '--prefix', temp, '--no-audit', '--no-fund'], { cwd: temp, env });
      problems = installProblems(temp);
    }
    if (problems.length > 0) {
      for (const p of problems) say(`problem: ${p}`);
      cleanup();
      return 1;
    }
    try {
      renameSync(temp, dir);
    } catch (err) {
      // Another install finished first (or an unusable folder is in the way): keep theirs if it works.
      cleanup();
      if (!existsSync(dir)) throw err;
      const theirs = installProblems(dir);
      if (theirs.length > 0) {
        for (const p of theirs) say(`problem in ${dir}: ${p} (remove the folder and run again)`);
        return 1;
      }
    }
    say(`installed in ${Math.round((Date.now() - started) / 1000)} s`);
    return 0;
  } catch (err) {
    cleanup();
    say(`failed: ${err?.stack ?? err}`);
    return 1;
  }
}

process.exitCode = await main();
