/**
 * A probe's own I/O timeout runs on real time (it bounds a socket or a child process, which the
 * swappable clock cannot speed up); the caller's signal cancels it early.
 */
export function probeSignal(signal: AbortSignal, timeoutMs: number): AbortSignal {
  return timeoutMs > 0 ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : signal;
}

/** "timed out after N ms" when our own timeout fired, "aborted" when the caller cancelled. */
export function describeAbort(signal: AbortSignal, timeoutMs: number): string {
  const reason: unknown = signal.reason;
  return reason instanceof DOMException && reason.name === 'TimeoutError' ? `timed out after ${timeoutMs} ms` : 'aborted';
}

/** `promise`, or a rejection with the signal's reason once it aborts (for calls that take no signal). */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
