/**
 * The SQL catalog's schema: versioned migrations, applied in order on a backend's first use and
 * recorded in `stack_discovery_schema`, so a database made by an older `stack` is brought up to
 * date and one made by this version is left alone. A migration is never edited once released: a
 * change is a new version.
 *
 * One table of instances: the record's fields, plus `registered_at`, `last_seen` (moved by every
 * heartbeat) and `stopped_at` (set by deregistering: the row stays as history until the clean-up
 * removes it). Times are epoch milliseconds (BIGINT), the same in both dialects. At most one row
 * per (service, id) is live (`stopped_at IS NULL`): a partial unique index, which is also what
 * makes an exclusive registration one atomic insert.
 */

export type SqlDialect = 'sqlite' | 'postgres';

export interface Migration {
  version: number;
  description: string;
  statements: Record<SqlDialect, string[]>;
}

/** The table every statement of the backend reads and writes. */
export const INSTANCES_TABLE = 'stack_instances';
/** Where applied migrations are recorded. */
export const SCHEMA_TABLE = 'stack_discovery_schema';
/** PostgreSQL: the NOTIFY channel a change to a live row is announced on (payload: the service). */
export const NOTIFY_CHANNEL = 'stack_instances';

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'instances table with heartbeats and history',
    statements: {
      sqlite: [
        `CREATE TABLE ${INSTANCES_TABLE} (
          row_id INTEGER PRIMARY KEY AUTOINCREMENT,
          service TEXT NOT NULL, id TEXT NOT NULL, address TEXT NOT NULL, port INTEGER, url TEXT,
          tags TEXT NOT NULL DEFAULT '[]', meta TEXT NOT NULL DEFAULT '{}',
          registered_at INTEGER NOT NULL, last_seen INTEGER NOT NULL, ttl_ms INTEGER, stopped_at INTEGER)`,
        `CREATE UNIQUE INDEX ${INSTANCES_TABLE}_live ON ${INSTANCES_TABLE} (service, id) WHERE stopped_at IS NULL`,
        `CREATE INDEX ${INSTANCES_TABLE}_stopped ON ${INSTANCES_TABLE} (stopped_at) WHERE stopped_at IS NOT NULL`,
      ],
      postgres: [
        `CREATE TABLE ${INSTANCES_TABLE} (
          row_id BIGSERIAL PRIMARY KEY,
          service TEXT NOT NULL, id TEXT NOT NULL, address TEXT NOT NULL, port INTEGER, url TEXT,
          tags TEXT NOT NULL DEFAULT '[]', meta TEXT NOT NULL DEFAULT '{}',
          registered_at BIGINT NOT NULL, last_seen BIGINT NOT NULL, ttl_ms BIGINT, stopped_at BIGINT)`,
        `CREATE UNIQUE INDEX ${INSTANCES_TABLE}_live ON ${INSTANCES_TABLE} (service, id) WHERE stopped_at IS NULL`,
        `CREATE INDEX ${INSTANCES_TABLE}_stopped ON ${INSTANCES_TABLE} (stopped_at) WHERE stopped_at IS NOT NULL`,
        // Changes that matter to watchers are announced by the database itself, whoever writes.
        // Heartbeats only move last_seen, which is not in the list: they wake nobody.
        `CREATE OR REPLACE FUNCTION ${INSTANCES_TABLE}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN PERFORM pg_notify('${NOTIFY_CHANNEL}', NEW.service); RETURN NULL; END $$`,
        `CREATE TRIGGER ${INSTANCES_TABLE}_changed
          AFTER INSERT OR UPDATE OF address, port, url, tags, meta, registered_at, ttl_ms, stopped_at ON ${INSTANCES_TABLE}
          FOR EACH ROW EXECUTE FUNCTION ${INSTANCES_TABLE}_notify()`,
      ],
    },
  },
];

export const SCHEMA_TABLE_DDL = `CREATE TABLE IF NOT EXISTS ${SCHEMA_TABLE} (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)`;

/** The migrations not yet applied, in order. */
export function pendingMigrations(applied: readonly number[]): Migration[] {
  const done = new Set(applied);
  return MIGRATIONS.filter((m) => !done.has(m.version));
}

/** The columns a registration writes as they are stored and read back (tags and meta as JSON text). */
interface InstanceColumns {
  service: string;
  id: string;
  address: string;
  port: number | null;
  url: string | null;
  tags: string;
  meta: string;
}

/** One row of the instances table, as both drivers return it (pg returns BIGINT as strings). */
export interface InstanceRow extends InstanceColumns {
  registered_at: number | string;
  last_seen: number | string;
  ttl_ms: number | string | null;
  stopped_at: number | string | null;
}

/** What a registration writes. */
export interface InstanceWrite extends InstanceColumns {
  registeredAt: number;
  ttlMs: number | null;
}

/**
 * The two dialects behind the backend: the same few operations, each one statement or one
 * transaction. `now` is passed in, so both agree on the clock of the writing client.
 */
export interface CatalogStore {
  readonly dialect: SqlDialect;
  /** Register (replace the live row) or, `exclusive`, insert only if no live row: false on collision. */
  upsert(row: InstanceWrite, exclusive: boolean, now: number): Promise<boolean>;
  /** Set stopped_at on the live row; false when there was none. */
  stop(service: string, id: string, now: number): Promise<boolean>;
  /** Move last_seen of a live, unexpired row; false when there is none. */
  touch(service: string, id: string, now: number): Promise<boolean>;
  /** Live rows (not stopped, seen within their TTL) of one service, or of all. */
  live(service: string | undefined, now: number): Promise<InstanceRow[]>;
  /** Delete history: rows stopped, or expired, before `before`. Returns how many. */
  cleanup(before: number): Promise<number>;
  /** Hear about changes (the service, or undefined when unknown); returns the unsubscribe. */
  onChange(listener: (service: string | undefined) => void): () => void;
  /** Reachable and writable. */
  check(): Promise<void>;
  close(): Promise<void>;
}

/** The live condition, shared by both dialects' SQL (`?`-less: `now` is the named parameter). */
export function liveCondition(now: string): string {
  return `stopped_at IS NULL AND (ttl_ms IS NULL OR last_seen + ttl_ms > ${now})`;
}
