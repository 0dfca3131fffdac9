/**
 * Zero-configuration clients: how a service `stack` starts learns where the
 * stack's discovery is, in one environment variable, and how the library reads it back.
 *
 *   STACK_DISCOVERY={"backends":["etcd"],"ttlMs":30000,"heartbeatIntervalMs":10000,"etcdEndpoints":[…],…}
 *   STACK_DISCOVERY=/abs/path/.stack/<stack>/discovery-client.json      (when there are secrets)
 *   DISCOVERY_KIND=nats                                                 (pick backends by name)
 *
 * The value holds the profile's `discovery:` settings for its backends only, with every path made
 * absolute (the service may run in another folder). Secrets (passwords, tokens, a password in a
 * URL) never go into the environment: when there are any, the settings are written to a file of
 * mode 0600 in the stack's state folder and the variable holds its absolute path, the way the
 * services' own secrets are kept under `.stack/`. `DISCOVERY_KIND` (comma-separated backend
 * names) overrides the backends, with defaults for the rest. `memory` is monolith mode: every
 * client of one process shares one in-process registry, and nothing else is needed.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../errors.js';
import { DISCOVERY_BACKEND_NAMES, discoveryDriver, discoverySecretValues, type DiscoveryBackendName, type DiscoveryConfig } from './registry.js';
import type { DiscoveryBackend } from './types.js';

/** The variable a started service finds its stack's discovery in. */
export const STACK_DISCOVERY_VARIABLE = 'STACK_DISCOVERY';
/** Selects backends by name (comma-separated), e.g. `DISCOVERY_KIND=nats`. */
export const DISCOVERY_KIND_VARIABLE = 'DISCOVERY_KIND';
/** The file the settings go to when they hold secrets, in the stack's state folder. */
export const DISCOVERY_CLIENT_FILE = 'discovery-client.json';

export interface DiscoveryEnvironmentOptions {
  /** The stack's state folder (`.stack/<stack>`): where the settings file goes when needed. */
  stateDir: string;
  /** What relative paths in the profile are relative to; default the working directory. */
  cwd?: string;
}

/**
 * The variable every service `stack` starts gets: `{ STACK_DISCOVERY: … }`. Writes the 0600
 * settings file when the settings hold a secret.
 */
export function discoveryEnvironmentFor(config: DiscoveryConfig, opts: DiscoveryEnvironmentOptions): Record<string, string> {
  const settings = clientSettings(config, opts.cwd ?? process.cwd());
  const json = JSON.stringify(settings);
  if (discoverySecretValues(settings).length === 0) return { [STACK_DISCOVERY_VARIABLE]: json };
  const stateDir = path.resolve(opts.cwd ?? process.cwd(), opts.stateDir);
  mkdirSync(stateDir, { recursive: true });
  const file = path.join(stateDir, DISCOVERY_CLIENT_FILE);
  writeFileSync(file, `${json}\n`, { mode: 0o600 });
  chmodSync(file, 0o600); // an older file keeps its mode on rewrite
  return { [STACK_DISCOVERY_VARIABLE]: file };
}

/** The settings a client needs: common ones, and the options of the configured backends, paths absolute. */
export function clientSettings(config: DiscoveryConfig, cwd: string): DiscoveryConfig {
  const record = config as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { backends: [...config.backends], ttlMs: config.ttlMs, heartbeatIntervalMs: config.heartbeatIntervalMs };
  // Flat-key convention: a backend's options start with its name (etcdEndpoints, natsUrl, sqlUrl).
  for (const name of config.backends) {
    for (const [key, value] of Object.entries(record)) if (key.startsWith(name) && value !== undefined) out[key] = structuredClone(value);
  }
  const abs = (p: string) => path.resolve(cwd, p);
  if (typeof out.fileDirectory === 'string') out.fileDirectory = abs(out.fileDirectory);
  if (typeof out.natsCredsFile === 'string') out.natsCredsFile = abs(out.natsCredsFile);
  if (typeof out.sqlUrl === 'string' && out.sqlUrl.startsWith('sqlite:') && !out.sqlUrl.startsWith('sqlite://')) {
    out.sqlUrl = `sqlite://${abs(out.sqlUrl.slice('sqlite:'.length))}`;
  }
  if (config.tls) {
    const { ca, cert, key, insecureSkipVerify } = config.tls;
    out.tls = { insecureSkipVerify, ...(ca ? { ca: abs(ca) } : {}), ...(cert ? { cert: abs(cert) } : {}), ...(key ? { key: abs(key) } : {}) };
  }
  return out as unknown as DiscoveryConfig;
}

/**
 * The discovery settings in the environment (`STACK_DISCOVERY`, `DISCOVERY_KIND`), or undefined
 * when neither is set. Bad values are an InvalidInputError naming the variable.
 */
export function discoveryConfigFromEnv(env: Record<string, string | undefined> = process.env): Partial<DiscoveryConfig> | undefined {
  const raw = env[STACK_DISCOVERY_VARIABLE]?.trim();
  const kind = env[DISCOVERY_KIND_VARIABLE]?.trim();
  if (!raw && !kind) return undefined;
  const settings: Record<string, unknown> = raw ? readSettings(raw) : {};
  if (kind)
    settings.backends = kind
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const backends = settings.backends;
  if (backends !== undefined) {
    const where = kind ? DISCOVERY_KIND_VARIABLE : `${STACK_DISCOVERY_VARIABLE}.backends`;
    if (!Array.isArray(backends) || backends.length === 0) throw invalid(where, 'must name at least one discovery backend');
    for (const name of backends) {
      if (typeof name !== 'string' || !discoveryDriver(name)) {
        throw invalid(where, `unknown discovery backend '${String(name)}' (known: ${DISCOVERY_BACKEND_NAMES.join(', ')})`);
      }
    }
  }
  return settings;
}

function readSettings(raw: string): Record<string, unknown> {
  let text = raw;
  if (!raw.startsWith('{')) {
    const file = raw.startsWith('file://') ? new URL(raw).pathname : raw;
    if (!path.isAbsolute(file)) throw invalid(STACK_DISCOVERY_VARIABLE, 'is neither JSON nor an absolute path of a JSON file');
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw invalid(STACK_DISCOVERY_VARIABLE, `cannot read ${file}: ${(err as Error).message}`);
    }
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw invalid(STACK_DISCOVERY_VARIABLE, `is not a JSON object of discovery settings (${(err as Error).message})`);
  }
}

function invalid(variable: string, message: string): InvalidInputError {
  return new InvalidInputError([{ code: 'invalid_env', path: variable, message: `${variable} ${message}` }], 'invalid discovery settings in the environment');
}

let sharedMemory: Promise<DiscoveryBackend> | undefined;

/** Monolith mode: the one in-process registry every client of this process shares. */
export function sharedMemoryBackend(ttlMs?: number): Promise<DiscoveryBackend> {
  sharedMemory ??= import('./memory.js').then(({ createMemoryBackend }) => createMemoryBackend(ttlMs !== undefined ? { ttlMs } : {}));
  return sharedMemory;
}

/** True when these settings are monolith mode (memory only). */
export function isMonolith(backends: readonly DiscoveryBackendName[] | undefined): boolean {
  return backends !== undefined && backends.length === 1 && backends[0] === 'memory';
}
