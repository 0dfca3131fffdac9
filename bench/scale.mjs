// Scale: validate + plan a generated 10,000-service profile (random DAG, 3 edges each) and a
// 5,000-deep chain, in one process. Baseline in the same run: parsing the same YAML text with the
// `yaml` package alone (what any YAML-based tool must pay). Target: each under 1.5 s, no overflow.
// Run: npm run build && node bench/scale.mjs
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { buildGraph } from '../dist/graph/graph.js';
import { planStack } from '../dist/plan/plan.js';
import { inspectProfile } from '../dist/profile/load.js';
import { randomDag } from './lib.mjs';

/** The same profile as JSON (machine-generated profiles usually are). */
function asJson(yamlText) {
  return JSON.stringify(parse(yamlText));
}
function chain(n) {
  const lines = ['name: chain', 'runtime: process', 'services:'];
  for (let i = 0; i < n; i++) lines.push(`  s${i}: { command: [node, x.js], dependencies: [${i > 0 ? `s${i - 1}` : ''}] }`);
  return `${lines.join('\n')}\n`;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'stack-bench-'));
try {
  const dag = randomDag(10_000, 3);
  const deep = chain(5_000);
  for (const [label, text, ext, expectWaves] of [
    ['10,000-service random DAG (3 edges each), JSON', asJson(dag), 'json', undefined],
    ['5,000-deep chain, JSON', asJson(deep), 'json', 5_000],
    ['10,000-service random DAG (3 edges each), YAML', dag, 'yaml', undefined],
    ['5,000-deep chain, YAML', deep, 'yaml', 5_000],
  ]) {
    const file = path.join(dir, `stack.${ext}`);
    writeFileSync(file, text);
    let t = performance.now();
    if (ext === 'json') JSON.parse(text);
    else parse(text, { maxAliasCount: 100 });
    const baseline = performance.now() - t;
    t = performance.now();
    const result = inspectProfile(file, { env: {} });
    if (!result.profile) throw new Error(result.problems.slice(0, 3).map((p) => p.message).join('; '));
    const validated = performance.now() - t;
    const { graph } = buildGraph(result.profile);
    const plan = planStack(result.profile, graph);
    const total = performance.now() - t;
    if (expectWaves && plan.order.length !== expectWaves) throw new Error(`expected ${expectWaves} waves, got ${plan.order.length}`);
    console.log(`${label}: validate ${validated.toFixed(0)} ms, validate+plan ${total.toFixed(0)} ms (${plan.order.length} waves, critical chain ${plan.criticalChain.length}); baseline ${ext === 'json' ? 'JSON.parse' : 'yaml.parse'} ${baseline.toFixed(0)} ms; ratio ${(total / baseline).toFixed(2)}; target < 1500 ms: ${total < 1500 ? 'met' : 'MISSED'}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
