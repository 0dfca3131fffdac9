import http from 'node:http';
import https from 'node:https';
import { isLoopbackHost, remoteHostRefused } from './loopback.js';
import { describeAbort, probeSignal } from './timeout.js';
import type { HealthCheckSpec } from './registry.js';
import type { HealthStrategy, HealthStrategyDefinition, ProbeResult } from './types.js';

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
      if (!opts.allowRemoteHosts && !isLoopbackHost(host)) return remoteHostRefused(host);
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

/** The keys of `healthCheck` the http strategy owns, as written. */
export interface HttpCheckRaw {
  endpoint?: string;
  scheme?: 'http' | 'https';
  expectedStatus?: number | number[];
}
export interface HttpCheckOptions {
  /** Request path; default `/`. */
  endpoint?: string;
  scheme?: 'http' | 'https';
  /** Accepted status codes; default any 2xx. */
  expectedStatus?: number[];
}

export const httpHealth: HealthStrategyDefinition<'http', HttpCheckRaw, HttpCheckOptions> = {
  name: 'http',
  description: 'GET a path; healthy on a 2xx (or the expected statuses)',
  capabilities: { needsPort: true, needsContainer: false },
  options: (z) => {
    const status = z.int().min(100).max(599);
    return {
      endpoint: z.string().startsWith('/').optional().describe('http: request path, e.g. /xrpc/_health'),
      scheme: z.enum(['http', 'https']).optional(),
      expectedStatus: z.union([status, z.array(status)]).optional(),
    };
  },
  normalize: (raw) => ({
    endpoint: raw.endpoint ?? '/',
    ...(raw.scheme !== undefined ? { scheme: raw.scheme } : {}),
    ...(raw.expectedStatus !== undefined ? { expectedStatus: [raw.expectedStatus].flat() } : {}),
  }),
  describe: (hc) => `http ${hc.scheme ?? 'http'}://${hc.host ?? '127.0.0.1'}:${hc.port ?? '?'}${hc.endpoint ?? '/'}`,
  create: () => createHttpStrategy(),
};
