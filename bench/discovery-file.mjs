// File backend benchmark: watch propagation (register → a watcher in the same process sees the
// new list), median and p99, against a baseline measured in the same run: the raw fs.watch
// notification of one atomic write (temp file + rename) in the same kind of folder.
//
//   npx tsc -p tsconfig.build.json && node bench/discovery-file.mjs
//
// Target (issue 6): p99 under 50 ms.
import { watch } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createFileBackend } from '../dist/discovery/file.js';
import { atomicWrite } from '../dist/util/fs.js';
import { measureWatchPropagation, summary } from './lib.mjs';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);


const root = await mkdtemp(path.join(tmpdir(), 'stack-bench-file-'));
try {
  // Baseline: how long the kernel and libuv take to tell fs.watch about an atomic write.
  const rawDir = path.join(root, 'raw');
  await mkdir(rawDir);
  const baseline = [];
  {
    let notify;
    const watcher = watch(rawDir, () => notify?.());
    for (let i = 0; i < SAMPLES; i++) {
      const seen = new Promise((r) => (notify = r));
      const t0 = performance.now();
      await atomicWrite(path.join(rawDir, `x-${i}.json`), '{}');
      await seen;
      baseline.push(performance.now() - t0);
      notify = undefined;
    }
    watcher.close();
  }

  // The file backend: register, and wait for the watcher to yield a list holding the new id.
  const writer = createFileBackend({ directory: path.join(root, 'disc'), ttlMs: 60_000 });
  const reader = createFileBackend({ directory: path.join(root, 'disc'), ttlMs: 60_000 });
  const { registerToSeen, deregisterToSeen } = await measureWatchPropagation(writer, reader, SAMPLES);
  await writer.close();
  await reader.close();

  const rows = [summary('baseline: fs.watch event after atomic write', baseline), summary('file backend: register → watcher sees it', registerToSeen), summary('file backend: deregister → watcher sees it', deregisterToSeen)];
  const base = rows[0].median;
  console.log(`\nFile discovery: watch propagation (${SAMPLES} samples each, ms)`);
  console.log('| case | median | p99 | max | median vs baseline |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.label} | ${r.median.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(2)} | ${(r.median / base).toFixed(2)} |`);
  const p99 = rows[1].p99;
  console.log(`\nregister → seen p99 ${p99.toFixed(2)} ms: ${p99 < 50 ? 'under' : 'NOT under'} the 50 ms target`);
} finally {
  await rm(root, { recursive: true, force: true });
}
