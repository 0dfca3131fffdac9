// CLI latency: `stack validate --profile prod-cluster` against `node -e 0`, measured alternately in
// the same script so machine noise hits both alike. Reports medians and their ratio (target <= 2.0).
// Run: npm run build && node bench/cli-latency.mjs [runs]
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[2] ?? 30);
// prod-cluster's hosts' addresses, as its README section documents them (validate needs them).
const env = { PROD_DATA_ADDR: '10.0.0.12', PROD_APP_ADDR: '10.0.0.13', PROD_EDGE_ADDR: '10.0.0.11', ...process.env };
const time = (args) => {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'ignore', env });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
};
const baseline = [];
const stack = [];
for (let i = 0; i < 3; i++) time(['-e', '0']), time(['bin/stack.js', 'validate', '--profile', 'prod-cluster']); // warm the disk cache
for (let i = 0; i < runs; i++) {
  baseline.push(time(['-e', '0']));
  stack.push(time(['bin/stack.js', 'validate', '--profile', 'prod-cluster']));
}
const b = median(baseline);
const s = median(stack);
console.log(`runs: ${runs}`);
console.log(`node -e 0                            median ${b.toFixed(1)} ms`);
console.log(`stack validate --profile prod-cluster median ${s.toFixed(1)} ms`);
console.log(`ratio ${(s / b).toFixed(2)} (target <= 2.0)`);
