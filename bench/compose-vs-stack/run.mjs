#!/usr/bin/env node
/**
 * A chain of 10 containers, each gated on the previous one's HTTP health, deployed and removed
 * by Debian's docker-compose (1.29.2: `depends_on: condition: service_healthy`, healthcheck
 * `interval: 1s`) and by stack's Docker runtime, alternately, in the same run on the same machine.
 *
 *   npx tsc -p tsconfig.build.json && node bench/compose-vs-stack/run.mjs [rounds] [--cli] [--parallel-down]
 *
 * With `--cli` the stack side is `stack up --detach` and `stack down` on the same chain written as
 * a profile. Without it (the engine had not landed when this was written), the stack side is what
 * `stack up` does for a chain: the Docker runtime (src/runtime/docker.ts) starts each container,
 * and the health module's `waitUntilHealthy` gates the next one on an http check; `down` stops
 * the containers in reverse order. Compose's `up -d` returns once the last container is *started*;
 * the stack side also waits for the last one to be *healthy*, so the comparison favours Compose.
 *
 * Targets (issue 5): up at most 0.4 of Compose's time, down at most 0.2.
 * Containers use host networking and listen on 127.0.0.1 only. No image is pulled: the busybox
 * image is imported from Debian's busybox-static.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { waitUntilHealthy } from '../../dist/health/index.js';
import { createDockerRuntime } from '../../dist/runtime/docker.js';
import { freePort } from '../lib.mjs';

const run = promisify(execFile);
const ROUNDS = Number(process.argv[2] ?? 3);
/** `--parallel-down`: also measure a down that stops every container at once (no reverse order). */
const PARALLEL_DOWN = process.argv.includes('--parallel-down');
/** `--cli`: time `stack up --detach` and `stack down` (needs the engine) instead of the runtime directly. */
const CLI = process.argv.includes('--cli');
const STACK_BIN = new URL('../../bin/stack.js', import.meta.url).pathname;
const CHAIN = 10;
const IMAGE = 'atproto-stacks-bench/busybox:1';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'compose-vs-stack-'));

/** Same recipe as test/fixtures/docker-image.ts: busybox-static in an otherwise empty root, imported. */
async function ensureImage() {
  try {
    await run('docker', ['image', 'inspect', IMAGE]);
    return;
  } catch {
    // build it
  }
  const root = path.join(tmp, 'rootfs');
  for (const d of ['bin', 'etc', 'tmp', 'www', 'proc', 'sys', 'dev']) mkdirSync(path.join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', path.join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'httpd', 'wget', 'sleep']) symlinkSync('busybox', path.join(root, 'bin', applet));
  writeFileSync(path.join(root, 'www', 'index.html'), 'ok\n');
  const tar = path.join(tmp, 'rootfs.tar');
  await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', tar, '.']);
  await run('docker', ['import', '--change', 'ENV PATH=/bin', '--change', 'CMD ["/bin/sh"]', tar, IMAGE]);
}


const httpd = (port) => ['/bin/httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', '/www'];

/** The compose file, as JSON (which is YAML). */
function composeFile(ports) {
  const services = {};
  ports.forEach((port, i) => {
    services[`s${i}`] = {
      image: IMAGE,
      network_mode: 'host',
      init: true,
      command: httpd(port),
      healthcheck: { test: ['CMD', 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${port}/`], interval: '1s', timeout: '1s', retries: 3 },
      ...(i > 0 ? { depends_on: { [`s${i - 1}`]: { condition: 'service_healthy' } } } : {}),
    };
  });
  return JSON.stringify({ version: '2.4', services }, null, 2);
}

async function timed(fn) {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function composeRound(round, ports) {
  const project = `bench-compose-${process.pid}-${round}`;
  const file = path.join(tmp, `${project}.json`);
  writeFileSync(file, composeFile(ports));
  const compose = (...args) => run('docker-compose', ['-p', project, '-f', file, ...args]);
  try {
    const up = await timed(() => compose('up', '-d'));
    const down = await timed(() => compose('down', '--volumes'));
    return { up, down };
  } catch (err) {
    await compose('down', '--volumes').catch(() => undefined);
    throw err;
  }
}

function serviceSpec(name, port) {
  return {
    name, enable: true, kind: 'service', runtime: 'docker', image: IMAGE, command: httpd(port), shell: false,
    port, ports: [], address: '127.0.0.1', network: 'host', tags: [], meta: {}, environment: {}, secretEnvironment: [],
    dependencies: [], templates: [], restart: { policy: 'no', maxRetries: 0, backoffMs: 1000, maxBackoffMs: 30000 },
    stopSignal: 'SIGTERM', stopGracePeriodMs: 10_000, volumes: [], resources: {},
    security: { readOnlyRootFilesystem: false, noNewPrivileges: false, capDrop: [], capAdd: [], tmpfs: [] },
    init: true, pull: 'never', replicas: 1,
  };
}

/** The same chain as a stack profile (JSON is YAML): http checks at interval 1 s, like Compose's. */
function stackProfile(name, ports) {
  const services = {};
  ports.forEach((port, i) => {
    services[`s${i}`] = {
      image: IMAGE,
      command: httpd(port),
      network: 'host',
      port,
      pull: 'never',
      healthCheck: { strategy: 'http', endpoint: '/', interval: 1 },
      ...(i > 0 ? { dependencies: [`s${i - 1}`] } : {}),
    };
  });
  return JSON.stringify({ name, runtime: 'docker', discovery: { backend: 'file' }, services }, null, 2);
}

async function cliRound(round, ports) {
  const name = `bench-cli-${process.pid}-${round}`;
  const cwd = path.join(tmp, name);
  mkdirSync(cwd, { recursive: true });
  const file = path.join(cwd, 'stack.json');
  writeFileSync(file, stackProfile(name, ports));
  const stack = (...args) => run(process.execPath, [STACK_BIN, ...args, '--profile', file], { cwd });
  await stack('validate');
  try {
    const up = await timed(() => stack('up', '--detach'));
    const down = await timed(() => stack('down'));
    return { up, down };
  } catch (err) {
    await stack('down').catch(() => undefined);
    throw err;
  }
}

async function stackRound(round, ports, { parallelDown = false } = {}) {
  const stack = `bench-stack-${process.pid}-${round}${parallelDown ? '-par' : ''}`;
  const runtime = createDockerRuntime();
  const services = ports.map((port, i) => serviceSpec(`s${i}`, port));
  const check = { strategy: 'http', endpoint: '/', intervalMs: 1000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 };
  const handles = [];
  try {
    const up = await timed(async () => {
      await runtime.prepare(stack, services, {});
      for (const service of services) {
        const handle = await runtime.start({
          stack, service, replica: 0, environment: {}, files: [],
          configDir: path.join(tmp, stack, service.name), stateDir: path.join(tmp, stack), profileDir: tmp,
        });
        handles.push(handle);
        await waitUntilHealthy(check, runtime.endpoint(handle, service.port), { deadlineMs: 60_000 });
      }
    });
    const stopOpts = { signal: 'SIGTERM', gracePeriodMs: 10_000 };
    const down = await timed(async () => {
      if (parallelDown) await Promise.all(handles.map((h) => runtime.stop(h, stopOpts)));
      else for (const handle of [...handles].reverse()) await runtime.stop(handle, stopOpts);
      await runtime.teardown(stack);
    });
    return { up, down };
  } catch (err) {
    for (const h of await runtime.discover(stack).catch(() => [])) await runtime.stop(h, { signal: 'SIGKILL', gracePeriodMs: 0 }).catch(() => undefined);
    await runtime.teardown(stack).catch(() => undefined);
    throw err;
  } finally {
    await runtime.close();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const fmt = (ms) => `${(ms / 1000).toFixed(2)} s`;

try {
  await ensureImage();
  const results = { compose: { up: [], down: [] }, stack: { up: [], down: [] }, 'stack-par': { up: [], down: [] } };
  for (let round = 0; round < ROUNDS; round++) {
    const ports = await Promise.all(Array.from({ length: CHAIN }, freePort));
    // Alternate which goes first, so both see the same machine load over time.
    const order = round % 2 === 0 ? ['compose', 'stack'] : ['stack', 'compose'];
    if (PARALLEL_DOWN) order.push('stack-par');
    for (const who of order) {
      const r =
        who === 'compose' ? await composeRound(round, ports)
        : CLI && who === 'stack' ? await cliRound(round, ports)
        : await stackRound(round, ports, { parallelDown: who === 'stack-par' });
      results[who].up.push(r.up);
      results[who].down.push(r.down);
      console.log(`round ${round + 1} ${who.padEnd(9)} up ${fmt(r.up)}  down ${fmt(r.down)}`);
    }
  }
  const up = { compose: median(results.compose.up), stack: median(results.stack.up) };
  const down = { compose: median(results.compose.down), stack: median(results.stack.down) };
  console.log(`\n${CHAIN}-service health-gated chain, median of ${ROUNDS} rounds`);
  console.log(`  up    docker-compose ${fmt(up.compose)}  stack ${fmt(up.stack)}  ratio ${(up.stack / up.compose).toFixed(2)} (target <= 0.40: ${up.stack / up.compose <= 0.4 ? 'met' : 'NOT met'})`);
  console.log(`  down  docker-compose ${fmt(down.compose)}  stack ${fmt(down.stack)}  ratio ${(down.stack / down.compose).toFixed(2)} (target <= 0.20: ${down.stack / down.compose <= 0.2 ? 'met' : 'NOT met'})`);
  if (PARALLEL_DOWN) {
    const par = median(results['stack-par'].down);
    console.log(`  down, every container at once (no reverse order): stack ${fmt(par)}  ratio ${(par / down.compose).toFixed(2)}`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
