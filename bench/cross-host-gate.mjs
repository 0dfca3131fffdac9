#!/usr/bin/env node
/**
 * Cross-host gate latency (issue 14): from a dependency's registration on one host to its
 * dependent starting on another, next to the same gate on one host, measured in the same run on a
 * real etcd and a real NATS (JetStream). Target: p99 under 50 ms above the local gate.
 *
 * Each sample is a fresh peer-to-peer stack (its own name, so no record of an earlier one counts)
 * of two services, db → api (required):
 *  - across hosts: db placed on host a, api on host b. Host b's run starts first and waits (its
 *    gate on db is answered from discovery: engine/remote-gates.ts); then host a's run starts db.
 *  - on one host (the baseline, interleaved with the other): db and api both on host a; the gate
 *    opens on the local event (db healthy, which follows its registration).
 * In both, t0 is the moment host a's engine calls discovery's `register` for db, and t1 the
 * `starting` event of api. Across hosts that interval holds the write, the server's watch event to
 * host b's client, b's gate and scheduler; on one host, the write's round trip and the scheduler.
 *
 * Both hosts' engines run in this one process through the library (`startStack`), each with its
 * own discovery client (its own connection to the server, as two machines have) and its own
 * in-memory runtime (a start costs nothing, so only the gate is measured). That is the path a
 * `stack up --host b` on another machine takes — discovery watch → gate → start — without a
 * CLI and a Node start per sample, which 2 × 100 runs per backend through the netns fixture
 * would spend most of their time on (and which is not part of the gate).
 *
 *   npx tsc -p tsconfig.build.json && node bench/cross-host-gate.mjs [runs] [etcd] [nats]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createDiscovery } from '../dist/discovery/index.js';
import { startStack } from '../dist/engine/index.js';
import { buildGraph } from '../dist/graph/graph.js';
import { planStack } from '../dist/plan/plan.js';
import { mkDeploymentProfile } from '../dist/profile/api.js';
import { createMemoryRuntime } from '../dist/runtime/memory.js';
import { realClock } from '../dist/util/clock.js';
import { startEtcd, startNats } from './lib.mjs';

const args = process.argv.slice(2);
const RUNS = Number(args.find((a) => /^\d+$/.test(a)) ?? 100);
const wanted = args.filter((a) => !/^\d+$/.test(a));
const BACKENDS = wanted.length > 0 ? wanted : ['etcd', 'nats'];
const HOSTS = { a: { address: '10.0.0.1' }, b: { address: '10.0.0.2' } };

const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-cross-host-gate-'));

function profileOf(name, discovery, apiHost) {
  return mkDeploymentProfile(
    {
      name,
      runtime: 'process',
      hosts: HOSTS,
      discovery: { ...discovery, ttl: '30s', heartbeatInterval: '10s' },
      coordination: { strategy: 'peer-to-peer', dependencyTimeout: '30s' },
      services: {
        db: { host: 'a', command: [process.execPath], port: 5432, stopGracePeriod: '1s' },
        api: { host: apiHost, command: [process.execPath], port: 8080, dependencies: ['db'], stopGracePeriod: '1s' },
      },
    },
    { cwd: dir },
  );
}

/** One host's run of `profile`; `onEvent` sees its events; `discovery` is that host's client. */
function run(profile, host, discovery, onEvent) {
  const { graph } = buildGraph(profile);
  const runtime = createMemoryRuntime({ clock: realClock });
  return startStack(
    { profile, graph, plan: planStack(profile, graph, { host }) },
    {
      runtimes: { process: runtime },
      strategyFor: () => runtime.health,
      discovery,
      stateDir: path.join(dir, `${profile.name}-${host}`),
      settleMs: 0,
      supervise: false,
      onEvent,
    },
  );
}

/** A host's discovery client whose `register` of db stamps t0 (the rest is the client itself). */
function stamping(discovery, stamp) {
  return new Proxy(discovery, {
    get(target, key) {
      if (key === 'register')
        return (input, opts) => {
          if (input.service === 'db') stamp(performance.now());
          return target.register(input, opts);
        };
      const value = target[key];
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Resolves with the time of the first event matching `match` seen by `listeners`. */
function eventTime(listeners, match) {
  return new Promise((resolve) => listeners.add((e) => match(e) && resolve(performance.now())));
}

const isState = (service, state) => (e) => e.type === 'state' && e.service === service && e.state === state;

async function sample(i, kind, discovery, clients) {
  const name = `gate-${kind}-${i}`;
  let t0;
  const a = stamping(clients.a, (t) => (t0 ??= t));
  const listeners = new Set();
  const onEvent = (e) => listeners.forEach((l) => l(e));
  const started = eventTime(listeners, isState('api', 'starting'));
  const runs = [];
  if (kind === 'remote') {
    const profile = profileOf(name, discovery, 'b');
    const waiting = eventTime(listeners, isState('api', 'waiting'));
    runs.push(run(profile, 'b', clients.b, onEvent));
    await waiting;
    await new Promise((r) => setTimeout(r, 20)); // b's watch of db is open before a registers
    runs.push(run(profile, 'a', a, () => undefined));
  } else {
    runs.push(run(profileOf(name, discovery, 'a'), 'a', a, onEvent));
  }
  const t1 = await started;
  const reports = await Promise.all(runs.map((r) => r.ready));
  for (const r of reports) if (r.outcome !== 'up') throw new Error(`${name}: ${JSON.stringify(r.failed ?? r.blocked)}`);
  await Promise.all(runs.map((r) => r.stop({ timeoutMs: 1000 })));
  return t1 - t0;
}

/** Median, p99 (nearest rank: the 99th of 100 samples) and max. */
function stats(samples) {
  const s = [...samples].sort((x, y) => x - y);
  const rank = (q) => s[Math.max(0, Math.ceil(q * s.length) - 1)];
  return { median: rank(0.5), p99: rank(0.99), max: s[s.length - 1] };
}

async function bench(backend) {
  const server = backend === 'etcd' ? await startEtcd() : await startNats();
  const discovery =
    backend === 'etcd' ? { backend: 'etcd', etcdEndpoints: [server.endpoint], etcdPrefix: '/bench-gate' } : { backend: 'nats', natsUrl: server.url, natsBucket: 'bench-gate' };
  const config = profileOf('gate-config', discovery, 'b').discovery;
  const clients = { a: await createDiscovery(config), b: await createDiscovery(config) };
  const samples = { remote: [], local: [] };
  try {
    // Warm-up: connections, the bucket, the engine's modules.
    for (const kind of ['remote', 'local']) await sample(-1, kind, discovery, clients);
    for (let i = 0; i < RUNS; i++) for (const kind of i % 2 ? ['remote', 'local'] : ['local', 'remote']) samples[kind].push(await sample(i, kind, discovery, clients));
  } finally {
    await clients.a.close();
    await clients.b.close();
    await server.stop();
  }
  return { backend, remote: stats(samples.remote), local: stats(samples.local) };
}

const results = [];
try {
  for (const backend of BACKENDS) results.push(await bench(backend));
} finally {
  await rm(dir, { recursive: true, force: true });
}
const ms = (x) => `${x.toFixed(1)} ms`;
console.log(`cross-host-gate: ${RUNS} runs per backend and placement, ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(1)}, node ${process.version}`);
for (const { backend, remote, local } of results) {
  const over = remote.p99 - local.p99;
  console.log(`  ${backend}: across hosts median ${ms(remote.median)}, p99 ${ms(remote.p99)}, max ${ms(remote.max)}`);
  console.log(`  ${backend}: one host     median ${ms(local.median)}, p99 ${ms(local.p99)}, max ${ms(local.max)}`);
  console.log(
    `  ${backend}: p99 above the local gate ${ms(over)} (median ${ms(remote.median - local.median)}; target < 50 ms → ${over < 50 ? 'met' : 'NOT met'})`,
  );
}
