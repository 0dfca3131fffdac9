import type { ManualClock } from '../../src/util/clock.js';

/**
 * Drive a manual clock timer by timer until `promise` settles; returns its outcome. Bounded, so a
 * bug that never settles fails the test instead of hanging it.
 */
export async function runClock<T>(clock: ManualClock, promise: Promise<T>, maxTimers = 10_000): Promise<{ value?: T; error?: unknown }> {
  let outcome: { value?: T; error?: unknown } | undefined;
  promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  for (let i = 0; i < maxTimers && !outcome; i++) {
    if (!(await clock.advanceToNext()) && !outcome) await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setImmediate(resolve));
  if (!outcome) throw new Error('the promise did not settle');
  return outcome;
}
