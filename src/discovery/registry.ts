/**
 * Every discovery backend, one line each. The profile schema (enum and option keys), the
 * normalised defaults, `DiscoveryConfig`, and the masking of secrets in printed profiles are all
 * derived from this list. Adding a backend: its definition in `drivers/<name>.ts` (copy
 * `drivers/etcd.ts`), its implementation in `<name>.ts` (copy `memory.ts`), one line here, and one
 * line in `test/discovery/` running the conformance suite.
 *
 * Importing this file is cheap (`stack validate` does): a definition loads its implementation
 * when a backend is created, and the implementation its client library on first use.
 */
import type { UnionToIntersection } from '../util/driver.js';
import { consulDriver } from './drivers/consul.js';
import { dnsDriver } from './drivers/dns.js';
import { envDriver } from './drivers/env.js';
import { etcdDriver } from './drivers/etcd.js';
import { fileDriver } from './drivers/file.js';
import { memoryDriver } from './drivers/memory.js';
import { natsDriver } from './drivers/nats.js';
import { sqlDriver } from './drivers/sql.js';
import type { DiscoveryCommonConfig, DiscoveryDriver } from './types.js';

export const DISCOVERY_DRIVERS = [consulDriver, etcdDriver, dnsDriver, fileDriver, envDriver, natsDriver, sqlDriver, memoryDriver] as const;

type AnyDiscoveryDriver = (typeof DISCOVERY_DRIVERS)[number];
export type DiscoveryBackendName = AnyDiscoveryDriver['name'];
export const DISCOVERY_BACKEND_NAMES = DISCOVERY_DRIVERS.map((d) => d.name) as readonly DiscoveryBackendName[] as readonly [
  DiscoveryBackendName,
  ...DiscoveryBackendName[],
];

type OptionsOf<D> = D extends DiscoveryDriver<string, infer O> ? O : never;
/** Every backend's options, as one flat type (the keys are prefixed with the backend's name). */
export type DiscoveryDriverOptions = UnionToIntersection<OptionsOf<AnyDiscoveryDriver>>;
/** Every backend's options as written in a profile (each may be left out). */
export type DiscoveryRawOptions = Partial<DiscoveryDriverOptions>;
/** The normalised `discovery:` section of a profile. */
export type DiscoveryConfig = DiscoveryCommonConfig & DiscoveryDriverOptions;

/** The backend the profile leaves out `backend(s)`. */
export const DEFAULT_DISCOVERY_BACKENDS: readonly DiscoveryBackendName[] = ['file'];
/** Common settings a profile leaves out. */
export const DISCOVERY_COMMON_DEFAULTS = { ttlMs: 30_000, heartbeatIntervalMs: 10_000 } as const;

export function discoveryDriver(name: string): AnyDiscoveryDriver | undefined {
  return DISCOVERY_DRIVERS.find((d) => d.name === name);
}

/** The defaults of every backend's options, in one object. */
export function discoveryDriverDefaults(): DiscoveryDriverOptions {
  return Object.assign({}, ...DISCOVERY_DRIVERS.map((d) => structuredClone(d.defaults))) as DiscoveryDriverOptions;
}

export const MASK = '••••';

/** `nats://user:pass@host` → `nats://user:••••@host`; a URL without a password is unchanged. */
export function maskUrlPassword(url: string): string {
  return url.replace(/(\/\/[^/@:]*:)[^/@]*@/, `$1${MASK}@`);
}

/**
 * The settings as they may be printed: every backend's secret options masked, and passwords
 * embedded in its URL options too, because its definition says which options those are.
 */
export function redactDiscoveryConfig(config: DiscoveryConfig): DiscoveryConfig {
  const out: Record<string, unknown> = { ...config };
  const drivers: readonly DiscoveryDriver<string, Record<string, unknown>>[] = DISCOVERY_DRIVERS as never;
  for (const driver of drivers) {
    for (const key of driver.secretOptions) if (out[key] !== undefined && out[key] !== '') out[key] = MASK;
    for (const key of driver.urlOptions ?? []) {
      const value = out[key];
      if (typeof value === 'string') out[key] = maskUrlPassword(value);
      else if (Array.isArray(value)) out[key] = (value as unknown[]).map((v) => (typeof v === 'string' ? maskUrlPassword(v) : v));
    }
  }
  return out as DiscoveryConfig;
}

/** The secret values of these settings (secret options and URL passwords), for maskers of free text. */
export function discoverySecretValues(config: DiscoveryConfig): string[] {
  const values: string[] = [];
  const record = config as unknown as Record<string, unknown>;
  const drivers: readonly DiscoveryDriver<string, Record<string, unknown>>[] = DISCOVERY_DRIVERS as never;
  for (const driver of drivers) {
    for (const key of driver.secretOptions) if (typeof record[key] === 'string' && record[key] !== '') values.push(record[key]);
    for (const key of driver.urlOptions ?? []) {
      for (const url of [record[key]].flat()) {
        const password = typeof url === 'string' ? /\/\/[^/@:]*:([^/@]+)@/.exec(url)?.[1] : undefined;
        if (password) values.push(password);
      }
    }
  }
  return values;
}
