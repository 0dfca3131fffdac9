import http from 'node:http';
import https from 'node:https';
import { isLoopbackHost, remoteHostRefused } from './loopback.js';
import { describeAbort, probeSignal } from './timeout.js';
import type { HealthCheckSpec } from './registry.js';
import type { HealthStrategy, ProbeResult } from './types.js';

export interface HttpStrategyOptions {
  /** Allow probing hosts other than loopback (off by default). */
  allowRemoteHosts?: boolean;
}

/**
 * `http`: GET `scheme://host:port endpoint`; healthy when the status is in `expectedStatus`
 * (default any 2xx). Like Kubernetes' httpGet probe, https does not verify the certificate: local
 * services commonly use self-signed ones, and the probe sends nothing secret.
 */
export function createHttpStrategy(opts: HttpStrategyOptions = {}): HealthStrategy {
  return {
    name: 'http',
    async probe(check, target, signal) {
      const host = target.host ?? check.host ?? '127.0.0.1';
      if (!opts.allowRemoteHosts && !target.remoteAllowed && !isLoopbackHost(host)) return remoteHostRefused(host);
      const port = target.port ?? check.port;
      if (port === undefined) return { ok: false, detail: 'http check has no port' };
      const url = buildUrl(check, host, port);
      return get(url, check, probeSignal(signal, check.timeoutMs));
    },
  };
}

function buildUrl(check: HealthCheckSpec, host: string, port: number): URL {
  const scheme = check.scheme ?? 'http';
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const path = check.endpoint ?? '/';
  return new URL(`${scheme}://${hostPart}:${port}${path.startsWith('/') ? path : `/${path}`}`);
}

function isExpected(status: number, expected: number[] | undefined): boolean {
  return expected && expected.length > 0 ? expected.includes(status) : status >= 200 && status < 300;
}

function get(url: URL, check: HealthCheckSpec, signal: AbortSignal): Promise<ProbeResult> {
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<ProbeResult>((resolve) => {
    const req = client.get(url, {
      signal,
      agent: false, // a fresh connection per probe: a stale keep-alive socket must not fake health
      headers: { connection: 'close', 'user-agent': 'atproto-stacks-health' },
      ...(url.protocol === 'https:' ? { rejectUnauthorized: false } : {}),
    });
    req.on('response', (res) => {
      res.resume(); // drain and discard the body
      const status = res.statusCode ?? 0;
      const ok = isExpected(status, check.expectedStatus);
      resolve({ ok, detail: `HTTP ${status} from GET ${url.pathname}` });
      req.destroy();
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (signal.aborted) {
        resolve({ ok: false, detail: describeAbort(signal, check.timeoutMs) });
      } else {
        resolve({ ok: false, detail: `GET ${url.pathname} failed: ${err.code ?? err.message}` });
      }
    });
  });
}
