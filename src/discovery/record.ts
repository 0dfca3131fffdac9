/**
 * Helpers every backend shares for records: stamping an input into a record, reading one back
 * from untrusted storage, expiry, and a fingerprint that says whether a list really changed.
 */
import { InvalidInputError, UnsupportedError } from '../errors.js';
import type { DiscoveryCapabilities, InstanceInput, ServiceInstance } from './types.js';

/** Names become file names and keys: DNS labels only (docs/architecture.md, "Names"). */
const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** Instance ids: letters, digits, `-`, `_`, `.`, `:`; no leading dot, no path separators. */
const INSTANCE_ID = /^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,252}$/;

export function assertServiceName(service: string): void {
  if (!SERVICE_NAME.test(service)) {
    throw new InvalidInputError(
      [{ code: 'invalid_name', path: 'service', message: `'${service}' is not a valid service name (a DNS label: a-z, 0-9, '-')` }],
      'invalid discovery record',
    );
  }
}

export function assertInstanceId(id: string): void {
  if (!INSTANCE_ID.test(id) || id.includes('..')) {
    throw new InvalidInputError(
      [{ code: 'invalid_name', path: 'id', message: `'${id}' is not a valid instance id (letters, digits, '-', '_', '.', ':')` }],
      'invalid discovery record',
    );
  }
}

/** Stamp an input into a record: copies tags and meta so callers cannot mutate what we store. */
export function toRecord(input: InstanceInput, ttlMs: number | undefined, now = Date.now()): ServiceInstance {
  assertServiceName(input.service);
  assertInstanceId(input.id);
  const record: ServiceInstance = {
    id: input.id,
    service: input.service,
    address: input.address,
    tags: [...(input.tags ?? [])],
    meta: { ...(input.meta ?? {}) },
    registeredAt: new Date(now).toISOString(),
  };
  if (input.port !== undefined) record.port = input.port;
  if (input.url !== undefined) record.url = input.url;
  if (ttlMs !== undefined && ttlMs > 0) record.expiresAt = new Date(now + ttlMs).toISOString();
  return record;
}

export function isExpired(record: ServiceInstance, now = Date.now()): boolean {
  return record.expiresAt !== undefined && Date.parse(record.expiresAt) <= now;
}

/** Earliest expiry in a list, as epoch milliseconds (undefined when nothing expires). */
export function earliestExpiry(list: readonly ServiceInstance[]): number | undefined {
  let earliest: number | undefined;
  for (const r of list) {
    if (r.expiresAt === undefined) continue;
    const t = Date.parse(r.expiresAt);
    if (earliest === undefined || t < earliest) earliest = t;
  }
  return earliest;
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

/**
 * Read a record from storage someone else may have written (a file, a KV value). Returns
 * undefined for anything that is not a well-formed record, so one bad entry never breaks a lookup.
 */
export function parseRecord(value: unknown): ServiceInstance | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.id !== 'string' || typeof v.service !== 'string' || typeof v.address !== 'string') return undefined;
  if (typeof v.registeredAt !== 'string' || Number.isNaN(Date.parse(v.registeredAt))) return undefined;
  if (v.port !== undefined && (typeof v.port !== 'number' || !Number.isInteger(v.port))) return undefined;
  if (v.url !== undefined && typeof v.url !== 'string') return undefined;
  if (v.expiresAt !== undefined && (typeof v.expiresAt !== 'string' || Number.isNaN(Date.parse(v.expiresAt)))) return undefined;
  const tags = v.tags ?? [];
  const meta = v.meta ?? {};
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string') || !isStringRecord(meta)) return undefined;
  const record: ServiceInstance = {
    id: v.id,
    service: v.service,
    address: v.address,
    tags: [...tags],
    meta: { ...meta },
    registeredAt: v.registeredAt,
  };
  if (v.port !== undefined) record.port = v.port;
  if (v.url !== undefined) record.url = v.url;
  if (v.expiresAt !== undefined) record.expiresAt = v.expiresAt;
  return record;
}

/** Sort by id, so lists compare and print the same whatever order storage returned them in. */
export function sortById(list: ServiceInstance[]): ServiceInstance[] {
  return list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * What makes two lists "the same topology": everything but `expiresAt`, which every heartbeat
 * moves. Watches use it to yield only real changes, not one list per heartbeat.
 */
export function topologyFingerprint(list: readonly ServiceInstance[]): string {
  return JSON.stringify(list.map((r) => [r.service, r.id, r.address, r.port ?? null, r.url ?? null, r.tags, r.meta, r.registeredAt]));
}

/** Capabilities of a backend that can do everything but inject environment variables. */
export const FULL_CAPABILITIES: Readonly<DiscoveryCapabilities> = Object.freeze({
  register: true,
  deregister: true,
  lookup: true,
  watch: true,
  heartbeat: true,
  list: true,
  inject: false,
});

/** Throw the one clear error for a capability a backend lacks. */
export function unsupported(backend: string, capability: keyof DiscoveryCapabilities): never {
  throw new UnsupportedError(`the ${backend} discovery backend`, capability);
}
