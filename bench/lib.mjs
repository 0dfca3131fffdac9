// Helpers the benchmark scripts share. Loopback only.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The upper median of a list of numbers. */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Median, p99 and max of samples (ms), for the propagation tables. */
export function summary(label, samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { label, median: quantile(s, 0.5), p99: quantile(s, 0.99), max: s[s.length - 1] };
}

/** A profile of `n` services as YAML text, each depending on up to `edges` earlier ones (seeded, so the same every run). */
export function randomDag(n, edges, seed = 42) {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const lines = ['name: scale', 'runtime: process', 'services:'];
  for (let i = 0; i < n; i++) {
    const deps = new Set();
    for (let e = 0; e < Math.min(edges, i); e++) deps.add(Math.floor(rand() * i));
    const types = ['required', 'optional', 'soft'];
    const depList = [...deps].map((d, k) => (k === 0 ? `s${d}` : `{ name: s${d}, type: ${types[k % 3]} }`));
    lines.push(`  s${i}: { command: [node, x.js], port: ${10000 + (i % 50000)}, healthEndpoint: /health, dependencies: [${depList.join(', ')}] }`);
  }
  return `${lines.join('\n')}\n`;
}

/** Register / deregister through one backend, time until a watcher on another reflects it. */
export async function measureWatchPropagation(writer, reader, samples) {
  const ac = new AbortController();
  const it = reader.watch('pds', { signal: ac.signal })[Symbol.asyncIterator]();
  await it.next();
  const registerToSeen = [];
  const deregisterToSeen = [];
  for (let i = 0; i < samples; i++) {
    const id = `pds-${i}`;
    let t0 = performance.now();
    await writer.register({ id, service: 'pds', address: '127.0.0.1', port: 3000 + (i % 1000) });
    for (;;) {
      const { value } = await it.next();
      if (value.some((r) => r.id === id)) break;
    }
    registerToSeen.push(performance.now() - t0);
    t0 = performance.now();
    await writer.deregister('pds', id);
    for (;;) {
      const { value } = await it.next();
      if (!value.some((r) => r.id === id)) break;
    }
    deregisterToSeen.push(performance.now() - t0);
  }
  ac.abort();
  await it.return?.();
  return { registerToSeen, deregisterToSeen };
}

const STARTUP_DEADLINE_MS = 20_000;

/** Poll `fn` until it resolves truthy; throws after STARTUP_DEADLINE_MS. */
export async function until(what, fn) {
  const deadline = Date.now() + STARTUP_DEADLINE_MS;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function binary(name) {
  return ['/usr/bin', '/usr/sbin', '/usr/local/bin'].map((d) => path.join(d, name)).find((p) => existsSync(p)) ?? name;
}

/** Spawn a server; `stop()` kills it and removes its temp dir. */
function server(cmd, args, root) {
  const child = spawn(binary(cmd), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output = (output + d).slice(-8000)));
  child.stderr.on('data', (d) => (output = (output + d).slice(-8000)));
  return {
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** etcd on free loopback ports in a temp dir: `{ endpoint, output, stop }`. */
export async function startEtcd() {
  const root = await mkdtemp(path.join(tmpdir(), 'stack-bench-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const s = server(
    'etcd',
    ['--name', 'default', '--data-dir', path.join(root, 'data'), '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `default=${peerUrl}`, '--log-level', 'error'],
    root,
  );
  await until('etcd', async () => (await (await fetch(`${endpoint}/health`)).json()).health === 'true');
  return { ...s, endpoint };
}

/** nats-server (JetStream unless `jetstream: false`) on a free loopback port: `{ url, output, stop }`. */
export async function startNats({ jetstream = true } = {}) {
  const root = await mkdtemp(path.join(tmpdir(), 'stack-bench-nats-'));
  const port = await freePort();
  const s = server('nats-server', ['-a', '127.0.0.1', '-p', String(port), ...(jetstream ? ['-js', '-sd', path.join(root, 'js')] : [])], root);
  await until('nats-server', async () => s.output().includes('Server is ready'));
  return { ...s, url: `nats://127.0.0.1:${port}` };
}
