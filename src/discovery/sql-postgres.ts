/**
 * The SQL catalog on PostgreSQL (node-postgres): for a cluster, every host's `stack` and every
 * service sharing one database. An exclusive registration is one transaction whose insert either
 * finds the live row in the partial unique index or not: PostgreSQL serialises the racers.
 *
 * Change detection: a trigger (see sql-schema.ts) NOTIFYs on every change that matters; one
 * dedicated connection LISTENs while anyone watches, and reconnects (telling watchers to re-read,
 * since notifications sent meanwhile are lost) when it drops.
 */
import type { Client, ClientConfig, Pool, PoolClient } from 'pg';
import {
  INSTANCES_TABLE,
  NOTIFY_CHANNEL,
  SCHEMA_TABLE,
  SCHEMA_TABLE_DDL,
  liveCondition,
  pendingMigrations,
  type CatalogStore,
  type InstanceRow,
  type InstanceWrite,
} from './sql-schema.js';
import { pause } from '../util/clock.js';
import { backoffAt } from '../util/retry.js';
import { RECONNECT_BACKOFF } from './resync.js';

/** An arbitrary, fixed key for the advisory lock that lets one client at a time migrate. */
const MIGRATION_LOCK = 0x5354_4b44; // "STKD"

export async function openPostgresStore(config: ClientConfig): Promise<CatalogStore> {
  const { default: pg } = await import('pg');
  const pool: Pool = new pg.Pool({ ...config, max: 4, idleTimeoutMillis: 10_000 });
  // An idle client's error (the server went away) must not crash the process: the next query fails instead.
  pool.on('error', () => undefined);
  try {
    await migrate(pool);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }

  const listeners = new Set<(service: string | undefined) => void>();
  const emit = (service: string | undefined) => {
    for (const l of listeners) l(service);
  };
  let listener: Client | undefined;
  let listening = false;
  let closed = false;

  /** Keep one LISTEN connection while there are listeners; after a drop, reconnect and re-read. */
  async function listen(): Promise<void> {
    let failures = 0;
    while (!closed && listeners.size > 0) {
      const client = new pg.Client(config);
      const ended = new Promise<void>((resolve) => {
        client.once('end', resolve);
        // `on`, not `once`: a second 'error' without a listener would crash the process.
        client.on('error', () => void client.end().catch(() => undefined));
      });
      try {
        await client.connect();
        client.on('notification', (n) => emit(n.payload || undefined));
        await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
        listener = client;
        failures = 0;
        emit(undefined); // anything may have changed while we were not listening
        await ended;
      } catch {
        failures += 1;
        await client.end().catch(() => undefined);
      } finally {
        listener = undefined;
      }
      if (!closed && listeners.size > 0) await pause(backoffAt(failures, RECONNECT_BACKOFF));
    }
    listening = false;
  }

  async function transaction<T>(op: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const result = await op(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  const columns = '(service, id, address, port, url, tags, meta, registered_at, last_seen, ttl_ms)';
  const values = '($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)';
  const conflict = 'ON CONFLICT (service, id) WHERE stopped_at IS NULL';

  return {
    dialect: 'postgres',
    async upsert(row: InstanceWrite, exclusive: boolean, now: number) {
      const params = [row.service, row.id, row.address, row.port, row.url, row.tags, row.meta, row.registeredAt, now, row.ttlMs];
      const insert = (action: string) => `INSERT INTO ${INSTANCES_TABLE} ${columns} VALUES ${values} ${conflict} ${action}`;
      if (!exclusive) {
        // One statement (one round trip): replaces the live row, expired or not.
        await pool.query(
          insert(`DO UPDATE SET
            address = EXCLUDED.address, port = EXCLUDED.port, url = EXCLUDED.url, tags = EXCLUDED.tags,
            meta = EXCLUDED.meta, registered_at = EXCLUDED.registered_at, last_seen = EXCLUDED.last_seen, ttl_ms = EXCLUDED.ttl_ms`),
          params,
        );
        return true;
      }
      // Exclusive: the insert alone decides, atomically (the partial unique index serialises racers).
      if (((await pool.query(insert('DO NOTHING'), params)).rowCount ?? 0) > 0) return true;
      // The id is held. If only by a row whose TTL passed, that row becomes history (stopped when
      // it expired) and the claim is tried again, in one transaction.
      return transaction(async (client) => {
        const expired = await client.query(
          `UPDATE ${INSTANCES_TABLE} SET stopped_at = last_seen + ttl_ms
           WHERE service = $1 AND id = $2 AND stopped_at IS NULL AND ttl_ms IS NOT NULL AND last_seen + ttl_ms <= $3`,
          [row.service, row.id, now],
        );
        if ((expired.rowCount ?? 0) === 0) return false;
        return ((await client.query(insert('DO NOTHING'), params)).rowCount ?? 0) > 0;
      });
    },
    async stop(service, id, now) {
      const res = await pool.query(`UPDATE ${INSTANCES_TABLE} SET stopped_at = $3 WHERE service = $1 AND id = $2 AND stopped_at IS NULL`, [service, id, now]);
      return (res.rowCount ?? 0) > 0;
    },
    async touch(service, id, now) {
      const res = await pool.query(`UPDATE ${INSTANCES_TABLE} SET last_seen = $3 WHERE service = $1 AND id = $2 AND ${liveCondition('$3')}`, [
        service,
        id,
        now,
      ]);
      return (res.rowCount ?? 0) > 0;
    },
    async live(service, now) {
      const res =
        service === undefined
          ? await pool.query(`SELECT * FROM ${INSTANCES_TABLE} WHERE ${liveCondition('$1')} ORDER BY service, id`, [now])
          : await pool.query(`SELECT * FROM ${INSTANCES_TABLE} WHERE service = $2 AND ${liveCondition('$1')} ORDER BY id`, [now, service]);
      return res.rows as InstanceRow[];
    },
    async cleanup(before) {
      const res = await pool.query(
        `DELETE FROM ${INSTANCES_TABLE} WHERE (stopped_at IS NOT NULL AND stopped_at < $1)
           OR (stopped_at IS NULL AND ttl_ms IS NOT NULL AND last_seen + ttl_ms < $1)`,
        [before],
      );
      return res.rowCount ?? 0;
    },
    onChange(fn) {
      listeners.add(fn);
      if (!listening) {
        listening = true;
        void listen();
      }
      return () => {
        listeners.delete(fn);
        if (listeners.size === 0) void listener?.end().catch(() => undefined);
      };
    },
    async check() {
      // Writable: a write that changes nothing.
      await transaction(async (client) => {
        await client.query(`UPDATE ${SCHEMA_TABLE} SET applied_at = applied_at WHERE version = 1`);
      });
    },
    async close() {
      closed = true;
      listeners.clear();
      await listener?.end().catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
}

/** Apply the pending migrations in one transaction, under an advisory lock (racing first users wait). */
async function migrate(pool: Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(SCHEMA_TABLE_DDL);
    const applied = (await client.query<{ version: number }>(`SELECT version FROM ${SCHEMA_TABLE}`)).rows.map((r) => Number(r.version));
    for (const m of pendingMigrations(applied)) {
      for (const statement of m.statements.postgres) await client.query(statement);
      await client.query(`INSERT INTO ${SCHEMA_TABLE} (version, description, applied_at) VALUES ($1, $2, $3)`, [m.version, m.description, Date.now()]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
