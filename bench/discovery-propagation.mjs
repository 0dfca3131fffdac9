// etcd and NATS backends: watch propagation (register → a watcher in another client sees the new
// list; deregister → it sees it gone), median and p99, each against a baseline measured in the
// same run: the raw client's own watch event for one write (etcd3 put → prefix watcher; NATS KV
// put → KV watcher). Starts its own etcd and nats-server on free loopback ports in temp dirs.
//
//   npx tsc -p tsconfig.build.json && node bench/discovery-propagation.mjs
//
// Target (issue 6): p99 under 50 ms. BENCH_SAMPLES (default 200) bounds every loop.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createEtcdBackend } from '../dist/discovery/etcd.js';
import { createNatsBackend } from '../dist/discovery/nats.js';
import { freePort, summary, measureWatchPropagation } from './lib.mjs';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const STARTUP_DEADLINE_MS = 20_000;



async function until(what, fn) {
  const deadline = Date.now() + STARTUP_DEADLINE_MS;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function binary(name) {
  return ['/usr/bin', '/usr/sbin', '/usr/local/bin'].map((d) => path.join(d, name)).find((p) => existsSync(p)) ?? name;
}

/** Spawn a server; `stop()` kills it and removes its temp dir. */
function server(cmd, args, root) {
  const child = spawn(binary(cmd), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output = (output + d).slice(-8000)));
  child.stderr.on('data', (d) => (output = (output + d).slice(-8000)));
  return {
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function startEtcd() {
  const root = await mkdtemp(path.join(tmpdir(), 'stack-bench-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const s = server(
    'etcd',
    ['--name', 'default', '--data-dir', path.join(root, 'data'), '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `default=${peerUrl}`, '--log-level', 'error'],
    root,
  );
  await until('etcd', async () => (await (await fetch(`${endpoint}/health`)).json()).health === 'true');
  return { ...s, endpoint };
}

async function startNats() {
  const root = await mkdtemp(path.join(tmpdir(), 'stack-bench-nats-'));
  const port = await freePort();
  const s = server('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', path.join(root, 'js')], root);
  await until('nats-server', async () => s.output().includes('Server is ready'));
  return { ...s, url: `nats://127.0.0.1:${port}` };
}

function config(overrides) {
  return {
    backends: [], consulAddress: '127.0.0.1:8500', consulScheme: 'http', etcdEndpoints: [], etcdPrefix: '/bench',
    natsUrl: '', natsBucket: 'services', fileDirectory: '.stack/discovery', dnsServer: '127.0.0.1:53', dnsDomain: 'service.consul',
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

print('etcd discovery: watch propagation', await benchEtcd());
print('NATS discovery: watch propagation', await benchNats());
