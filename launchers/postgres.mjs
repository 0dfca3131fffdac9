#!/usr/bin/env node
/**
 * Runs Debian's PostgreSQL server (package `postgresql`) for one stack: its cluster, socket and
 * logs live under the stack's state folder, it listens on 127.0.0.1 only, and it stops with the
 * launcher. The first run creates the cluster (initdb) with a password-protected superuser.
 *
 * Environment:
 *   POSTGRES_PORT        TCP port (default 2578; kept below 32768, where outgoing connections
 *                        take their ports)
 *   HOST                 address to listen on (default 127.0.0.1)
 *   POSTGRES_USER        superuser name (default pg)
 *   POSTGRES_PASSWORD    its password (required: the profile renders it from a kept secret)
 *   POSTGRES_DATA_DIR    folder holding the cluster (pgdata/) and the socket folder (run/)
 *                        (default: <state folder>/data/postgres, see lib/common.mjs dataDirFor)
 *   POSTGRES_BIN_DIR     folder of initdb and postgres (default: the newest /usr/lib/postgresql/N/bin,
 *                        else PATH)
 *   POSTGRES_OS_USER     when running as root: the account PostgreSQL runs as (default postgres,
 *                        created by Debian's package). initdb and postgres refuse to run as root.
 *
 * Running as root: the data folder is handed to that account (chown of our own folder only), and
 * PostgreSQL reaches it through an open directory descriptor (/proc/self/fd/3), because the
 * folders above it (a home folder, a 0700 temporary folder) are usually closed to other accounts;
 * nothing outside the stack's folder changes.
 *
 * Logs: the server's own lines (stderr) go to our stdout/stderr, i.e. <state folder>/logs/.
 * Health: TCP on the port (the databases task then waits for the server to accept logins).
 * SIGTERM/SIGINT: a fast shutdown (SIGINT to the postmaster); exits 0 when it has stopped.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dataDirFor, fail, listenHost, log } from './lib/common.mjs';

const NAME = 'postgres';

const port = Number.parseInt(process.env.POSTGRES_PORT || '2578', 10);
const host = listenHost();
const superuser = process.env.POSTGRES_USER || 'pg';
const password = process.env.POSTGRES_PASSWORD;
if (!password) fail(`${NAME}: POSTGRES_PASSWORD is not set (the full-node profile renders it into postgres.env)`);

/** initdb and postgres from Debian's packages (newest major version first), else from PATH. */
function binDir() {
  if (process.env.POSTGRES_BIN_DIR) return process.env.POSTGRES_BIN_DIR;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(path.join(root, v, 'bin', 'postgres'))) return path.join(root, v, 'bin');
  const found = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).stdout.trim();
  if (found) return path.dirname(found);
  fail(`${NAME}: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres, no initdb on PATH): install Debian's postgresql package (scripts/setup.sh does)`);
}

/** uid and gid of `name` from /etc/passwd. */
function account(name) {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  fail(`${NAME}: running as root, PostgreSQL needs an account to run as, and '${name}' does not exist (Debian's postgresql package creates it; POSTGRES_OS_USER names another)`);
}


const bin = binDir();
const dataDir = dataDirFor(NAME, 'POSTGRES_DATA_DIR');
mkdirSync(path.join(dataDir, 'run'), { recursive: true, mode: 0o700 });
const asRoot = process.getuid?.() === 0;
const owner = asRoot ? account(process.env.POSTGRES_OS_USER || 'postgres') : undefined;
// Our two folders only: pgdata/ is made by initdb as that account already.
if (owner) for (const dir of [dataDir, path.join(dataDir, 'run')]) chownSync(dir, owner.uid, owner.gid);

// How the server's programs name the data folder: directly, or through descriptor 3 (see header).
const dirFd = owner ? openSync(dataDir, 'r') : undefined;
const base = owner ? '/proc/self/fd/3' : dataDir;
const spawnOpts = {
  stdio: ['ignore', 'inherit', 'inherit', ...(dirFd !== undefined ? [dirFd] : [])],
  ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
  env: { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' },
};

function runToEnd(argv) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), spawnOpts);
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Creates the cluster on the first run (a half-made one, from an interrupted initdb, is redone). */
async function initCluster() {
  const pgdata = path.join(dataDir, 'pgdata');
  if (existsSync(path.join(pgdata, 'PG_VERSION'))) return;
  rmSync(pgdata, { recursive: true, force: true });
  const pwfile = path.join(dataDir, 'initdb-password');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (owner) chownSync(pwfile, owner.uid, owner.gid);
  log(NAME, `creating the database cluster in ${pgdata}`);
  try {
    const code = await runToEnd([
      path.join(bin, 'initdb'),
      '--pgdata', `${base}/pgdata`,
      '--username', superuser,
      '--pwfile', `${base}/initdb-password`,
      '--auth', 'scram-sha-256',
      '--encoding', 'UTF8',
      '--locale', 'C.UTF-8',
      '--no-instructions',
    ]);
    if (code !== 0) fail(`${NAME}: initdb failed (exit code ${code})`);
  } finally {
    rmSync(pwfile, { force: true });
  }
}

await initCluster();

const server = spawn(
  path.join(bin, 'postgres'),
  [
    '-D', `${base}/pgdata`,
    '-p', String(port),
    '-c', `listen_addresses=${host}`,
    '-c', `unix_socket_directories=${base}/run`,
    '-c', 'logging_collector=off',
    '-c', 'log_destination=stderr',
  ],
  spawnOpts,
);
if (dirFd !== undefined) closeSync(dirFd);
log(NAME, `PostgreSQL (${bin}) on ${host}:${port}, data ${dataDir}${owner ? `, as uid ${owner.uid}` : ''}`, { port, host });

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log(NAME, `received ${signal}, fast shutdown`);
    server.kill('SIGINT');
  });
}
server.once('error', (err) => fail(`${NAME}: cannot start ${bin}/postgres: ${err.message}`));
server.once('exit', (code, signal) => {
  log(NAME, `postgres exited (${signal ?? `exit code ${code}`})`);
  process.exit(stopping && (code === 0 || signal === 'SIGINT') ? 0 : code || 1);
});
