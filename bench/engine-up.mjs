#!/usr/bin/env node
/**
 * `up` wall time against the critical path, for a generated random DAG of small processes.
 *
 * Each service is a small process that starts listening READY_AFTER_MS after it starts (a random
 * delay per service) and is health-checked over TCP: by default BusyBox's httpd behind a `sleep`
 * (milliseconds to start, so the run measures the scheduler and the health gating, not Node's
 * start-up), or with `--node` a `node -e` listener (each then also pays a Node.js start). The critical path is the longest
 * chain of those delays through the graph: no scheduler can be up sooner. Target:
 *     wall ≤ 1.10 × critical path + 300 ms.
 * The real floor is higher: every process along the chain also costs a Node.js start (measured
 * below, in the same run), and N processes share the machine's cores.
 *
 * Build first: `npx tsc -p tsconfig.build.json`, then `node bench/engine-up.mjs [N ...]`
 * (default: 100 and 20). Loopback only; everything started is stopped again.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startStack } from '../dist/engine/index.js';
import { buildGraph } from '../dist/graph/graph.js';
import { planStack } from '../dist/plan/plan.js';
import { mkDeploymentProfile } from '../dist/profile/api.js';
import { freePort } from './lib.mjs';

const args = process.argv.slice(2);
const sizes = args.map(Number).filter((n) => n > 0);
const BUSYBOX = '/bin/busybox';
const useNode = args.includes('--node') || !existsSync(BUSYBOX);
/** httpd needs a folder to serve; an empty one (health checks only connect). */
const WWW = mkdtempSync(path.join(os.tmpdir(), 'bench-www-'));
const SEED = 42;

/** Small deterministic PRNG (mulberry32), so every run measures the same graph. */
function rng(seed) {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}


const LISTENER = "setTimeout(() => require('net').createServer((s) => s.end()).listen(+process.env.PORT, '127.0.0.1'), +process.env.READY_AFTER_MS); process.on('SIGTERM', () => process.exit(0));";

/** Random DAG: each service depends on up to 3 of the 15 services before it. */
async function generate(n, random) {
  const services = {};
  const delays = {};
  const deps = {};
  for (let i = 0; i < n; i++) {
    const name = `s${i}`;
    const delay = 100 + Math.floor(random() * 300);
    const mine = new Set();
    const k = i === 0 ? 0 : Math.floor(random() * 4);
    for (let j = 0; j < k; j++) mine.add(`s${Math.max(0, i - 1 - Math.floor(random() * 15))}`);
    const port = await freePort();
    delays[name] = delay;
    deps[name] = [...mine];
    services[name] = {
      ...(useNode
        ? { command: [process.execPath, '-e', LISTENER] }
        : { shell: true, command: [`${BUSYBOX} sleep ${(delay / 1000).toFixed(3)} && exec ${BUSYBOX} httpd -f -p 127.0.0.1:${port} -h ${WWW}`] }),
      environment: { PORT: String(port), READY_AFTER_MS: String(delay) },
      port,
      healthCheck: { strategy: 'tcp', port, interval: '1s', timeout: '1s', retries: 0 },
      dependencies: [...mine],
      stopGracePeriod: '2s',
    };
  }
  return { services, delays, deps };
}

/** Longest chain of delays (plus a per-service cost), by memoised depth-first search. */
function criticalPath(delays, deps, perServiceMs = 0) {
  const memo = new Map();
  const longest = (name) => {
    if (memo.has(name)) return memo.get(name);
    const own = delays[name] + perServiceMs;
    const value = own + Math.max(0, ...deps[name].map(longest));
    memo.set(name, value);
    return value;
  };
  let best = 0;
  let chain = 0;
  for (const name of Object.keys(delays)) best = Math.max(best, longest(name));
  // Services on the chain: follow the heaviest dependency from the heaviest end.
  let at = Object.keys(delays).find((n) => longest(n) === best);
  while (at) {
    chain++;
    at = deps[at].sort((a, b) => longest(b) - longest(a))[0];
  }
  return { ms: best, services: chain };
}

/** What one service process costs from spawn to accepting a connection (median of 5). */
async function nodeStartCost() {
  const samples = [];
  for (let i = 0; i < 5; i++) {
    const port = await freePort();
    const t0 = performance.now();
    const child = useNode
      ? spawn(process.execPath, ['-e', LISTENER], { env: { ...process.env, PORT: String(port), READY_AFTER_MS: '0' }, stdio: 'ignore' })
      : spawn(BUSYBOX, ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', WWW], { stdio: 'ignore' });
    for (;;) {
      const ok = await new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
        s.on('error', () => resolve(false));
      });
      if (ok) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    samples.push(performance.now() - t0);
    child.kill('SIGTERM');
  }
  samples.sort((a, b) => a - b);
  return samples[2];
}

async function measure(n) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-engine-up-'));
  const { services, delays, deps } = await generate(n, rng(SEED));
  const profile = mkDeploymentProfile(
    { name: `bench-${n}`, runtime: 'process', stateDir: path.join(dir, 'state'), discovery: { backend: 'memory' }, coordination: { dependencyTimeout: '120s' }, services },
    { cwd: dir },
  );
  const { graph } = buildGraph(profile);
  const plan = planStack(profile, graph);
  const startCost = await nodeStartCost();
  const t0 = performance.now();
  const controller = startStack({ profile, graph, plan }, { supervise: false, ...(process.env.BENCH_DEBUG ? { onEvent: (e) => console.error(JSON.stringify(e)) } : {}) });
  const report = await controller.ready;
  const wall = performance.now() - t0;
  await controller.stop({ timeoutMs: 2000 });
  await rm(dir, { recursive: true, force: true });
  if (report.outcome !== 'up') throw new Error(`stack did not come up: ${JSON.stringify(report.failed)}`);
  const critical = criticalPath(delays, deps);
  const withStart = criticalPath(delays, deps, startCost);
  const target = 1.1 * critical.ms + 300;
  return { n, waves: plan.order.length, critical, withStart, startCost, wall, target };
}

const results = [];
for (const n of sizes.length > 0 ? sizes : [100, 20]) results.push(await measure(n));
rmSync(WWW, { recursive: true, force: true });
console.log(`engine-up: random DAG of small ${useNode ? 'node' : 'busybox httpd'} processes (seed ${SEED}), ${os.cpus().length} CPUs, node ${process.version}`);
for (const r of results) {
  console.log(
    [
      `N=${r.n} (${r.waves} waves, critical chain ${r.critical.services} services)`,
      `  critical path (delays only):      ${r.critical.ms.toFixed(0)} ms`,
      `  up wall time:                     ${r.wall.toFixed(0)} ms  ratio ${(r.wall / r.critical.ms).toFixed(3)}  target ≤ ${r.target.toFixed(0)} ms → ${r.wall <= r.target ? 'met' : 'NOT met'}`,
      `  process start cost (spawn → listen): ${r.startCost.toFixed(0)} ms per process (median of 5)`,
      `  critical path + start cost:       ${r.withStart.ms.toFixed(0)} ms  ratio ${(r.wall / r.withStart.ms).toFixed(3)}`,
    ].join('\n'),
  );
}
