// The YAML loader at scale (issue 10 item 8): validate + plan a generated 10,000-service profile
// written as YAML, against two baselines measured in the same run, interleaved, median of N:
//   - `yaml.parse` of the same text: what the loader paid before (the positioned parser alone);
//   - validate + plan of the same data written as JSON (read with JSON.parse).
// A valid YAML profile is read by js-yaml (YAML 1.2 core schema) and the positioned `yaml` parse
// runs only when a problem must be reported; the last line checks that one such problem still
// names its exact line. Target: validate + plan under 1.5 s.
// Run: npm run build && node --expose-gc bench/yaml-scale.mjs [runs=5]
// (with --expose-gc, garbage from one measurement is collected before the next starts)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { buildGraph } from '../dist/graph/graph.js';
import { planStack } from '../dist/plan/plan.js';
import { inspectProfile } from '../dist/profile/load.js';
import { median, randomDag } from './lib.mjs';

const runs = Number(process.argv[2] ?? 5);

const gc = globalThis.gc ?? (() => {});

function validateAndPlan(file) {
  gc();
  const t = performance.now();
  const result = inspectProfile(file, { env: {} });
  if (!result.profile) throw new Error(result.problems.slice(0, 3).map((p) => p.message).join('; '));
  const { graph } = buildGraph(result.profile);
  planStack(result.profile, graph);
  return performance.now() - t;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'stack-bench-'));
try {
  const text = randomDag(10_000, 3);
  const yamlFile = path.join(dir, 'stack.yaml');
  const jsonFile = path.join(dir, 'stack.json');
  writeFileSync(yamlFile, text);
  writeFileSync(jsonFile, JSON.stringify(parse(text)));
  const samples = { yaml: [], json: [], parse: [] };
  validateAndPlan(yamlFile); // warm-up: module loading is not what is measured
  validateAndPlan(jsonFile);
  for (let i = 0; i < runs; i++) {
    gc();
    const t = performance.now();
    parse(text, { maxAliasCount: 100 });
    samples.parse.push(performance.now() - t);
    samples.yaml.push(validateAndPlan(yamlFile));
    samples.json.push(validateAndPlan(jsonFile));
  }
  const [y, j, p] = [median(samples.yaml), median(samples.json), median(samples.parse)];
  console.log(`10,000 services (${(text.length / 1e6).toFixed(2)} MB of YAML), median of ${runs}:`);
  console.log(`  YAML validate + plan ${y.toFixed(0)} ms; baseline yaml.parse alone ${p.toFixed(0)} ms (ratio ${(y / p).toFixed(2)}); same data as JSON ${j.toFixed(0)} ms (ratio ${(y / j).toFixed(2)})`);
  console.log(`  target < 1500 ms: ${y < 1500 ? 'met' : 'MISSED'}`);

  // One problem near the end: the positioned parse runs, and the message names the line.
  const bad = `${text.trimEnd()}\n  broken: { command: [x], prot: 1 }\n`;
  writeFileSync(yamlFile, bad);
  const t = performance.now();
  const problem = inspectProfile(yamlFile, { env: {} }).problems.find((p) => p.code === 'unknown_key');
  const took = performance.now() - t;
  const line = bad.split('\n').length - 1;
  if (problem?.line !== line) throw new Error(`expected the problem at line ${line}, got ${JSON.stringify(problem)}`);
  console.log(`  with one unknown key: reported at ${problem.file}:${problem.line}:${problem.column} in ${took.toFixed(0)} ms`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
