#!/usr/bin/env node
/**
 * `stack down` of a health-gated chain of Docker containers against its floor, all measured in
 * the same run (issue 16, last paragraph):
 *
 * - floor: the sum of the per-container stop times along the chain, dependents first, each a
 *   direct Docker API stop (dockerode, in this process: no start-up, no profile, no discovery),
 *   of the same containers `stack up` started. A chain's reverse order makes its stops sequential,
 *   so no ordered `down` can do better than this sum;
 * - start-up, three baselines: `node -e 0`; `stack --version` (Node and the CLI's own modules);
 *   `stack validate` of the same profile (also reading and checking the profile, which `down`
 *   must do before it knows which stack to stop);
 * - down: `stack down` of the same chain, as a user runs it (a separate process).
 *
 * Each round brings up two such chains with `stack up --detach`, then, back to back (the order
 * alternating between rounds, so drifting machine load hits both alike): the direct stops of one
 * (whose supervisor was first relieved, as a later `up` does, so nothing reacts to the stops; a
 * `stack down` afterwards removes what is left, untimed) and `stack down` of the other.
 * Ratio: down / (floor + start-up), for each start-up baseline; target <= 1.2.
 * Containers use host networking on 127.0.0.1. No image is pulled: busybox is imported from
 * Debian's busybox-static (the recipe of test/fixtures/docker-image.ts).
 *
 *   npm run build && node bench/docker-down.mjs [rounds] [--chain N] [--timeline] [--compare other/bin/stack.js]
 *
 * `--compare` brings up a third chain per round with the other build and times its `stack down`
 * too (an earlier commit built in another folder: `git worktree add --detach /tmp/old <commit>`,
 * then `npm install` or a copy of node_modules and `npm run build` there).
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
const args = process.argv.slice(2);
const STACK_BIN = path.join(root, 'bin', 'stack.js');
/** `--compare <path>`: also time `stack down` of another build (say, of an earlier commit), in the same rounds. */
const OTHER_BIN = args.includes('--compare') ? path.resolve(args[args.indexOf('--compare') + 1]) : undefined;
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

async function chainUp(name, ports, bin = STACK_BIN) {
  const cwd = path.join(tmp, name);
  mkdirSync(cwd, { recursive: true });
  writeFileSync(path.join(cwd, 'stack.json'), profile(name, ports));
  timeProcess([bin, 'up', '--detach', '--profile', 'stack.json'], cwd);
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
async function downRound(name, cwd, timeline, bin = STACK_BIN) {
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
  const ms = timeProcess([bin, 'down', '--profile', 'stack.json'], cwd);
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

/** Start-up baselines, each the median of three runs: `node -e 0`, `stack --version`, and `stack validate` of the chain's profile. */
function startups(cwd) {
  const m = (argv, dir) => median([0, 1, 2].map(() => timeProcess(argv, dir)));
  return { node: m(['-e', '0'], root), version: m([STACK_BIN, '--version'], root), validate: m([STACK_BIN, 'validate', '--profile', 'stack.json'], cwd) };
}

try {
  await ensureImage();
  for (let i = 0; i < 3; i++) (timeProcess(['-e', '0'], root), timeProcess([STACK_BIN, '--version'], root)); // warm the disk cache
  const r = { floor: [], down: [], other: [], node: [], version: [], validate: [], byNode: [], byVersion: [], byValidate: [], otherByVersion: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const name = `bench-down-${process.pid}-${round}`;
    const floorCwd = await chainUp(`${name}-f`, await ports());
    const downCwd = await chainUp(`${name}-d`, await ports());
    const otherCwd = OTHER_BIN ? await chainUp(`${name}-o`, await ports(), OTHER_BIN) : undefined;
    await relieve(floorCwd, `${name}-f`);
    // Back to back, in an order that rotates between rounds.
    const kinds = ['floor', 'down', ...(OTHER_BIN ? ['other'] : [])];
    const order = kinds.map((_, i) => kinds[(i + round) % kinds.length]);
    let floor = 0;
    let down = 0;
    let other = 0;
    let parts;
    for (const what of order) {
      if (what === 'floor') floor = await floorRound(`${name}-f`);
      else if (what === 'down') ({ ms: down, ...parts } = await downRound(`${name}-d`, downCwd, TIMELINE && round === ROUNDS - 1));
      else ({ ms: other } = await downRound(`${name}-o`, otherCwd, false, OTHER_BIN));
    }
    timeProcess([STACK_BIN, 'down', '--profile', 'stack.json'], floorCwd); // removes the stopped ones, untimed
    const { node, version, validate } = startups(downCwd);
    const ratios = { byNode: down / (floor + node), byVersion: down / (floor + version), byValidate: down / (floor + validate) };
    if (OTHER_BIN) ratios.otherByVersion = other / (floor + version);
    for (const [k, v] of Object.entries({ floor, down, other, node, version, validate, ...ratios })) r[k].push(v);
    console.log(
      `round ${round + 1}: stack down ${fmt(down)} = ${fmt(parts.before)} to the first signal + ${fmt(parts.stops)} to the last container stopped + ${fmt(parts.after)} after\n` +
        `         floor ${fmt(floor)}; start-up: node -e 0 ${fmt(node)}, stack --version ${fmt(version)}, stack validate ${fmt(validate)}\n` +
        `         down / (floor + start-up): ${ratios.byNode.toFixed(2)}, ${ratios.byVersion.toFixed(2)}, ${ratios.byValidate.toFixed(2)}` +
        (OTHER_BIN ? `\n         the other build's down ${fmt(other)}: / (floor + stack --version) ${ratios.otherByVersion.toFixed(2)}` : ''),
    );
  }
  const md = (k) => median(r[k]);
  console.log(`\n${CHAIN}-service chain, median of ${ROUNDS} rounds (load average ${os.loadavg()[0].toFixed(1)})`);
  console.log(`  stack down ${fmt(md('down'))}; floor (sum of direct stops along the chain) ${fmt(md('floor'))}`);
  console.log(
    `  start-up: node -e 0 ${fmt(md('node'))}, stack --version ${fmt(md('version'))}, stack validate (its profile read and checked) ${fmt(md('validate'))}`,
  );
  const verdict = (x) => `${x.toFixed(2)} (${x <= 1.2 ? 'met' : 'NOT met'})`;
  console.log(
    `  ratio down / (floor + start-up), target <= 1.2: node -e 0 ${verdict(md('byNode'))}, stack --version ${verdict(md('byVersion'))}, stack validate ${verdict(md('byValidate'))}`,
  );
  if (OTHER_BIN) console.log(`  the other build (${OTHER_BIN}): down ${fmt(md('other'))}, / (floor + stack --version) ${md('otherByVersion').toFixed(2)}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
