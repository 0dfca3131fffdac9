/**
 * The SQL catalog backend's definition: the implementation (`../sql.ts`) loads when one is
 * created, and its database driver (better-sqlite3 or pg) on first use, so neither is loaded
 * unless a profile uses `sql`.
 */
import { FULL_CAPABILITIES } from '../record.js';
import type { DiscoveryCommonConfig, DiscoveryDriver } from '../types.js';

/** The `discovery:` keys the SQL backend owns. */
export interface SqlDriverOptions {
  /**
   * `sqlite:<path>` (relative to the working directory), `sqlite:///abs/path`, or
   * `postgres://user@host:port/db` (a password in the URL is masked wherever it is printed;
   * prefer `sqlPassword`, or PostgreSQL's own PGPASSWORD / PGPASSFILE).
   */
  sqlUrl: string;
  /** PostgreSQL password (a secret: masked in printed profiles). */
  sqlPassword?: string;
  /** How long deregistered (and long-expired) rows stay as history before the clean-up removes them. */
  sqlRetentionMs: number;
}
/** What the backend is created from. */
export type SqlConfig = DiscoveryCommonConfig & SqlDriverOptions;

/** Listed in `registry.ts`; better-sqlite3 or pg is imported on the backend's first call. */
export const sqlDriver: DiscoveryDriver<'sql', SqlDriverOptions> = {
  name: 'sql',
  description: 'SQL catalog table with heartbeats: SQLite file for one host, PostgreSQL (LISTEN/NOTIFY) for a cluster',
  capabilities: FULL_CAPABILITIES,
  shared: true,
  options: (z) => ({
    sqlUrl: z
      .string()
      .regex(/^(sqlite:|postgres:\/\/|postgresql:\/\/)/, 'must start with sqlite: or postgres://')
      .describe('sql: sqlite:<path> | sqlite:///abs/path | postgres://user@host:port/db'),
    sqlPassword: z.string().optional(),
    sqlRetentionMs: z.number().int().nonnegative().describe('sql: how long stopped rows are kept as history (ms)'),
  }),
  defaults: { sqlUrl: 'sqlite:.stack/discovery.sqlite', sqlRetentionMs: 7 * 24 * 3600_000 },
  secretOptions: ['sqlPassword'],
  urlOptions: ['sqlUrl'],
  create: async (config, context) => (await import('../sql.js')).createSqlBackend(config, context),
};
