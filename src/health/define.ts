/** Helpers for health strategy definitions (`drivers/`). */
import type { HealthStrategy, HealthStrategyName } from './types.js';

/** Keys present in `raw` with a value, copied (a profile's left-out keys stay out). */
export function definedOnly<T extends object>(raw: T): Partial<T> {
  return Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * A strategy whose implementation module loads on its first probe, so that listing the
 * definitions (as `stack validate` does) costs nothing.
 */
export function lazyStrategy(name: HealthStrategyName, load: () => Promise<HealthStrategy>): HealthStrategy {
  let loaded: Promise<HealthStrategy> | undefined;
  return {
    name,
    async probe(check, target, signal) {
      loaded ??= load();
      return (await loaded).probe(check, target, signal);
    },
  };
}
