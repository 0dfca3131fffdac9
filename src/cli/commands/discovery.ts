import { UsageError } from '../../errors.js';
import type { Output } from '../output.js';

// Placeholder while discovery lands (issue 6); replaced before release.
const notYet = async (_opts: unknown, _o: Output): Promise<number> => {
  throw new UsageError('`stack discovery` is not available yet');
};
export const ls = notYet;
export const watch = notYet;
export const register = notYet;
export const deregister = notYet;
export const test = notYet;
