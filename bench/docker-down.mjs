#!/usr/bin/env node
/**
 * `stack down` of a health-gated chain of Docker containers against its floor, all measured in
 * the same run (issue 16, last paragraph):
 *
 * - floor: the sum of the per-container stop times along the chain, dependents first, each a
 *   direct Docker API stop (dockerode, in this process: no start-up, no profile, no discovery),
 *   of the same containers `stack up` started. A chain's reverse order makes its stops sequential,
 *   so no ordered `down` can do better than this sum;
 * - start-up: the command's own, `stack --version` (Node, the CLI's modules), and `node -e 0`;
 * - down: `stack down` of the same chain, as a user runs it (a separate process).
 *
 * Each round brings up two such chains with `stack up --detach`, then, back to back (the order
 * alternating between rounds, so drifting machine load hits both alike): the direct stops of one
 * (whose supervisor was first relieved, as a later `up` does, so nothing reacts to the stops; a
 * `stack down` afterwards removes what is left, untimed) and `stack down` of the other.
 * Ratio: down / (floor + start-up); target <= 1.2.
 * Containers use host networking on 127.0.0.1. No image is pulled: busybox is imported from
 * Debian's busybox-static (the recipe of test/fixtures/docker-image.ts).
 *
 *   npm run build && node bench/docker-down.mjs [rounds] [--chain N] [--timeline]
 *
 * `--timeline` prints, for the last timed `stack down`, when each container was stopped
 * (docker events, ms after the command started).
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { freePort, median } from './lib.mjs';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STACK_BIN = path.join(root, 'bin', 'stack.js');
const args = process.argv.slice(2);
const ROUNDS = Number(args.find((a) => /^\d+$/.test(a)) ?? 3);
const CHAIN = Number(args[args.indexOf('--chain') + 1] && args.includes('--chain') ? args[args.indexOf('--chain') + 1] : 10);
const TIMELINE = args.includes('--timeline');
const IMAGE = 'atproto-stacks-bench/busybox:1';
const LABEL_STACK = 'io.atproto-stacks.stack';
const LABEL_SERVICE = 'io.atproto-stacks.service';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'docker-down-'));
const docker = new Docker();

async function ensureImage() {
  try {
    await run('docker', ['image', 'inspect', IMAGE]);
    return;
  } catch {
    // build it
  }
  const rootfs = path.join(tmp, 'rootfs');
  for (const d of ['bin', 'etc', 'tmp', 'www', 'proc', 'sys', 'dev']) mkdirSync(path.join(rootfs, d), { recursive: true });
  copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
  for (const applet of ['sh', 'httpd', 'wget', 'sleep']) symlinkSync('busybox', path.join(rootfs, 'bin', applet));
  writeFileSync(path.join(rootfs, 'www', 'index.html'), 'ok\n');
  const tar = path.join(tmp, 'rootfs.tar');
  await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tar, '.']);
  await run('docker', ['import', '--change', 'ENV PATH=/bin', '--change', 'CMD ["/bin/sh"]', tar, IMAGE]);
}

/** The chain as a stack profile (JSON is YAML): s0 ← s1 ← … each gated on the previous one's http check. */
function profile(name, ports) {
  const services = {};
  ports.forEach((port, i) => {
    services[`s${i}`] = {
      image: IMAGE,
      command: ['/bin/httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', '/www'],
      network: 'host',
      port,
      pull: 'never',
      healthCheck: { strategy: 'http', endpoint: '/', interval: 1 },
      ...(i > 0 ? { dependencies: [`s${i - 1}`] } : {}),
    };
  });
  return JSON.stringify({ name, runtime: 'docker', discovery: { backend: 'file' }, services }, null, 2);
}

/** Time a command in a new process (ms). */
function timeProcess(argv, cwd) {
  const t = performance.now();
  const r = spawnSync(process.execPath, argv, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

async function chainUp(name, ports) {
  const cwd = path.join(tmp, name);
  mkdirSync(cwd, { recursive: true });
  writeFileSync(path.join(cwd, 'stack.json'), profile(name, ports));
  timeProcess([STACK_BIN, 'up', '--detach', '--profile', 'stack.json'], cwd);
  return cwd;
}

/** The chain's containers, dependents first (s9 … s0). */
async function containersOf(name) {
  const list = await docker.listContainers({ filters: { label: [`${LABEL_STACK}=${name}`] } });
  const index = (c) => Number(c.Labels[LABEL_SERVICE].slice(1));
  return list.sort((a, b) => index(b) - index(a)).map((c) => docker.getContainer(c.Id));
}

/** Let the chain's supervisor go (SIGUSR2, as a later `up` relieves it): its containers run on, unwatched. */
async function relieve(cwd, name) {
  const { pid } = JSON.parse(readFileSync(path.join(cwd, '.stack', name, 'lock'), 'utf8'));
  process.kill(pid, 'SIGUSR2');
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The floor: each container stopped by a direct API call, dependents first, one after the other. */
async function floorRound(name) {
  const containers = await containersOf(name);
  if (containers.length !== CHAIN) throw new Error(`expected ${CHAIN} containers, found ${containers.length}`);
  let sum = 0;
  for (const c of containers) {
    const t = performance.now();
    await c.stop({ t: 10 });
    sum += performance.now() - t;
  }
  return sum;
}

/**
 * `stack down`, timed; `docker events` say when the first container got its signal and when the
 * last one had stopped, which splits the time into before the first stop, the stops, and after.
 */
async function downRound(name, cwd, timeline) {
  const events = spawn('docker', [
    'events',
    '--filter',
    `label=${LABEL_STACK}=${name}`,
    '--format',
    '{{.TimeNano}} {{.Action}} {{index .Actor.Attributes "name"}}',
  ]);
  let lines = '';
  events.stdout.on('data', (d) => (lines += d));
  await new Promise((r) => setTimeout(r, 300));
  const startedNs = BigInt(Date.now()) * 1_000_000n;
  const ms = timeProcess([STACK_BIN, 'down', '--profile', 'stack.json'], cwd);
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_STACK}=${name}`] } });
  if (left.length > 0) throw new Error(`stack down left ${left.length} containers`);
  await new Promise((r) => setTimeout(r, 300));
  events.kill();
  const rows = lines
    .trim()
    .split('\n')
    .filter((l) => / (kill|die|stop|destroy) /.test(l))
    .map((l) => {
      const [ns, action, cname] = l.split(' ');
      return { at: Number((BigInt(ns) - startedNs) / 1_000_000n), action, service: cname.replace(/^.*-(s\d+)-\d+$/, '$1') };
    });
  if (timeline) console.log(`  timeline (ms after \`stack down\` started): ${rows.map((r) => `${r.at} ${r.action} ${r.service}`).join(' · ')}`);
  const firstKill = Math.min(...rows.filter((r) => r.action === 'kill').map((r) => r.at));
  const lastStop = Math.max(...rows.filter((r) => r.action === 'stop').map((r) => r.at));
  return { ms, before: firstKill, stops: lastStop - firstKill, after: ms - lastStop };
}

const fmt = (ms) => `${ms.toFixed(0)} ms`;
const ports = () => Promise.all(Array.from({ length: CHAIN }, freePort));

try {
  await ensureImage();
  for (let i = 0; i < 3; i++) (timeProcess(['-e', '0'], root), timeProcess([STACK_BIN, '--version'], root)); // warm the disk cache
  const r = { floor: [], down: [], version: [], node: [], ratio: [], ratioNode: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const name = `bench-down-${process.pid}-${round}`;
    const [floorCwd, downCwd] = [await chainUp(`${name}-f`, await ports()), await chainUp(`${name}-d`, await ports())];
    await relieve(floorCwd, `${name}-f`);
    const order = round % 2 === 0 ? ['floor', 'down'] : ['down', 'floor'];
    let floor = 0;
    let down = 0;
    let parts;
    for (const what of order) {
      if (what === 'floor') floor = await floorRound(`${name}-f`);
      else ({ ms: down, ...parts } = await downRound(`${name}-d`, downCwd, TIMELINE && round === ROUNDS - 1));
    }
    timeProcess([STACK_BIN, 'down', '--profile', 'stack.json'], floorCwd); // removes the stopped ones, untimed
    const version = median([0, 1, 2].map(() => timeProcess([STACK_BIN, '--version'], root)));
    const node = median([0, 1, 2].map(() => timeProcess(['-e', '0'], root)));
    const ratio = down / (floor + version);
    (r.floor.push(floor), r.down.push(down), r.version.push(version), r.node.push(node), r.ratio.push(ratio), r.ratioNode.push(down / (floor + node)));
    console.log(
      `round ${round + 1}: stack down ${fmt(down)}  floor ${fmt(floor)}  stack --version ${fmt(version)}  node -e 0 ${fmt(node)}  ` +
        `ratio ${ratio.toFixed(2)} (vs floor + node -e 0: ${(down / (floor + node)).toFixed(2)})\n` +
        `         down = ${fmt(parts.before)} to the first signal + ${fmt(parts.stops)} from there to the last container stopped + ${fmt(parts.after)} after`,
    );
  }
  console.log(`\n${CHAIN}-service chain, median of ${ROUNDS} rounds (load average ${os.loadavg()[0].toFixed(1)})`);
  console.log(`  stack down ${fmt(median(r.down))}; floor (sum of direct stops along the chain) ${fmt(median(r.floor))}`);
  console.log(`  start-up: stack --version ${fmt(median(r.version))}, node -e 0 ${fmt(median(r.node))}`);
  const m = median(r.ratio);
  console.log(
    `  ratio down / (floor + stack --version) ${m.toFixed(2)} (target <= 1.2: ${m <= 1.2 ? 'met' : 'NOT met'}); / (floor + node -e 0) ${median(r.ratioNode).toFixed(2)}`,
  );
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
