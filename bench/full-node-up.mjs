#!/usr/bin/env node
/**
 * Cold `stack up --profile full-node` (packages already in the cache, empty data: a new working
 * folder each run) until every service is healthy, against the floor of the same run: the sum of
 * the services' own start-to-ready times (starting → healthy, or → completed for a task) along
 * the critical chain of the dependency graph. Target: wall ≤ 1.2 × that sum.
 *
 * Wall time is measured around the `stack up --detach` command (it returns once everything is
 * healthy), so it includes the CLI's start, loading the profile, rendering and the supervisor.
 * Per-service times come from the command's own progress lines ("[ 3.4s] postgres: healthy").
 *
 *   node bench/full-node-up.mjs [runs]        (default 3; each run is stopped and deleted again)
 *   node bench/full-node-up.mjs --install     also time a first install into an empty cache
 *
 * Build first (`npx tsc -p tsconfig.build.json`). Ports: free loopback ports. Needs Debian's
 * postgresql package and the pinned packages in the cache (the first run installs them).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, median } from './lib.mjs';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const STACK = path.join(ROOT, 'bin', 'stack.js');
const PORTS = ['POSTGRES_PORT', 'PLC_PORT', 'PDS_PORT', 'APPVIEW_PORT', 'DATAPLANE_PORT', 'BSYNC_PORT', 'OZONE_PORT'];
const args = process.argv.slice(2);
const runs = Number(args.find((a) => /^\d+$/.test(a)) ?? 3);

function run(argv, opts) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(argv[0], argv.slice(1), { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, out, ms: performance.now() - started }));
  });
}

/** Per service: seconds (since the command began) it started, and it was ready. */
function timeline(out) {
  const t = {};
  for (const m of out.matchAll(/^\[\s*([\d.]+)s\] ([\w-]+): (starting|healthy|completed)\b/gm)) {
    const [, at, name, what] = m;
    t[name] ??= {};
    if (what === 'starting') t[name].start ??= Number(at);
    else t[name].ready = Number(at);
  }
  return t;
}

/** The chain with the largest sum of own durations, from the plan's edges. */
function criticalChain(edges, times) {
  const deps = {};
  for (const e of edges) (deps[e.from] ??= []).push(e.to);
  const best = {};
  const visit = (name) => {
    if (best[name]) return best[name];
    const own = times[name].ready - times[name].start;
    let prev = { sum: 0, chain: [] };
    for (const d of deps[name] ?? []) {
      const v = visit(d);
      if (v.sum > prev.sum) prev = v;
    }
    return (best[name] = { sum: prev.sum + own, chain: [...prev.chain, `${name} ${own.toFixed(1)}s`] });
  };
  return Object.keys(times)
    .map(visit)
    .reduce((a, b) => (b.sum > a.sum ? b : a));
}

async function once(i) {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'bench-full-node-'));
  const env = { ...process.env, NO_COLOR: '1' };
  for (const p of PORTS) env[p] = String(await freePort());
  try {
    const plan = await run([process.execPath, STACK, 'plan', '--profile', 'full-node', '--json'], { cwd, env });
    const { edges } = JSON.parse(plan.out);
    const up = await run([process.execPath, STACK, 'up', '--detach', '--profile', 'full-node'], { cwd, env });
    if (up.code !== 0) throw new Error(`up failed:\n${up.out}`);
    const times = timeline(up.out);
    const chain = criticalChain(edges, times);
    const ratio = up.ms / 1000 / chain.sum;
    console.log(`run ${i}: up ${(up.ms / 1000).toFixed(2)} s, critical chain ${chain.sum.toFixed(2)} s (${chain.chain.join(' → ')}): ratio ${ratio.toFixed(3)}`);
    return { wall: up.ms / 1000, floor: chain.sum, ratio };
  } finally {
    await run([process.execPath, STACK, 'down', '--profile', 'full-node'], { cwd, env });
    rmSync(cwd, { recursive: true, force: true });
  }
}

if (args.includes('--install')) {
  const cache = mkdtempSync(path.join(os.tmpdir(), 'bench-cache-'));
  try {
    const r = await run([process.execPath, path.join(ROOT, 'launchers', 'install.mjs')], { env: { ...process.env, ATPROTO_STACKS_CACHE: cache } });
    console.log(`first install into an empty cache: ${(r.ms / 1000).toFixed(1)} s (exit ${r.code})`);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

// Make sure the packages are in the cache, so the runs below are "packages cached".
await run([process.execPath, path.join(ROOT, 'launchers', 'install.mjs')], {});
const results = [];
for (let i = 1; i <= runs; i++) results.push(await once(i));
const m = (k) => median(results.map((r) => r[k]));
console.log(`median of ${runs}: up ${m('wall').toFixed(2)} s vs critical chain ${m('floor').toFixed(2)} s: ratio ${m('ratio').toFixed(3)} (target ≤ 1.2)`);
