// etcd, NATS (KV and subjects mode) and SQL catalog (SQLite, PostgreSQL) backends: watch
// propagation (register → a watcher in another client sees the new list; deregister → it sees it
// gone), median and p99, each against a baseline measured in the same run: the raw client's own
// change signal for one write (etcd3 put → prefix watcher; NATS KV put → KV watcher; NATS publish
// → subscriber; SQLite insert → another connection's PRAGMA data_version; PostgreSQL NOTIFY →
// LISTEN). Starts its own etcd, nats-servers (with and without JetStream) and PostgreSQL (through
// launchers/postgres.mjs) on free loopback ports in temp dirs.
//
//   npx tsc -p tsconfig.build.json && node bench/discovery-propagation.mjs [etcd] [nats] [nats-subjects] [sqlite] [postgres]
//
// Target (issue 6): p99 under 50 ms. BENCH_SAMPLES (default 200) bounds every loop.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createEtcdBackend } from '../dist/discovery/etcd.js';
import { createNatsBackend } from '../dist/discovery/nats.js';
import { createNatsSubjectsBackend } from '../dist/discovery/nats-subjects.js';
import { createSqlBackend } from '../dist/discovery/sql.js';
import { freePort, summary, measureWatchPropagation, startEtcd, startNats } from './lib.mjs';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
function config(overrides) {
  return {
    backends: [], consulAddress: '127.0.0.1:8500', consulScheme: 'http', etcdEndpoints: [], etcdPrefix: '/bench',
    natsUrl: '', natsBucket: 'services', natsMode: 'kv', sqlUrl: 'sqlite:.stack/discovery.sqlite', sqlRetentionMs: 3_600_000, fileDirectory: '.stack/discovery', dnsServer: '127.0.0.1:53', dnsDomain: 'service.consul',
    ttlMs: 60_000, heartbeatIntervalMs: 10_000, ...overrides,
  };
}


async function benchEtcd() {
  const etcd = await startEtcd();
  try {
    // Baseline: the etcd3 client's own prefix watcher seeing one put from another client.
    const { Etcd3 } = await import('etcd3');
    const a = new Etcd3({ hosts: etcd.endpoint });
    const b = new Etcd3({ hosts: etcd.endpoint });
    const baseline = [];
    const watcher = await b.watch().prefix('/raw/').create();
    let notify;
    watcher.on('put', () => notify?.());
    for (let i = 0; i < SAMPLES; i++) {
      const seen = new Promise((r) => (notify = r));
      const t0 = performance.now();
      await a.put(`/raw/x-${i}`).value('{}');
      await seen;
      baseline.push(performance.now() - t0);
    }
    await watcher.cancel();
    a.close();
    b.close();

    const writer = createEtcdBackend(config({ etcdEndpoints: [etcd.endpoint] }));
    const reader = createEtcdBackend(config({ etcdEndpoints: [etcd.endpoint] }));
    const { registerToSeen, deregisterToSeen } = await measureWatchPropagation(writer, reader, SAMPLES);
    await writer.close();
    await reader.close();
    return [
      summary('etcd baseline: raw prefix watcher sees a put', baseline),
      summary('etcd backend: register → watcher sees it', registerToSeen),
      summary('etcd backend: deregister → watcher sees it', deregisterToSeen),
    ];
  } finally {
    await etcd.stop();
  }
}

async function benchNats() {
  const nats = await startNats();
  try {
    // Baseline: a raw KV watcher seeing one put from another connection.
    const { connect } = await import('@nats-io/transport-node');
    const { Kvm } = await import('@nats-io/kv');
    const ncA = await connect({ servers: nats.url });
    const ncB = await connect({ servers: nats.url });
    const kvA = await new Kvm(ncA).create('raw', { history: 1 });
    const kvB = await new Kvm(ncB).open('raw');
    const baseline = [];
    const iter = await kvB.watch({ key: 'x.>', include: 'updates' });
    let notify;
    void (async () => {
      for await (const _ of iter) notify?.();
    })();
    for (let i = 0; i < SAMPLES; i++) {
      const seen = new Promise((r) => (notify = r));
      const t0 = performance.now();
      await kvA.put(`x.k${i}`, '{}');
      await seen;
      baseline.push(performance.now() - t0);
    }
    iter.stop();
    await ncA.close();
    await ncB.close();

    const writer = createNatsBackend(config({ natsUrl: nats.url }));
    const reader = createNatsBackend(config({ natsUrl: nats.url }));
    const { registerToSeen, deregisterToSeen } = await measureWatchPropagation(writer, reader, SAMPLES);
    await writer.close();
    await reader.close();
    return [
      summary('NATS baseline: raw KV watcher sees a put', baseline),
      summary('NATS backend: register → watcher sees it', registerToSeen),
      summary('NATS backend: deregister → watcher sees it', deregisterToSeen),
    ];
  } finally {
    await nats.stop();
  }
}

function print(title, rows) {
  const base = rows[0].median;
  console.log(`\n${title} (${SAMPLES} samples each, ms)`);
  console.log('| case | median | p99 | max | median vs baseline |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.label} | ${r.median.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(2)} | ${(r.median / base).toFixed(2)}× |`);
  }
  const worst = Math.max(...rows.slice(1).map((r) => r.p99));
  console.log(`target p99 < 50 ms: ${worst < 50 ? 'met' : 'NOT met'} (worst backend p99 ${worst.toFixed(2)} ms)`);
}

async function benchNatsSubjects() {
  const nats = await startNats({ jetstream: false });
  try {
    // Baseline: a raw subscriber seeing one publish from another connection.
    const { connect } = await import('@nats-io/transport-node');
    const ncA = await connect({ servers: nats.url });
    const ncB = await connect({ servers: nats.url });
    let notify;
    ncB.subscribe('raw.>', { callback: () => notify?.() });
    await ncB.flush();
    const baseline = [];
    for (let i = 0; i < SAMPLES; i++) {
      const seen = new Promise((r) => (notify = r));
      const t0 = performance.now();
      ncA.publish(`raw.k${i}`, '{}');
      await ncA.flush();
      await seen;
      baseline.push(performance.now() - t0);
    }
    await ncA.close();
    await ncB.close();

    const writer = createNatsSubjectsBackend(config({ natsUrl: nats.url, natsMode: 'subjects' }));
    const reader = createNatsSubjectsBackend(config({ natsUrl: nats.url, natsMode: 'subjects' }));
    // Connect first: a client's first call includes its start-up announce round (replies are
    // gathered until they stall for 100 ms), which is not propagation.
    await writer.check();
    const { registerToSeen, deregisterToSeen } = await measureWatchPropagation(writer, reader, SAMPLES);
    await writer.close();
    await reader.close();
    return [
      summary('NATS subjects baseline: raw subscriber sees a publish', baseline),
      summary('NATS subjects mode: register → watcher sees it', registerToSeen),
      summary('NATS subjects mode: deregister → watcher sees it', deregisterToSeen),
    ];
  } finally {
    await nats.stop();
  }
}

async function benchSqlite() {
  const root = await mkdtemp(path.join(tmpdir(), 'stack-bench-sqlite-'));
  const file = path.join(root, 'catalog.sqlite');
  try {
    // Baseline: another connection's PRAGMA data_version changes after one insert (read at once: no poll interval).
    const { default: Database } = await import('better-sqlite3');
    const a = new Database(path.join(root, 'raw.sqlite'));
    a.pragma('journal_mode = WAL');
    a.exec('CREATE TABLE t (v INTEGER)');
    const b = new Database(path.join(root, 'raw.sqlite'));
    const baseline = [];
    for (let i = 0; i < SAMPLES; i++) {
      const before = b.pragma('data_version', { simple: true });
      const t0 = performance.now();
      a.prepare('INSERT INTO t VALUES (?)').run(i);
      while (b.pragma('data_version', { simple: true }) === before) await new Promise((r) => setTimeout(r, 1));
      baseline.push(performance.now() - t0);
    }
    a.close();
    b.close();

    // Two backends, two connections: the reader hears of the writer's commits as another process would.
    const writer = createSqlBackend(config({ sqlUrl: `sqlite://${file}` }));
    const reader = createSqlBackend(config({ sqlUrl: `sqlite://${file}` }));
    const { registerToSeen, deregisterToSeen } = await measureWatchPropagation(writer, reader, SAMPLES);
    await writer.close();
    await reader.close();
    return [
      summary('SQLite baseline: another connection\'s data_version sees an insert', baseline),
      summary('sql backend (SQLite): register → watcher sees it', registerToSeen),
      summary('sql backend (SQLite): deregister → watcher sees it', deregisterToSeen),
    ];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function startPostgres() {
  const root = await mkdtemp(path.join(tmpdir(), 'stack-bench-pg-'));
  const port = await freePort();
  const password = Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  // The password reaches the launcher in its environment, never in argv.
  const child = spawn(process.execPath, [new URL('../launchers/postgres.mjs', import.meta.url).pathname], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, POSTGRES_PORT: String(port), POSTGRES_USER: 'bench', POSTGRES_PASSWORD: password, POSTGRES_DATA_DIR: path.join(root, 'data'), HOST: '127.0.0.1' },
  });
  let output = '';
  child.stdout.on('data', (d) => (output = (output + d).slice(-8000)));
  child.stderr.on('data', (d) => (output = (output + d).slice(-8000)));
  const deadline = Date.now() + 60_000;
  while (!output.includes('ready to accept connections')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`postgres did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = new URL(`postgres://bench@127.0.0.1:${port}/postgres`);
  return {
    url: url.toString(),
    password,
    withPassword: () => Object.assign(new URL(url), { password }).toString(),
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function benchPostgres() {
  const pgServer = await startPostgres();
  try {
    // Baseline: a LISTEN connection hearing one NOTIFY from another connection.
    const { default: pg } = await import('pg');
    const a = new pg.Client({ connectionString: pgServer.withPassword() });
    const b = new pg.Client({ connectionString: pgServer.withPassword() });
    await a.connect();
    await b.connect();
    let notify;
    b.on('notification', () => notify?.());
    await b.query('LISTEN raw');
    const baseline = [];
    for (let i = 0; i < SAMPLES; i++) {
      const seen = new Promise((r) => (notify = r));
      const t0 = performance.now();
      await a.query(`NOTIFY raw, '${i}'`);
      await seen;
      baseline.push(performance.now() - t0);
    }
    await a.end();
    await b.end();

    const writer = createSqlBackend(config({ sqlUrl: pgServer.url, sqlPassword: pgServer.password }));
    const reader = createSqlBackend(config({ sqlUrl: pgServer.url, sqlPassword: pgServer.password }));
    const { registerToSeen, deregisterToSeen } = await measureWatchPropagation(writer, reader, SAMPLES);
    await writer.close();
    await reader.close();
    return [
      summary('PostgreSQL baseline: LISTEN hears a NOTIFY', baseline),
      summary('sql backend (PostgreSQL): register → watcher sees it', registerToSeen),
      summary('sql backend (PostgreSQL): deregister → watcher sees it', deregisterToSeen),
    ];
  } finally {
    await pgServer.stop();
  }
}

const chosen = process.argv.slice(2);
const wanted = (name) => chosen.length === 0 || chosen.includes(name);
if (wanted('etcd')) print('etcd discovery: watch propagation', await benchEtcd());
if (wanted('nats')) print('NATS discovery (KV mode): watch propagation', await benchNats());
if (wanted('nats-subjects')) print('NATS discovery (subjects mode, no JetStream): watch propagation', await benchNatsSubjects());
if (wanted('sqlite')) print('SQL catalog on SQLite: watch propagation', await benchSqlite());
if (wanted('postgres')) print('SQL catalog on PostgreSQL: watch propagation', await benchPostgres());
