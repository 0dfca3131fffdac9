import { ExitCode } from '../../errors.js';
import { renderGraph, type GraphFormat } from '../../plan/render.js';
import type { CommonOptions } from '../common.js';
import { loadAndPlan } from '../load-plan.js';
import type { Output } from '../output.js';

export async function run(opts: CommonOptions & { format?: GraphFormat }, o: Output): Promise<number> {
  const { graph, plan } = loadAndPlan(opts, o);
  process.stdout.write(renderGraph(graph, plan, opts.json ? 'json' : (opts.format ?? 'dot')));
  return ExitCode.ok;
}
