#!/usr/bin/env node
/**
 * A 10-service health-gated chain on a real 3-node Docker Swarm (test/fixtures/swarm.ts: one
 * dockerd per network namespace; needs root, Debian's busybox-static and docker.io).
 *
 * Each service s<i> is a busybox httpd that becomes healthy about one second after it starts;
 * every dependent first asks its dependency over the overlay network and exits 7 if it does not
 * answer (so a dependent started too early crash-loops).
 *
 * - `stack up --detach` (runtime: swarm) until every service is healthy, against
 * - the floor, from the same run: the sum over the chain of each service's own start-to-healthy
 *   time (first task created → its task reported running, which Swarm grants after the first
 *   healthy HEALTHCHECK), and against
 * - `docker stack deploy` of the same services (depends_on is ignored by Swarm) until every
 *   service has its task running healthy.
 * Also checked: no dependent's task was created before its dependency's task ran healthy.
 *
 *   npx tsc -p tsconfig.build.json && node bench/swarm-chain.mjs [runs]
 *
 * Target: `stack up` ≤ 1.3 × floor; no dependent started before its dependency was healthy.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const RUNS = Number(process.argv[2] ?? 3);
const N = 10;
const root = fileURLToPath(new URL('..', import.meta.url));
const stackBin = path.join(root, 'bin', 'stack.js');

/** The test fixtures are TypeScript: transpile the two this needs next to themselves, for the run. */
async function loadFixtures() {
  const out = [];
  const load = async (name) => {
    const src = path.join(root, 'test', 'fixtures', `${name}.ts`);
    const js = ts.transpileModule(readFileSync(src, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const file = path.join(root, 'test', 'fixtures', `.bench-${process.pid}-${name}.mjs`);
    writeFileSync(file, js);
    out.push(file);
    return import(pathToFileURL(file).href);
  };
  try {
    return { swarm: await load('swarm'), image: await load('docker-image') };
  } finally {
    for (const f of out) rmSync(f, { force: true });
  }
}

const run = (args, cwd, env = {}) =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [stackBin, ...args], { cwd, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });

const command = (i) => `${i > 0 ? `wget -q -O - http://s${i - 1}:8080/ >/dev/null || exit 7; ` : ''}sleep 1; exec /bin/httpd -f -p 8080 -h /www`;

function stackProfile(name, manager, image, dir) {
  const services = {};
  for (let i = 0; i < N; i++) {
    services[`s${i}`] = {
      image,
      pull: 'never',
      port: 8080,
      command: ['/bin/sh', '-c', command(i)],
      healthCheck: { strategy: 'http', endpoint: '/', interval: '200ms', retries: 3, startPeriod: '30s' },
      restart: { policy: 'always', backoff: '100ms' },
      stopGracePeriod: '1s',
      ...(i > 0 ? { dependencies: [`s${i - 1}`] } : {}),
    };
  }
  return { name, runtime: 'swarm', swarm: { host: manager.host, readyTimeout: '60s' }, discovery: { backend: 'file', fileDirectory: path.join(dir, 'discovery') }, coordination: { dependencyTimeout: '60s' }, services };
}

function composeFile(image) {
  const lines = ['version: "3.8"', 'services:'];
  for (let i = 0; i < N; i++) {
    lines.push(
      `  s${i}:`,
      `    image: ${image}`,
      `    command: ["/bin/sh", "-c", ${JSON.stringify(command(i))}]`,
      `    healthcheck: { test: ["CMD", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/"], interval: 200ms, retries: 3, start_period: 30s }`,
      `    stop_grace_period: 1s`,
      ...(i > 0 ? [`    depends_on: [s${i - 1}]`] : []),
      `    deploy: { endpoint_mode: dnsrr, restart_policy: { condition: any, delay: 100ms } }`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Per service: first task created, first time a task of it ran (healthy), failed tasks. */
async function taskTimes(docker, name) {
  const out = [];
  for (let i = 0; i < N; i++) {
    const tasks = await docker.listTasks({ filters: { service: [`${name}_s${i}`] } });
    const created = Math.min(...tasks.map((t) => Date.parse(t.CreatedAt)));
    const running = tasks.filter((t) => t.Status.State === 'running').map((t) => Date.parse(t.Status.Timestamp));
    out.push({ created, healthy: Math.min(...running), tasks: tasks.length, failed: tasks.filter((t) => t.Status.State === 'failed').length });
  }
  return out;
}

async function waitAllRunning(docker, name, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ready = 0;
    for (let i = 0; i < N; i++) {
      const tasks = await docker.listTasks({ filters: { service: [`${name}_s${i}`], 'desired-state': ['running'] } }).catch(() => []);
      if (tasks.some((t) => t.Status.State === 'running')) ready++;
    }
    if (ready === N) return;
    if (Date.now() > deadline) throw new Error(`docker stack deploy: ${ready}/${N} running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitNoTasks(docker, name) {
  for (let n = 0; n < 300; n++) {
    const tasks = await docker.listTasks({ filters: { label: [`com.docker.stack.namespace=${name}`] } });
    const services = await docker.listServices({ filters: { label: [`com.docker.stack.namespace=${name}`] } });
    if (tasks.length === 0 && services.length === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const n of await docker.listNetworks({ filters: { label: [`com.docker.stack.namespace=${name}`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
}

const { swarm, image } = await loadFixtures();
await image.ensureBusyboxImage();
const cluster = await swarm.startSwarm({ images: [image.BUSYBOX_IMAGE] });
const docker = cluster.manager.docker;
const rows = [];
try {
  for (let r = 0; r < RUNS; r++) {
    // stack up
    const name = `bench${r}`;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'swarm-chain-'));
    writeFileSync(path.join(dir, 'stack.json'), JSON.stringify(stackProfile(name, cluster.manager, image.BUSYBOX_IMAGE, dir)));
    const t0 = Date.now();
    const up = await run(['up', '--detach', '--profile', 'stack.json'], dir);
    const upMs = Date.now() - t0;
    if (up.code !== 0) throw new Error(`stack up failed:\n${up.out}`);
    if (process.env.BENCH_VERBOSE) console.log(up.out);
    const times = await taskTimes(docker, name);
    const floor = times.reduce((sum, t) => sum + (t.healthy - t.created), 0);
    const early = times.slice(1).filter((t, i) => t.created < times[i].healthy).length;
    const failed = times.reduce((s, t) => s + t.failed, 0);
    const down = await run(['down', '--profile', 'stack.json'], dir);
    if (down.code !== 0) throw new Error(`stack down failed:\n${down.out}`);
    rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 250 }); // the supervisor may write a last line after down returns

    // docker stack deploy of the same services
    const cdir = mkdtempSync(path.join(os.tmpdir(), 'swarm-chain-compose-'));
    const file = path.join(cdir, 'compose.yaml');
    writeFileSync(file, composeFile(image.BUSYBOX_IMAGE));
    const dname = `dsd${r}`;
    const t1 = Date.now();
    const dep = spawnSync('docker', ['-H', cluster.manager.host, 'stack', 'deploy', '--resolve-image', 'never', '-c', file, dname], { encoding: 'utf8' });
    if (dep.status !== 0) throw new Error(`docker stack deploy failed: ${dep.stderr}`);
    await waitAllRunning(docker, dname, 180_000);
    const deployMs = Date.now() - t1;
    const dtimes = await taskTimes(docker, dname);
    const dfailed = dtimes.reduce((s, t) => s + t.failed, 0);
    const dearly = dtimes.slice(1).filter((t, i) => t.created < dtimes[i].healthy).length;
    spawnSync('docker', ['-H', cluster.manager.host, 'stack', 'rm', dname], { encoding: 'utf8' });
    await waitNoTasks(docker, dname);
    rmSync(cdir, { recursive: true, force: true });

    rows.push({ upMs, floor, early, failed, deployMs, dfailed, dearly });
    console.log(
      `run ${r + 1}: stack up ${upMs} ms, floor ${floor} ms (ratio ${(upMs / floor).toFixed(2)}), dependents created early ${early}, failed tasks ${failed}; ` +
        `docker stack deploy ${deployMs} ms (${(deployMs / floor).toFixed(2)}× floor), dependents created early ${dearly}, failed tasks ${dfailed}`,
    );
  }
} finally {
  await cluster.stop();
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ratio = med(rows.map((r) => r.upMs / r.floor));
console.log(
  `median: stack up ${med(rows.map((r) => r.upMs))} ms, floor ${med(rows.map((r) => r.floor))} ms, ratio ${ratio.toFixed(2)} (target ≤ 1.3); ` +
    `docker stack deploy ${med(rows.map((r) => r.deployMs))} ms, ${med(rows.map((r) => r.dfailed))} failed tasks; ` +
    `stack up: ${rows.reduce((s, r) => s + r.early, 0)} dependents created before their dependency was healthy`,
);
