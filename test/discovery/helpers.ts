/**
 * Shared by the discovery backend tests: test doubles built on real backends (they count, or fail
 * on demand, and otherwise pass through), a base config, throwaway TLS certificates, and checks
 * every networked backend gets.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { discoveryConfig } from '../../src/discovery/index.js';
import { UnreachableError } from '../../src/errors.js';
import type { DiscoveryBackend, ServiceInstance } from '../../src/discovery/types.js';
import type { DiscoveryConfig } from '../../src/profile/types.js';

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
  if (inner.markCritical) wrapper.markCritical = (s, id, note) => gate('markCritical', () => inner.markCritical!(s, id, note));
  async function gate<T>(method: string, run: () => Promise<T>): Promise<T> {
    calls[method] = (calls[method] ?? 0) + 1;
    // Answer asynchronously like a network backend would, so concurrent callers really overlap.
    await new Promise((r) => setImmediate(r));
    if (wrapper.down) throw new UnreachableError(name, `${name} is down`);
    return run();
  }
  return wrapper;
}

/** The default discovery config with no backend, short test timings and no etcd endpoint; `overrides` win. */
export function testDiscoveryConfig(overrides: Partial<DiscoveryConfig> = {}): DiscoveryConfig {
  return discoveryConfig({ backends: [], etcdEndpoints: [], ttlMs: 2000, heartbeatIntervalMs: 500, ...overrides });
}

/** The ids of a lookup or watch result, in order. */
export const ids = (list: ServiceInstance[]): string[] => list.map((i) => i.id);

/** What `b.check()` rejects with, or undefined if it succeeds. */
export function checkError(b: DiscoveryBackend): Promise<UnreachableError | undefined> {
  return b.check().then(
    () => undefined,
    (e: unknown) => e as UnreachableError,
  );
}

/** `err` is an UnreachableError whose message shows none of `secrets`. */
export function expectUnreachableWithout(err: Error | undefined, secrets: string[]): void {
  expect(err).toBeInstanceOf(UnreachableError);
  for (const secret of secrets) expect(err?.message).not.toContain(secret);
}

/** Closing `b` ends a watch that is waiting for its next list. */
export async function expectCloseEndsWatches(b: DiscoveryBackend): Promise<void> {
  const it = b.watch('closing')[Symbol.asyncIterator]();
  expect((await it.next()).done).toBe(false);
  const pending = it.next();
  await b.close();
  const r = await Promise.race([pending, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 20_000))]);
  expect(r).toMatchObject({ done: true });
}

/** A throwaway CA and a server certificate for 127.0.0.1, made with openssl in a temp dir. */
export async function loopbackCertificates(): Promise<{ dir: string; ca: string; cert: string; key: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stack-tls-'));
  const at = (f: string) => path.join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  run(['req', '-x509', ...ec, '-keyout', at('ca.key'), '-out', at('ca.crt'), '-days', '1', '-subj', '/CN=stack-test-ca']);
  run(['req', ...ec, '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=127.0.0.1']);
  await writeFile(at('ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  run([
    'x509',
    '-req',
    '-in',
    at('server.csr'),
    '-CA',
    at('ca.crt'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-out',
    at('server.crt'),
    '-days',
    '1',
    '-extfile',
    at('ext'),
  ]);
  return { dir, ca: at('ca.crt'), cert: at('server.crt'), key: at('server.key') };
}
