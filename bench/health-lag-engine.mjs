#!/usr/bin/env node
/**
 * Health detection lag through the engine: the time from a service becoming ready (the
 * http-service fixture writes the epoch time, in fractional ms, to READY_FILE the moment it
 * listens) to its dependent starting (the engine's `starting` event for the dependent, stamped
 * with the same clock). Target: median under 50 ms.
 *
 * PAIRS independent pairs `a<i> → b<i>` (required) in one stack, each `a` ready after a different
 * delay (200–600 ms), so readiness moments do not coincide.
 *
 * Build first: `npx tsc -p tsconfig.build.json`, then `node bench/health-lag-engine.mjs [pairs]`.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack } from '../dist/engine/index.js';
import { buildGraph } from '../dist/graph/graph.js';
import { planStack } from '../dist/plan/plan.js';
import { mkDeploymentProfile } from '../dist/profile/api.js';
import { freePort, median } from './lib.mjs';

const PAIRS = Number(process.argv[2] ?? 15);
const fixture = fileURLToPath(new URL('../test/fixtures/http-service.mjs', import.meta.url));
const epochNow = () => performance.timeOrigin + performance.now();


const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-health-lag-'));
const services = {};
for (let i = 0; i < PAIRS; i++) {
  const [pa, pb] = [await freePort(), await freePort()];
  const check = (port) => ({ strategy: 'http', endpoint: '/health', port, interval: '5s', timeout: '1s', retries: 0 });
  services[`a${i}`] = {
    command: [process.execPath, fixture],
    port: pa,
    environment: { PORT: String(pa), READY_AFTER_MS: String(200 + Math.round((400 * i) / PAIRS)), READY_FILE: path.join(dir, `a${i}.ready`) },
    healthCheck: check(pa),
  };
  services[`b${i}`] = { command: [process.execPath, fixture], port: pb, environment: { PORT: String(pb) }, healthCheck: check(pb), dependencies: [`a${i}`] };
}
const profile = mkDeploymentProfile(
  { name: 'bench-lag', runtime: 'process', stateDir: path.join(dir, 'state'), discovery: { backend: 'memory' }, coordination: { dependencyTimeout: '60s' }, services },
  { cwd: dir },
);
const { graph } = buildGraph(profile);
const starting = new Map();
const healthy = new Map();
const controller = startStack(
  { profile, graph, plan: planStack(profile, graph) },
  {
    supervise: false,
    onEvent: (e) => {
      if (e.type !== 'state') return;
      if (e.state === 'starting') starting.set(e.service, epochNow());
      if (e.state === 'healthy') healthy.set(e.service, epochNow());
    },
  },
);
const report = await controller.ready;
await controller.stop({ timeoutMs: 2000 });
if (report.outcome !== 'up') throw new Error(`stack did not come up: ${JSON.stringify(report.failed)}`);

const lags = [];
const detect = [];
const overhead = [];
for (let i = 0; i < PAIRS; i++) {
  const ready = Number(await readFile(path.join(dir, `a${i}.ready`), 'utf8'));
  lags.push(starting.get(`b${i}`) - ready);
  detect.push(healthy.get(`a${i}`) - ready);
  overhead.push(starting.get(`b${i}`) - healthy.get(`a${i}`));
}
await rm(dir, { recursive: true, force: true });
const fmt = (xs) => `median ${median(xs).toFixed(1)} ms, min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}`;
console.log(`health-lag-engine: ${PAIRS} pairs, ${os.cpus().length} CPUs, node ${process.version}`);
console.log(`  ready → dependency seen healthy: ${fmt(detect)}`);
console.log(`  seen healthy → dependent starting (the scheduler's own share): ${fmt(overhead)}`);
console.log(`  ready → dependent starting:      ${fmt(lags)}  (target: median < 50 ms → ${median(lags) < 50 ? 'met' : 'NOT met'})`);
