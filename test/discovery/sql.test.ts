import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createSqlBackend, parseSqlUrl } from '../../src/discovery/sql.js';
import { CollisionError } from '../../src/discovery/errors.js';
import { redactDiscoveryConfig } from '../../src/discovery/registry.js';
import type { DiscoveryBackend, ServiceInstance } from '../../src/discovery/types.js';
import type { DiscoveryConfig } from '../../src/profile/types.js';
import { startPostgres, type PostgresServer } from '../fixtures/postgres.js';
import { describeBackendConformance } from './conformance.js';
import { checkError, expectCloseEndsWatches, expectUnreachableWithout, ids, testDiscoveryConfig } from './helpers.js';

let dir: string;
let pg: PostgresServer;
const opened: DiscoveryBackend[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stack-sql-'));
  pg = await startPostgres();
}, 90_000);

afterAll(async () => {
  await Promise.all(opened.map((b) => b.close()));
  await pg?.destroy();
  await rm(dir, { recursive: true, force: true });
});

function sqliteUrl(name = 'catalog.sqlite'): string {
  return `sqlite://${path.join(dir, name)}`;
}

function config(overrides: Partial<DiscoveryConfig> = {}): DiscoveryConfig {
  return testDiscoveryConfig({ backends: ['sql'], sqlUrl: sqliteUrl(), ...overrides });
}

function backend(overrides: Partial<DiscoveryConfig> = {}): DiscoveryBackend {
  const b = createSqlBackend(config(overrides));
  opened.push(b);
  return b;
}

const pgOptions = (): Partial<DiscoveryConfig> => ({ sqlUrl: pg.url, sqlPassword: pg.password });

async function rawSqlite(file: string) {
  const { default: Database } = await import('better-sqlite3');
  return new Database(file, { readonly: true });
}

async function rawPostgres() {
  const { default: pgModule } = await import('pg');
  const url = new URL(pg.url);
  url.password = pg.password;
  const client = new pgModule.Client({ connectionString: url.toString() });
  await client.connect();
  return client;
}

describe('sqlUrl', () => {
  test('sqlite paths: relative to the working directory, or absolute after sqlite://', () => {
    expect(parseSqlUrl('sqlite:.stack/discovery.sqlite', '/srv/app')).toEqual({ dialect: 'sqlite', file: '/srv/app/.stack/discovery.sqlite' });
    expect(parseSqlUrl('sqlite:///var/lib/stack/d.sqlite', '/srv/app')).toEqual({ dialect: 'sqlite', file: '/var/lib/stack/d.sqlite' });
    expect(parseSqlUrl('postgres://u@h:5432/db')).toEqual({ dialect: 'postgres', url: 'postgres://u@h:5432/db' });
    expect(() => parseSqlUrl('mysql://h/db')).toThrow(/sqlite:/);
  });

  test('a password in the URL and sqlPassword are masked where the profile is printed', () => {
    const shown = redactDiscoveryConfig(config({ sqlUrl: 'postgres://stack:pw-in-url-42@db:5432/s', sqlPassword: 'pw-option-43' }));
    expect(JSON.stringify(shown)).not.toContain('pw-in-url-42');
    expect(JSON.stringify(shown)).not.toContain('pw-option-43');
  });
});

describe.each([
  ['sqlite', () => ({ sqlUrl: sqliteUrl('shared.sqlite') })],
  ['postgres', pgOptions],
] as const)('sql backend on %s', (dialect, options) => {
  test('deregistering sets stopped_at and keeps the row as history; heartbeats move last_seen', async () => {
    const b = backend(options());
    await b.register({ id: 'h-1', service: `hist-${dialect}`, address: '127.0.0.1', port: 1 });
    const before = await rowsOf(`hist-${dialect}`);
    await new Promise((r) => setTimeout(r, 20));
    await b.heartbeat(`hist-${dialect}`, 'h-1');
    const beaten = await rowsOf(`hist-${dialect}`);
    expect(Number(beaten[0]!.last_seen)).toBeGreaterThan(Number(before[0]!.last_seen));
    await b.deregister(`hist-${dialect}`, 'h-1');
    expect(await b.lookup(`hist-${dialect}`)).toEqual([]);
    const after = await rowsOf(`hist-${dialect}`);
    expect(after).toHaveLength(1);
    expect(after[0]!.stopped_at).not.toBeNull();
    // Registering the id again makes a new live row; the stopped one stays.
    await b.register({ id: 'h-1', service: `hist-${dialect}`, address: '127.0.0.1', port: 2 });
    const again = await rowsOf(`hist-${dialect}`);
    expect(again.map((r) => r.stopped_at === null)).toEqual([false, true]);
    expect((await b.lookup(`hist-${dialect}`))[0]?.port).toBe(2);

    async function rowsOf(service: string): Promise<Record<string, unknown>[]> {
      if (dialect === 'sqlite') {
        const db = await rawSqlite(path.join(dir, 'shared.sqlite'));
        try {
          return db.prepare('SELECT * FROM stack_instances WHERE service = ? ORDER BY row_id').all(service) as Record<string, unknown>[];
        } finally {
          db.close();
        }
      }
      const client = await rawPostgres();
      try {
        return (await client.query('SELECT * FROM stack_instances WHERE service = $1 ORDER BY row_id', [service])).rows as Record<string, unknown>[];
      } finally {
        await client.end();
      }
    }
  });

  test('the schema is migrated once and its version recorded', async () => {
    const first = backend(options());
    await first.list();
    const second = backend(options());
    await second.list();
    const versions =
      dialect === 'sqlite'
        ? await (async () => {
            const db = await rawSqlite(path.join(dir, 'shared.sqlite'));
            try {
              return (db.prepare('SELECT version FROM stack_discovery_schema').all() as { version: number }[]).map((r) => r.version);
            } finally {
              db.close();
            }
          })()
        : await (async () => {
            const client = await rawPostgres();
            try {
              return (await client.query('SELECT version FROM stack_discovery_schema')).rows.map((r: { version: number }) => r.version);
            } finally {
              await client.end();
            }
          })();
    expect(versions).toEqual([1]);
  });

  test('exclusive registration is atomic across clients: one of many wins', async () => {
    const clients = [1, 2, 3, 4].map(() => backend(options()));
    const service = `excl-${dialect}`;
    const results = await Promise.allSettled(clients.map((c, n) => c.register({ id: 'only', service, address: `127.0.0.${n + 1}` }, { exclusive: true })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(CollisionError);
    expect(await clients[0]!.lookup(service)).toHaveLength(1);
  });

  test('a watch hears of a registration made by another client', async () => {
    const watcher = backend(options());
    const writer = backend(options());
    const service = `xwatch-${dialect}`;
    const ac = new AbortController();
    const seen: string[][] = [];
    for await (const list of watcher.watch(service, { signal: ac.signal })) {
      seen.push(ids(list));
      if (seen.length === 1) await writer.register({ id: 'x-1', service, address: '127.0.0.1' });
      else if (seen.length === 2) await writer.deregister(service, 'x-1');
      else break;
    }
    ac.abort();
    expect(seen).toEqual([[], ['x-1'], []]);
  });

  test('the clean-up removes stopped rows older than sqlRetentionMs', async () => {
    const b = backend({ ...options(), sqlRetentionMs: 0 });
    const service = `clean-${dialect}`;
    await b.register({ id: 'c-1', service, address: '127.0.0.1' });
    await b.deregister(service, 'c-1');
    await new Promise((r) => setTimeout(r, 5));
    // Clean-up runs when a backend opens its database (and every minute after).
    const next = backend({ ...options(), sqlRetentionMs: 0 });
    await next.list();
    const remaining = await countRows(service);
    expect(remaining).toBe(0);

    async function countRows(s: string): Promise<number> {
      if (dialect === 'sqlite') {
        const db = await rawSqlite(path.join(dir, 'shared.sqlite'));
        try {
          return (db.prepare('SELECT count(*) AS n FROM stack_instances WHERE service = ?').get(s) as { n: number }).n;
        } finally {
          db.close();
        }
      }
      const client = await rawPostgres();
      try {
        return Number((await client.query('SELECT count(*) AS n FROM stack_instances WHERE service = $1', [s])).rows[0].n);
      } finally {
        await client.end();
      }
    }
  });

  test('close() ends the watches of the backend', async () => {
    await expectCloseEndsWatches(backend(options()));
  });

  test('a heartbeat for an instance nobody registered is an error', async () => {
    await expect(backend(options()).heartbeat('svc', 'ghost')).rejects.toMatchObject({ code: 'not_registered' });
  });
});

test('postgres: a wrong password is refused without printing it', async () => {
  const bad = backend({ sqlUrl: pg.url, sqlPassword: 'wrong-pass-456' });
  const err = await checkError(bad);
  expectUnreachableWithout(err, ['wrong-pass-456', pg.password]);
  expect(err?.exitCode).toBe(3);
});

test('postgres: an unreachable server is an UnreachableError naming the address without the password', async () => {
  const b = backend({ sqlUrl: 'postgres://stack:url-secret-77@127.0.0.1:1/postgres' });
  const err = await checkError(b);
  expectUnreachableWithout(err, ['url-secret-77']);
  expect(err?.message).toContain('127.0.0.1:1');
});

test('postgres: a watch survives a server restart and then sees new registrations', async () => {
  const watcher = backend(pgOptions());
  const service = 'restart-pg';
  const ac = new AbortController();
  const it = watcher.watch(service, { signal: ac.signal })[Symbol.asyncIterator]();
  try {
    expect(ids((await it.next()).value as ServiceInstance[])).toEqual([]);
    await pg.restart();
    // A client made after the restart registers; the old watcher must hear of it.
    const writer = backend(pgOptions());
    await writer.register({ id: 'after-restart', service, address: '127.0.0.1' });
    const seen = await Promise.race([it.next(), new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
    expect(seen).not.toBe('timeout');
    expect(ids((seen as IteratorResult<ServiceInstance[]>).value)).toEqual(['after-restart']);
  } finally {
    ac.abort();
  }
}, 90_000);

describeBackendConformance('sql (sqlite)', {
  make: async ({ ttlMs }) => backend({ ttlMs, sqlUrl: sqliteUrl('conformance.sqlite') }),
});

describeBackendConformance('sql (postgres)', {
  make: async ({ ttlMs }) => backend({ ttlMs, ...pgOptions() }),
});
