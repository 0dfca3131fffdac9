import net from 'node:net';
import { isLoopbackHost, remoteHostRefused } from './loopback.js';
import { describeAbort, probeSignal } from './timeout.js';
import type { HealthStrategy, ProbeResult } from './types.js';

export interface TcpStrategyOptions {
  /** Allow probing hosts other than loopback (off by default). */
  allowRemoteHosts?: boolean;
}

/** `tcp`: healthy when a connection to host:port is accepted; the connection is closed at once. */
export function createTcpStrategy(opts: TcpStrategyOptions = {}): HealthStrategy {
  return {
    name: 'tcp',
    async probe(check, target, signal) {
      const host = target.host ?? check.host ?? '127.0.0.1';
      if (!opts.allowRemoteHosts && !target.remoteAllowed && !isLoopbackHost(host)) return remoteHostRefused(host);
      const port = target.port ?? check.port;
      if (port === undefined) return { ok: false, detail: 'tcp check has no port' };
      return connect(host, port, probeSignal(signal, check.timeoutMs), check.timeoutMs);
    },
  };
}

function connect(host: string, port: number, signal: AbortSignal, timeoutMs: number): Promise<ProbeResult> {
  const where = `${host}:${port}`;
  return new Promise<ProbeResult>((resolve) => {
    const socket = net.connect({ host, port, signal });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ ok: true, detail: `connected to ${where}` });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve({
        ok: false,
        detail: signal.aborted ? `connect to ${where}: ${describeAbort(signal, timeoutMs)}` : `connect to ${where} failed: ${err.code ?? err.message}`,
      });
    });
  });
}
