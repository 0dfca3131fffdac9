import net from 'node:net';

/**
 * A free TCP port on `host`, below Linux's ephemeral range (32768+): a port the OS hands out
 * there (listen(0), any outgoing connection) can be taken by another test's process between
 * this pick and the service binding it; nothing takes one below the range unasked.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return freePortRange(1, host);
}

/**
 * `count` consecutive free TCP ports on 127.0.0.1, for replicas that listen on `port + index`.
 * Taken below Linux's ephemeral range (32768+), where outgoing connections of other tests take
 * their local ports, so `port + 1` is not some client's a moment later.
 */
export async function freePortRange(count: number, host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const first = 20_000 + Math.floor(Math.random() * (12_000 - count));
    const ports = Array.from({ length: count }, (_, i) => first + i);
    if (ports.some((p) => handedOut.has(p))) continue; // this process may not have bound it yet
    if ((await Promise.all(ports.map((p) => bindable(p, host)))).every(Boolean)) {
      for (const p of ports) handedOut.add(p);
      return first;
    }
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/** Ports this process was given: never handed out twice. */
const handedOut = new Set<number>();

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** Poll `fn` until it returns truthy or the deadline passes. For test fixtures only. */
export async function waitFor<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` (or `host`:`port`). */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
