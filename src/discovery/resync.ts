/**
 * Pieces the server-backed backends (etcd, NATS, Consul) share: decoding stored records, keeping
 * credentials out of addresses, and a watch that survives outages by re-reading full lists.
 */
import { StackError } from '../errors.js';
import { pause } from '../util/clock.js';
import { backoffAt, type BackoffOptions } from '../util/retry.js';
import { parseRecord, topologyFingerprint } from './record.js';
import type { ServiceInstance } from './types.js';

/** A stored value back to a record; anything else stored beside our records is not an instance. */
export function parseStored(value: string): ServiceInstance[] {
  try {
    const record = parseRecord(JSON.parse(value));
    return record ? [record] : [];
  } catch {
    return [];
  }
}

/** An address without its `user:password@` part, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@]*@/, '//');
}

/**
 * Runs calls that share a key one at a time, in order (a failed call does not stop the next);
 * a key with nothing queued takes no memory.
 */
export function createKeyedQueue(): <T>(key: string, op: () => Promise<T>) => Promise<T> {
  const queues = new Map<string, Promise<unknown>>();
  return <T>(key: string, op: () => Promise<T>): Promise<T> => {
    const next = (queues.get(key) ?? Promise.resolve()).then(op, op);
    const tail = next.catch(() => undefined);
    queues.set(key, tail);
    void tail.then(() => {
      if (queues.get(key) === tail) queues.delete(key);
    });
    return next;
  };
}

export interface ResyncSource {
  read(): Promise<ServiceInstance[]>;
  stop(): Promise<void>;
}

/**
 * Turn "something changed" notifications into a stream of full lists: re-read on every
 * notification and yield when the list differs from the last one yielded. Reading the whole
 * list (rather than applying events) makes resynchronisation after a reconnect the normal path.
 * A failed read is retried with backoff; the watch ends only when the signal aborts or the
 * consumer stops iterating.
 */
export async function* watchByResync(signal: AbortSignal | undefined, open: (notify: () => void) => Promise<ResyncSource>): AsyncGenerator<ServiceInstance[]> {
  let dirty = true;
  let wake: (() => void) | undefined;
  const notify = () => {
    dirty = true;
    wake?.();
  };
  const onAbort = () => wake?.();
  signal?.addEventListener('abort', onAbort);
  const source = await open(notify);
  let last: string | undefined;
  let failures = 0;
  try {
    while (!signal?.aborted) {
      if (dirty) {
        dirty = false;
        try {
          // A read that hangs (a server gone mid-request) must not stall the watch forever.
          const list = await withTimeout(source.read(), READ_TIMEOUT_MS);
          failures = 0;
          const fingerprint = topologyFingerprint(list);
          if (fingerprint !== last) {
            last = fingerprint;
            yield list;
            continue;
          }
        } catch (err) {
          // The backend was closed under the watch: nothing will ever come again.
          if (err instanceof StackError && err.code === 'closed') return;
          // Backend away: try again shortly; the watch itself must survive the outage.
          dirty = true;
          failures++;
          await pause(backoffAt(failures, RECONNECT_BACKOFF), signal);
          continue;
        }
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (dirty || signal?.aborted) resolve();
      });
      wake = undefined;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await source.stop();
  }
}

const READ_TIMEOUT_MS = 10_000;

/** Retry delays of a backend's watch or read after a failure: 50 ms doubling up to 2 s (attempt 1 waits 100 ms). */
export const RECONNECT_BACKOFF: BackoffOptions = { initialDelayMs: 50, factor: 2, maxDelayMs: 2000 };

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
