/**
 * Turn "something may have changed" notifications into a watch: an async iterable of full
 * instance lists, the current list first, then one per real change.
 *
 * Backends supply how to load the list and how to hear about changes (an in-process emitter,
 * fs.watch, a poll); this helper owns the rest, which is where watches usually go wrong:
 * no change is lost between a load and the next wait, bursts of notifications collapse into one
 * load, heartbeats that only move `expiresAt` are not changes, expiry is a change even when
 * nobody writes anything, and an abort ends a pending `next()` at once.
 */
import { earliestExpiry, topologyFingerprint } from './record.js';
import type { ServiceInstance } from './types.js';

export interface ListWatchSource {
  /** The current full list (already without expired records). */
  load(): Promise<ServiceInstance[]>;
  /** Start listening; call `changed` whenever the list may have changed. Returns the unsubscribe. */
  subscribe(changed: () => void): () => void;
}

/**
 * Add `changed` to the listeners of `service` in a per-service listener map (the backends that
 * notify their own watchers); the returned unsubscribe drops the service's entry with its last listener.
 */
export function addServiceListener(listeners: Map<string, Set<() => void>>, service: string, changed: () => void): () => void {
  const set = listeners.get(service) ?? new Set();
  set.add(changed);
  listeners.set(service, set);
  return () => {
    set.delete(changed);
    if (set.size === 0) listeners.delete(service);
  };
}

/** Resolves when the signal aborts; never rejects. */
export function abortPromise(signal: AbortSignal): { promise: Promise<void>; dispose(): void } {
  if (signal.aborted) return { promise: Promise.resolve(), dispose() {} };
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  const onAbort = (): void => resolve();
  signal.addEventListener('abort', onAbort, { once: true });
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}

/** One signal that aborts when any of the given ones does. */
export function anySignal(signals: (AbortSignal | undefined)[]): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 1) return present[0]!;
  return AbortSignal.any(present);
}

export async function* watchList(source: ListWatchSource, signal: AbortSignal): AsyncGenerator<ServiceInstance[], void, undefined> {
  let dirty = true;
  let wake: (() => void) | undefined;
  const changed = (): void => {
    dirty = true;
    wake?.();
  };
  const aborted = abortPromise(signal);
  const unsubscribe = source.subscribe(changed);
  let expiryTimer: NodeJS.Timeout | undefined;
  try {
    let last: string | undefined;
    while (!signal.aborted) {
      if (!dirty) {
        await Promise.race([new Promise<void>((r) => (wake = r)), aborted.promise]);
        wake = undefined;
        continue;
      }
      dirty = false;
      const list = await source.load();
      if (signal.aborted) break;

      // Expiry changes the list without any write: look again just after the earliest expiry.
      clearTimeout(expiryTimer);
      const expiry = earliestExpiry(list);
      if (expiry !== undefined) {
        expiryTimer = setTimeout(changed, Math.max(0, expiry - Date.now()) + 5);
        expiryTimer.unref();
      }

      const fingerprint = topologyFingerprint(list);
      if (fingerprint !== last) {
        last = fingerprint;
        yield list;
      }
    }
  } finally {
    clearTimeout(expiryTimer);
    unsubscribe();
    aborted.dispose();
  }
}
