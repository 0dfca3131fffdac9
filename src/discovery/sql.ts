/**
 * SQL catalog discovery backend: a table of instances with heartbeats, the
 * way service catalogs are often kept in the database a system already has.
 *
 *   sqlUrl: sqlite:.stack/discovery.sqlite   one host, no server (the file is made on first use)
 *   sqlUrl: postgres://stack@db:5432/stack   a cluster (password: sqlPassword, or PGPASSWORD)
 *
 * Registering inserts (or replaces) the live row of (service, id); a heartbeat moves its
 * `last_seen`; deregistering sets `stopped_at`, and the row stays as history until the periodic
 * clean-up removes rows stopped (or expired) longer than `sqlRetentionMs` ago. Lookups return the
 * rows not stopped and seen within their TTL. Watches hear of changes from the database
 * (LISTEN/NOTIFY on PostgreSQL, `PRAGMA data_version` on SQLite) and re-read the service's rows;
 * expiry, which writes nothing, is seen by looking again when the earliest record is due.
 *
 * Times are the writing client's clock (epoch ms), as with NATS: hosts are assumed to keep time.
 * The schema is versioned and migrated on first use (sql-schema.ts). The database driver is
 * imported on first use: a profile that does not use `sql` never loads better-sqlite3 or pg.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ClientConfig } from 'pg';
import { InvalidInputError, StackError, StackFailedError, UnreachableError } from '../errors.js';
import { CollisionError } from './errors.js';
import { sqlDriver, type SqlConfig } from './drivers/sql.js';
import { assertInstanceId, assertServiceName, earliestExpiry, parseRecord, sortById, toRecord } from './record.js';
import { errorText } from '../util/error-text.js';
import { redactUrl, watchByResync } from './resync.js';
import type { CatalogStore, InstanceRow } from './sql-schema.js';
import { anySignal } from './watch.js';
import type { DiscoveryBackend, DiscoveryBackendContext, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';

/** How often the clean-up of old history runs (and once on first use). */
const CLEANUP_EVERY_MS = 60_000;

/** Where a `sqlUrl` points: a SQLite file (absolute) or a PostgreSQL connection. */
export type SqlTarget = { dialect: 'sqlite'; file: string } | { dialect: 'postgres'; url: string };

/** `sqlite:rel/path`, `sqlite:///abs/path` or `postgres(ql)://…`; relative paths resolve against `cwd`. */
export function parseSqlUrl(url: string, cwd = process.cwd()): SqlTarget {
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { dialect: 'postgres', url };
  if (url.startsWith('sqlite:')) {
    const rest = url.slice('sqlite:'.length);
    const file = rest.startsWith('//') ? rest.replace(/^\/\/[^/]*/, '') : rest;
    if (file === '') throw invalidUrl(url);
    return { dialect: 'sqlite', file: path.resolve(cwd, decodeURIComponent(file)) };
  }
  throw invalidUrl(url);
}

function invalidUrl(url: string): StackError {
  return new InvalidInputError(
    [{ code: 'invalid_url', path: 'discovery.sqlUrl', message: `'${redactUrl(url)}' is not sqlite:<path>, sqlite:///abs/path or postgres://…` }],
    'invalid discovery settings',
  );
}

export function createSqlBackend(config: SqlConfig, context: DiscoveryBackendContext = {}): DiscoveryBackend {
  const target = parseSqlUrl(config.sqlUrl || sqlDriver.defaults.sqlUrl, context.cwd);
  const where = target.dialect === 'sqlite' ? target.file : redactUrl(target.url);
  let opening: Promise<CatalogStore> | undefined;
  let cleanupTimer: NodeJS.Timeout | undefined;
  let closed = false;
  const closing = new AbortController();

  function store(): Promise<CatalogStore> {
    if (closed) return Promise.reject(new StackError('the sql discovery backend is closed', { code: 'closed' }));
    opening ??= open().catch((err: unknown) => {
      opening = undefined; // the next call tries again
      throw toStackError(err, 'open', where);
    });
    return opening;
  }

  async function open(): Promise<CatalogStore> {
    const s =
      target.dialect === 'sqlite'
        ? await (await import('./sql-sqlite.js')).openSqliteStore(target.file)
        : await (await import('./sql-postgres.js')).openPostgresStore(pgConfig(config, target.url));
    const retentionMs = config.sqlRetentionMs ?? sqlDriver.defaults.sqlRetentionMs;
    const cleanup = () => void s.cleanup(Date.now() - retentionMs).catch(() => undefined);
    cleanup();
    cleanupTimer = setInterval(cleanup, CLEANUP_EVERY_MS);
    cleanupTimer.unref();
    return s;
  }

  async function withStore<T>(what: string, op: (s: CatalogStore) => Promise<T>): Promise<T> {
    const s = await store();
    try {
      return await op(s);
    } catch (err) {
      throw toStackError(err, what, where);
    }
  }

  const read = (service: string | undefined) => withStore(`read ${service ?? 'all'}`, async (s) => sortRows(await s.live(service, Date.now())));

  return {
    name: 'sql',
    capabilities: sqlDriver.capabilities,

    async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<ServiceInstance> {
      const ttlMs = opts.ttlMs ?? config.ttlMs;
      const now = Date.now();
      const record = toRecord(input, ttlMs, now);
      const ok = await withStore(`register ${record.service}/${record.id}`, (s) =>
        s.upsert(
          {
            service: record.service,
            id: record.id,
            address: record.address,
            port: record.port ?? null,
            url: record.url ?? null,
            tags: JSON.stringify(record.tags),
            meta: JSON.stringify(record.meta),
            registeredAt: now,
            ttlMs: ttlMs > 0 ? ttlMs : null,
          },
          !!opts.exclusive,
          now,
        ),
      );
      if (!ok) throw new CollisionError(record.service, record.id, { backend: 'sql' });
      return record;
    },

    async deregister(service: string, id: string): Promise<void> {
      assertServiceName(service);
      assertInstanceId(id);
      await withStore(`deregister ${service}/${id}`, (s) => s.stop(service, id, Date.now()));
    },

    async heartbeat(service: string, id: string): Promise<void> {
      assertServiceName(service);
      assertInstanceId(id);
      const alive = await withStore(`heartbeat ${service}/${id}`, (s) => s.touch(service, id, Date.now()));
      if (!alive) throw new StackFailedError(`sql: instance '${id}' of service '${service}' is not registered`, { code: 'not_registered' });
    },

    async lookup(service: string): Promise<ServiceInstance[]> {
      assertServiceName(service);
      return read(service);
    },

    list: () => read(undefined),

    watch(service: string, opts: WatchOptions = {}): AsyncIterable<ServiceInstance[]> {
      assertServiceName(service);
      // Full re-reads, retried with backoff while the database is away (a server restart, a
      // locked file): the watch outlives outages, as the other server-backed backends' do.
      return watchByResync(anySignal([opts.signal, closing.signal]), async (notify) => {
        let unsubscribe: (() => void) | undefined;
        let expiryTimer: NodeJS.Timeout | undefined;
        return {
          read: async () => {
            const s = await store();
            // Subscribed on the first read that reaches the database (the store may open late).
            unsubscribe ??= s.onChange((changed) => (changed === undefined || changed === service ? notify() : undefined));
            const list = await read(service);
            // Expiry writes nothing: look again just after the earliest record is due.
            clearTimeout(expiryTimer);
            const due = earliestExpiry(list);
            if (due !== undefined) {
              expiryTimer = setTimeout(notify, Math.max(0, due - Date.now()) + 5);
              expiryTimer.unref();
            }
            return list;
          },
          stop: async () => {
            clearTimeout(expiryTimer);
            unsubscribe?.();
          },
        };
      });
    },

    async check(): Promise<void> {
      await withStore('check', (s) => s.check());
    },

    async close(): Promise<void> {
      closed = true;
      closing.abort();
      const pending = opening;
      opening = undefined;
      // Registrations stay until their TTL: closing is not deregistering.
      const s = await pending?.catch(() => undefined);
      clearInterval(cleanupTimer); // after the open finished: it starts the timer
      await s?.close();
    },
  };
}

/** Rows back to records (a row someone else wrote badly is skipped, like a bad file or KV value). */
function sortRows(rows: InstanceRow[]): ServiceInstance[] {
  return sortById(rows.flatMap(toInstance));
}

function toInstance(row: InstanceRow): ServiceInstance[] {
  try {
    const ttlMs = row.ttl_ms === null ? undefined : Number(row.ttl_ms);
    const record = parseRecord({
      id: row.id,
      service: row.service,
      address: row.address,
      ...(row.port !== null ? { port: Number(row.port) } : {}),
      ...(row.url !== null ? { url: row.url } : {}),
      tags: JSON.parse(row.tags) as unknown,
      meta: JSON.parse(row.meta) as unknown,
      registeredAt: new Date(Number(row.registered_at)).toISOString(),
      ...(ttlMs !== undefined ? { expiresAt: new Date(Number(row.last_seen) + ttlMs).toISOString() } : {}),
    });
    return record ? [record] : [];
  } catch {
    return [];
  }
}

/** node-postgres settings: the URL, the password (never in the URL we print), TLS from `tls:`. */
function pgConfig(config: SqlConfig, url: string): ClientConfig {
  // node-postgres lets the URL's (absent) password win over a `password` option: put it in the
  // URL it gets (in memory only; every message uses the redacted form).
  const withPassword = new URL(url);
  if (config.sqlPassword) withPassword.password = encodeURIComponent(config.sqlPassword);
  const out: ClientConfig = {
    connectionString: withPassword.toString(),
    connectionTimeoutMillis: 5000,
    application_name: 'atproto-stacks',
    // A commit returns without waiting for its WAL flush (only our sessions): a server crash may
    // lose the last few hundred milliseconds of registrations, which the owners' next heartbeats
    // put back (a heartbeat for a lost row fails, and the keep-alive registers again).
    options: '-c synchronous_commit=off',
  };
  const tls = config.tls;
  if (tls?.ca || tls?.cert || tls?.key || tls?.insecureSkipVerify) {
    out.ssl = {
      rejectUnauthorized: !tls.insecureSkipVerify,
      ...(tls.ca ? { ca: readFileSync(tls.ca, 'utf8') } : {}),
      ...(tls.cert ? { cert: readFileSync(tls.cert, 'utf8') } : {}),
      ...(tls.key ? { key: readFileSync(tls.key, 'utf8') } : {}),
    };
  }
  return out;
}

/** Connection and authentication failures are "unreachable" (exit 3); the rest keep their meaning. */
function toStackError(err: unknown, what: string, where: string): unknown {
  if (err instanceof StackError) return err;
  const message = errorText(err);
  const raw = (err as { code?: unknown } | null)?.code;
  const code = typeof raw === 'string' || typeof raw === 'number' ? String(raw) : '';
  if (code === '28P01' || code === '28000' || /password authentication|no pg_hba/i.test(message)) {
    return new UnreachableError('sql', `sql catalog at ${where} refused our credentials (${what})`, { cause: err, code: 'unauthorized' });
  }
  if (
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|57P0[1-3]|08\d\d\d|SQLITE_CANTOPEN|SQLITE_BUSY|ERR_DLOPEN_FAILED|ERR_MODULE_NOT_FOUND)$/.test(
      code,
    ) ||
    /timeout|terminat|connection|cannot open|unable to open/i.test(message)
  ) {
    return new UnreachableError('sql', `sql catalog unreachable at ${where} (${what}): ${message.replace(/\/\/[^/@\s]*@/g, '//')}`, { cause: err });
  }
  return new StackError(`sql catalog (${where}) ${what} failed: ${message}`, { code: 'discovery_error', cause: err });
}
