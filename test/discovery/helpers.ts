/** Test doubles built on real backends: they count, or fail on demand, and otherwise pass through. */
import { UnreachableError } from '../../src/errors.js';
import type { DiscoveryBackend } from '../../src/discovery/types.js';

export interface InstrumentedBackend extends DiscoveryBackend {
  /** Calls per method. */
  calls: Record<string, number>;
  /** While true, every call fails as if the server were down. */
  down: boolean;
}

/** Wrap a backend: count every call, and fail every call with UnreachableError while `down`. */
export function instrument(inner: DiscoveryBackend, name = inner.name): InstrumentedBackend {
  const calls: Record<string, number> = {};
  const wrapper: InstrumentedBackend = {
    name,
    capabilities: inner.capabilities,
    calls,
    down: false,
    register: (i, o) => gate('register', () => inner.register(i, o)),
    deregister: (s, id) => gate('deregister', () => inner.deregister(s, id)),
    heartbeat: (s, id) => gate('heartbeat', () => inner.heartbeat(s, id)),
    lookup: (s) => gate('lookup', () => inner.lookup(s)),
    list: () => gate('list', () => inner.list()),
    check: () => gate('check', () => inner.check()),
    close: () => inner.close(),
    watch(service, opts) {
      calls.watch = (calls.watch ?? 0) + 1;
      if (wrapper.down) {
        return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new UnreachableError(name, `${name} is down`)) }) };
      }
      return inner.watch(service, opts);
    },
  };
  if (inner.environmentFor) wrapper.environmentFor = (list) => inner.environmentFor!(list);
  async function gate<T>(method: string, run: () => Promise<T>): Promise<T> {
    calls[method] = (calls[method] ?? 0) + 1;
    // Answer asynchronously like a network backend would, so concurrent callers really overlap.
    await new Promise((r) => setImmediate(r));
    if (wrapper.down) throw new UnreachableError(name, `${name} is down`);
    return run();
  }
  return wrapper;
}
