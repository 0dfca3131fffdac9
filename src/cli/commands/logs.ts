import { UsageError } from '../../errors.js';
import type { Output } from '../output.js';

// Placeholder while the engine lands (issue 4); replaced before release.
export async function run(_opts: unknown, _o: Output): Promise<number> {
  throw new UsageError('`stack logs` is not available yet');
}
