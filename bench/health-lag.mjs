#!/usr/bin/env node
/**
 * Health detection lag: from the moment a service starts listening (it writes a timestamp to a
 * file right then) to the moment `waitUntilHealthy` returns, over RUNS runs. The baseline, in the
 * same run, is a plain tight TCP connect loop against the same kind of service: the floor any
 * probing can reach on this machine. Each run's service becomes ready after a random delay
 * (READY_MIN_MS..READY_MAX_MS), so the probe schedule is sampled at many phases.
 *
 *   npx tsc -p tsconfig.build.json && node bench/health-lag.mjs [runs]
 *
 * Target: median lag under 50 ms.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitUntilHealthy } from '../dist/health/index.js';
import { freePort } from './lib.mjs';

const RUNS = Number(process.argv[2] ?? 30);
const READY_MIN_MS = 100;
const READY_MAX_MS = 1000;
const fixture = fileURLToPath(new URL('../test/fixtures/http-service.mjs', import.meta.url));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'health-lag-'));
const epochNow = () => performance.timeOrigin + performance.now();


/** Start the fixture; returns its port, the file it writes its ready time to, and a stop function. */
async function startService(run, kind) {
  const port = await freePort();
  const readyFile = path.join(tmp, `${kind}-${run}.ready`);
  const readyAfterMs = READY_MIN_MS + Math.floor(Math.random() * (READY_MAX_MS - READY_MIN_MS));
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, PORT: String(port), READY_AFTER_MS: String(readyAfterMs), READY_FILE: readyFile },
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
  };
  return { port, readyFile, stop };
}

/**
 * The service's ready timestamp. The kernel accepts connections as soon as the socket listens,
 * a moment before the service's listen callback writes the file, so wait for it briefly.
 */
async function readyTime(file) {
  for (let i = 0; i < 1000; i++) {
    try {
      const text = readFileSync(file, 'utf8');
      if (text) return Number(text);
    } catch {
      // not written yet
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error(`${file} never appeared`);
}

/** The floor: connect, and on refusal try again at once. */
function tightConnectLoop(port) {
  return new Promise((resolve) => {
    const attempt = () => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        const at = epochNow();
        socket.destroy();
        resolve(at);
      });
      socket.once('error', () => {
        socket.destroy();
        setImmediate(attempt);
      });
    };
    attempt();
  });
}

async function measure(run, kind) {
  const service = await startService(run, kind);
  try {
    let detectedAt;
    if (kind === 'baseline') {
      detectedAt = await tightConnectLoop(service.port);
    } else {
      const check = { strategy: 'http', endpoint: '/health', intervalMs: 30_000, timeoutMs: 2000, retries: 3, startPeriodMs: 0 };
      await waitUntilHealthy(check, { host: '127.0.0.1', port: service.port }, { deadlineMs: 30_000 });
      detectedAt = epochNow();
    }
    return detectedAt - (await readyTime(service.readyFile));
  } finally {
    await service.stop();
  }
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
const summary = (lags) => {
  const sorted = [...lags].sort((a, b) => a - b);
  return { median: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) };
};

const lags = { waitUntilHealthy: [], baseline: [] };
try {
  for (let run = 0; run < RUNS; run++) {
    // Alternate, so both see the same machine load over time.
    lags.waitUntilHealthy.push(await measure(run, 'health'));
    lags.baseline.push(await measure(run, 'baseline'));
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const health = summary(lags.waitUntilHealthy);
const base = summary(lags.baseline);
const fmt = (ms) => `${ms.toFixed(1)} ms`;
console.log(`health detection lag over ${RUNS} runs (service ready after ${READY_MIN_MS}-${READY_MAX_MS} ms, http check, interval 30 s)`);
console.log(`  waitUntilHealthy    median ${fmt(health.median)}  p99 ${fmt(health.p99)}  max ${fmt(health.max)}`);
console.log(`  tight connect loop  median ${fmt(base.median)}  p99 ${fmt(base.p99)}  max ${fmt(base.max)}`);
// The baseline sits near zero (it can even connect a moment before the service's timestamp is
// taken), so a ratio would mean nothing: report the excess over it instead.
console.log(`  excess over baseline median ${fmt(health.median - base.median)}, p99 ${fmt(health.p99 - base.p99)}`);
console.log(`  target median < 50 ms: ${health.median < 50 ? 'met' : 'NOT met'}`);
