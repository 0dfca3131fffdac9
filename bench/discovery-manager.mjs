// Discovery manager benchmark: cached lookups per second against a plain Map.get loop measured
// in the same run, and the coalescing of concurrent cold lookups into one backend request.
//
//   npx tsc -p tsconfig.build.json && node bench/discovery-manager.mjs
//
// Targets (issue 6): at least 1,000,000 cached lookups/s; 1,000 concurrent cold lookups of one
// role cause exactly one backend request.
import { createDiscoveryManager } from '../dist/discovery/manager.js';
import { createMemoryBackend } from '../dist/discovery/memory.js';

const N = Number(process.env.BENCH_N ?? 5_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

/** Best of several rounds (the least disturbed by other work on a shared machine). */
async function opsPerSecond(label, run) {
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    await run(N);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.max(best, N / seconds);
  }
  return { label, opsPerSecond: best };
}

const backend = createMemoryBackend();
let backendLookups = 0;
const counting = { ...backend, lookup: async (s) => { backendLookups++; await new Promise((r) => setImmediate(r)); return backend.lookup(s); } };
const manager = createDiscoveryManager({ backends: [counting], cacheTtlMs: 60_000 });
await manager.register({ id: 'pds-1', service: 'pds', address: '127.0.0.1', port: 3000 });
await manager.lookup('pds'); // warm the cache

const map = new Map([['pds', [{ id: 'pds-1' }]]]);
let sink;
const results = [];
results.push(await opsPerSecond('baseline: Map.get (sync loop)', async (n) => { for (let i = 0; i < n; i++) sink = map.get('pds'); }));
results.push(await opsPerSecond('baseline: await Map.get (async loop)', async (n) => { for (let i = 0; i < n; i++) sink = await map.get('pds'); }));
results.push(await opsPerSecond('manager.lookup, cached (await each)', async (n) => { for (let i = 0; i < n; i++) sink = await manager.lookup('pds'); }));
if (sink === undefined) throw new Error('unreachable');

const base = results[0].opsPerSecond;
console.log(`\nDiscovery manager: cached lookups (N=${N.toLocaleString('en')}, best of ${ROUNDS})`);
console.log('| case | lookups/s | vs Map.get |');
console.log('|---|---:|---:|');
for (const r of results) console.log(`| ${r.label} | ${Math.round(r.opsPerSecond).toLocaleString('en')} | ${(r.opsPerSecond / base).toFixed(3)} |`);

// Coalescing: concurrent cold lookups of one role.
const coalescing = [];
for (const concurrency of [1_000, 10_000]) {
  manager.invalidate();
  backendLookups = 0;
  await Promise.all(Array.from({ length: concurrency }, () => manager.lookup('pds')));
  coalescing.push({ concurrency, backendLookups });
}
console.log('\nCoalescing: concurrent cold lookups of one role');
console.log('| concurrent lookups | backend requests |');
console.log('|---:|---:|');
for (const c of coalescing) console.log(`| ${c.concurrency.toLocaleString('en')} | ${c.backendLookups} |`);

const cached = results[2].opsPerSecond;
console.log(`\ncached lookups/s ${cached >= 1_000_000 ? '>=' : '<'} 1,000,000 target: ${cached >= 1_000_000 ? 'met' : 'NOT met'}`);
await manager.close();
