// Helpers the benchmark scripts share. Loopback only.
import net from 'node:net';

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The upper median of a list of numbers. */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Median, p99 and max of samples (ms), for the propagation tables. */
export function summary(label, samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { label, median: quantile(s, 0.5), p99: quantile(s, 0.99), max: s[s.length - 1] };
}

/** Register / deregister through one backend, time until a watcher on another reflects it. */
export async function measureWatchPropagation(writer, reader, samples) {
  const ac = new AbortController();
  const it = reader.watch('pds', { signal: ac.signal })[Symbol.asyncIterator]();
  await it.next();
  const registerToSeen = [];
  const deregisterToSeen = [];
  for (let i = 0; i < samples; i++) {
    const id = `pds-${i}`;
    let t0 = performance.now();
    await writer.register({ id, service: 'pds', address: '127.0.0.1', port: 3000 + (i % 1000) });
    for (;;) {
      const { value } = await it.next();
      if (value.some((r) => r.id === id)) break;
    }
    registerToSeen.push(performance.now() - t0);
    t0 = performance.now();
    await writer.deregister('pds', id);
    for (;;) {
      const { value } = await it.next();
      if (!value.some((r) => r.id === id)) break;
    }
    deregisterToSeen.push(performance.now() - t0);
  }
  ac.abort();
  await it.return?.();
  return { registerToSeen, deregisterToSeen };
}
