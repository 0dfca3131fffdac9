/** The http health strategy's definition; the implementation (`../http.ts`) loads on the first probe. */
import { lazyStrategy } from '../define.js';
import type { HealthStrategyDefinition } from '../types.js';

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
  create: () => lazyStrategy('http', async () => (await import('../http.js')).createHttpStrategy()),
};
