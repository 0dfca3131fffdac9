import { UsageError } from '../../errors.js';
import type { Output } from '../output.js';
import { run as plan } from './plan.js';

export async function run(opts: Record<string, unknown>, o: Output): Promise<number> {
  if (opts.dryRun) return plan(opts, o);
  throw new UsageError('`stack up` is not available yet');
}
