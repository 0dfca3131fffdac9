// Reload latency (issue 12): from a discovery change to the dependent's reload — its template
// re-rendered, the file written and the signal delivered — through the supervisor `stack up`
// runs (`upStack`), on the file, etcd and NATS backends. The dependent is a real process: on
// SIGHUP it reads its rendered file and reports the content over loopback UDP; a sample ends
// when the report names the instance just registered. `wait.min` is 0 (no quiescence delay).
// Starts its own etcd and nats-server on free loopback ports in temp dirs.
//
//   npx tsc -p tsconfig.build.json && node bench/reload-latency.mjs
//
// Target: p99 under 100 ms + wait.min. BENCH_SAMPLES (default 200) changes per backend.
import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createDiscovery } from '../dist/discovery/index.js';
import { upStack } from '../dist/engine/stack.js';
import { buildGraph } from '../dist/graph/graph.js';
import { planStack } from '../dist/plan/plan.js';
import { mkDeploymentProfile } from '../dist/profile/api.js';
import { startEtcd, startNats, summary } from './lib.mjs';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);

async function startEtcdBackend() {
  const etcd = await startEtcd();
  return { ...etcd, discovery: { backend: 'etcd', etcdEndpoints: [etcd.endpoint] } };
}

async function startNatsBackend() {
  const nats = await startNats();
  return { ...nats, discovery: { backend: 'nats', natsUrl: nats.url } };
}

async function startFile() {
  const root = await mkdtemp(path.join(tmpdir(), 'stack-bench-file-'));
  return { discovery: { backend: 'file', fileDirectory: path.join(root, 'discovery') }, stop: () => rm(root, { recursive: true, force: true }) };
}

/** On SIGHUP: read the rendered file, send its content to the bench over UDP. */
const reporter = (udpPort) => `
const fs = require('fs'), dgram = require('dgram'), path = require('path');
const sock = dgram.createSocket('udp4');
const file = path.join(process.env.STACK_CONFIG_DIR, 'upstreams.env');
process.on('SIGHUP', () => sock.send(fs.readFileSync(file), ${udpPort}, '127.0.0.1'));
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1e6);`;

async function bench(name, start) {
  const backend = await start();
  const dir = await mkdtemp(path.join(tmpdir(), 'stack-bench-reload-'));
  const udp = dgram.createSocket('udp4');
  await new Promise((r) => udp.bind(0, '127.0.0.1', r));
  let onReport;
  udp.on('message', (msg) => onReport?.(msg.toString()));
  const profile = mkDeploymentProfile(
    {
      name: `reload-${name}`,
      runtime: 'process',
      stateDir: path.join(dir, 'state'),
      discovery: { ...backend.discovery, ttl: '10m', heartbeatInterval: '1m' },
      services: {
        app: {
          command: [process.execPath, '-e', reporter(udp.address().port)],
          templates: [{ destination: 'upstreams.env', external: ['ext'], data: { UPSTREAMS: '{{#if service.ext}}{{#each service.ext.instances}}{{id}} {{/each}}{{/if}}' }, changeMode: 'signal', changeSignal: 'SIGHUP', wait: { min: 0 } }],
        },
      },
    },
    { cwd: dir },
  );
  const { graph } = buildGraph(profile);
  const controller = upStack({ profile, graph, plan: planStack(profile, graph) }, { cwd: dir });
  const other = await createDiscovery(profile.discovery, { cwd: dir });
  try {
    const report = await controller.ready;
    if (report.outcome !== 'up') throw new Error(`${name}: up ${report.outcome}: ${JSON.stringify(report.failed)}`);
    await new Promise((r) => setTimeout(r, 300)); // let the watch deliver its first list
    const baseline = await watchBaseline(profile, dir);
    const samples = [];
    for (let i = 0; i < SAMPLES; i++) {
      const id = `ext-${i}`;
      const seen = new Promise((resolve) => (onReport = (content) => content.includes(`${id} `) && resolve()));
      const t0 = performance.now();
      await other.register({ id, service: 'ext', address: '127.0.0.1', port: 9000 + i }, { ttlMs: 600_000 });
      await seen;
      samples.push(performance.now() - t0);
    }
    return [summary(`${name} baseline: register → a manager's watch sees it`, baseline), summary(`${name}: register → file written and SIGHUP delivered`, samples)];
  } finally {
    await controller.stop();
    await other.close();
    udp.close();
    await backend.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The floor under a reload, measured in the same run: the discovery manager's own watch propagation. */
async function watchBaseline(profile, dir) {
  const writer = await createDiscovery(profile.discovery, { cwd: dir });
  const reader = await createDiscovery(profile.discovery, { cwd: dir });
  const ac = new AbortController();
  const it = reader.watch('base', { signal: ac.signal })[Symbol.asyncIterator]();
  await it.next();
  const xs = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = performance.now();
    await writer.register({ id: `base-${i}`, service: 'base', address: '127.0.0.1', port: 9000 + i }, { ttlMs: 600_000 });
    for (;;) if ((await it.next()).value.some((x) => x.id === `base-${i}`)) break;
    xs.push(performance.now() - t0);
  }
  ac.abort();
  await writer.close();
  await reader.close();
  return xs;
}

const rows = [];
for (const [name, start] of [['file', startFile], ['etcd', startEtcdBackend], ['nats', startNatsBackend]]) rows.push(...(await bench(name, start)));
console.log(`samples per backend: ${SAMPLES}, wait.min 0`);
for (const r of rows) console.log(`${r.label.padEnd(60)} median ${r.median.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  max ${r.max.toFixed(1)} ms${r.label.includes('baseline') ? '' : `  ${r.p99 < 100 ? 'ok' : 'MISS'} (p99 < 100 ms)`}`);
console.log(`load average while measuring: ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')} (${(await import('node:os')).cpus().length} CPUs)`);
