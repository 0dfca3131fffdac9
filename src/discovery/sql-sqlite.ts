/**
 * The SQL catalog on SQLite (better-sqlite3): one file, no server; the embedded choice for one
 * host. Several processes may share the file (WAL mode, a busy timeout): writes that must be
 * atomic run in `BEGIN IMMEDIATE` transactions, so an exclusive registration is one insert that
 * either finds a live row or not, whoever else writes.
 *
 * Change detection: SQLite has no notifications across connections, but `PRAGMA data_version`
 * changes whenever another connection commits, and reading it costs microseconds. While anyone
 * watches, the store polls it every few milliseconds; its own writes notify at once.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { StackError } from '../errors.js';
import {
  INSTANCES_TABLE,
  SCHEMA_TABLE,
  SCHEMA_TABLE_DDL,
  liveCondition,
  pendingMigrations,
  type CatalogStore,
  type InstanceRow,
  type InstanceWrite,
} from './sql-schema.js';

/** How often `PRAGMA data_version` is read while someone watches: well inside the 50 ms target. */
const POLL_MS = 5;

export async function openSqliteStore(file: string): Promise<CatalogStore> {
  const Database = await loadDriver();
  mkdirSync(path.dirname(file), { recursive: true });
  const db: BetterSqlite3.Database = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    // WAL with synchronous=NORMAL: no fsync per commit (the database stays consistent; a power
    // cut may lose the last commits, which the owners' next heartbeats put back).
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    migrate(db);
  } catch (err) {
    db.close();
    throw err;
  }

  const listeners = new Set<(service: string | undefined) => void>();
  let poller: NodeJS.Timeout | undefined;
  let lastVersion = dataVersion(db);
  const emit = (service: string | undefined) => {
    for (const l of listeners) l(service);
  };
  const poll = () => {
    const version = dataVersion(db);
    if (version !== lastVersion) {
      lastVersion = version;
      emit(undefined);
    }
  };

  const expireStmt = db.prepare(
    `UPDATE ${INSTANCES_TABLE} SET stopped_at = last_seen + ttl_ms
     WHERE service = @service AND id = @id AND stopped_at IS NULL AND ttl_ms IS NOT NULL AND last_seen + ttl_ms <= @now`,
  );
  const columns = '(service, id, address, port, url, tags, meta, registered_at, last_seen, ttl_ms)';
  const values = '(@service, @id, @address, @port, @url, @tags, @meta, @registeredAt, @now, @ttlMs)';
  const claimStmt = db.prepare(`INSERT INTO ${INSTANCES_TABLE} ${columns} VALUES ${values} ON CONFLICT (service, id) WHERE stopped_at IS NULL DO NOTHING`);
  const upsertStmt = db.prepare(
    `INSERT INTO ${INSTANCES_TABLE} ${columns} VALUES ${values}
     ON CONFLICT (service, id) WHERE stopped_at IS NULL DO UPDATE SET
       address = excluded.address, port = excluded.port, url = excluded.url, tags = excluded.tags,
       meta = excluded.meta, registered_at = excluded.registered_at, last_seen = excluded.last_seen, ttl_ms = excluded.ttl_ms`,
  );
  const stopStmt = db.prepare(`UPDATE ${INSTANCES_TABLE} SET stopped_at = @now WHERE service = @service AND id = @id AND stopped_at IS NULL`);
  const touchStmt = db.prepare(`UPDATE ${INSTANCES_TABLE} SET last_seen = @now WHERE service = @service AND id = @id AND ${liveCondition('@now')}`);
  const liveOne = db.prepare(`SELECT * FROM ${INSTANCES_TABLE} WHERE service = @service AND ${liveCondition('@now')} ORDER BY id`);
  const liveAll = db.prepare(`SELECT * FROM ${INSTANCES_TABLE} WHERE ${liveCondition('@now')} ORDER BY service, id`);
  const cleanupStmt = db.prepare(
    `DELETE FROM ${INSTANCES_TABLE} WHERE (stopped_at IS NOT NULL AND stopped_at < @before)
       OR (stopped_at IS NULL AND ttl_ms IS NOT NULL AND last_seen + ttl_ms < @before)`,
  );

  // Expired-but-not-stopped rows become history first, then the insert: both in one immediate
  // transaction, so no other writer (process) can come between them.
  const register = db.transaction((row: InstanceWrite, exclusive: boolean, now: number): boolean => {
    expireStmt.run({ service: row.service, id: row.id, now });
    const params = { ...row, now };
    return (exclusive ? claimStmt : upsertStmt).run(params).changes > 0;
  });

  return {
    dialect: 'sqlite',
    async upsert(row, exclusive, now) {
      const ok = register.immediate(row, exclusive, now);
      if (ok) emit(row.service);
      return ok;
    },
    async stop(service, id, now) {
      const stopped = stopStmt.run({ service, id, now }).changes > 0;
      if (stopped) emit(service);
      return stopped;
    },
    async touch(service, id, now) {
      return touchStmt.run({ service, id, now }).changes > 0;
    },
    async live(service, now) {
      return (service === undefined ? liveAll.all({ now }) : liveOne.all({ service, now })) as InstanceRow[];
    },
    async cleanup(before) {
      return cleanupStmt.run({ before }).changes;
    },
    onChange(listener) {
      listeners.add(listener);
      if (!poller) {
        lastVersion = dataVersion(db);
        // Not unref'd: a process waiting on a watch is waiting for this (a socket would hold it
        // for a networked backend); the last unsubscribe or close() stops it.
        poller = setInterval(poll, POLL_MS);
      }
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0 && poller) {
          clearInterval(poller);
          poller = undefined;
        }
      };
    },
    async check() {
      // Writable: an immediate transaction takes the write lock (and is rolled back).
      db.prepare('BEGIN IMMEDIATE').run();
      db.prepare('ROLLBACK').run();
    },
    async close() {
      clearInterval(poller);
      poller = undefined;
      listeners.clear();
      if (db.open) db.close();
    },
  };
}

/**
 * better-sqlite3 is an optional dependency (a native module: its build may fail where nothing
 * needs it). Missing, it is one clear error naming the package to install.
 */
async function loadDriver(): Promise<typeof BetterSqlite3> {
  try {
    return (await import('better-sqlite3')).default;
  } catch (err) {
    throw new StackError(
      'the sql discovery backend needs better-sqlite3 for sqlite: URLs, and it cannot be loaded: npm install better-sqlite3@12 (12.x supports Node 20)',
      {
        code: 'missing_dependency',
        path: 'discovery.sqlUrl',
        cause: err,
      },
    );
  }
}

function dataVersion(db: BetterSqlite3.Database): number {
  return db.pragma('data_version', { simple: true }) as number;
}

/** Apply the pending migrations, each in its own immediate transaction with its record. */
function migrate(db: BetterSqlite3.Database): void {
  db.exec(SCHEMA_TABLE_DDL);
  const apply = db.transaction(() => {
    // Read inside the transaction: another process may have migrated meanwhile.
    const applied = (db.prepare(`SELECT version FROM ${SCHEMA_TABLE}`).all() as { version: number }[]).map((r) => r.version);
    for (const m of pendingMigrations(applied)) {
      for (const statement of m.statements.sqlite) db.exec(statement);
      db.prepare(`INSERT INTO ${SCHEMA_TABLE} (version, description, applied_at) VALUES (?, ?, ?)`).run(m.version, m.description, Date.now());
    }
  });
  apply.immediate();
}
