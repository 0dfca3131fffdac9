#!/usr/bin/env node
/**
 * The full-node databases task: waits until PostgreSQL accepts logins, then creates each database
 * the services need when it does not exist yet (idempotent: a second run changes nothing).
 *
 * Environment:
 *   DATABASE_URL   superuser URL of the server's maintenance database (postgres://user:pw@host:port/postgres)
 *   DATABASES      comma-separated names to create (default plc,bsky,ozone)
 *   WAIT_SECONDS   how long to wait for the server (default 60)
 *
 * Exits 0 when every database exists. The URL (it holds a password) is never printed.
 */
import { envList, fail, loadPackage, log } from './lib/common.mjs';

const NAME = 'databases';
const { Client } = loadPackage('pg');

const url = process.env.DATABASE_URL;
if (!url) fail(`${NAME}: DATABASE_URL is not set`);
const wanted = envList(process.env.DATABASES || 'plc,bsky,ozone');
for (const name of wanted) if (!/^[a-z_][a-z0-9_]*$/.test(name)) fail(`${NAME}: '${name}' is not a plain database name (a-z, 0-9, _)`);
const deadline = Date.now() + 1000 * Number(process.env.WAIT_SECONDS || 60);

/** A connected client, retrying while the server starts up (refused connections, "starting up"). */
async function connect() {
  for (;;) {
    const client = new Client({ connectionString: url });
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) fail(`${NAME}: PostgreSQL does not accept logins: ${err.message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const client = await connect();
try {
  const { rows } = await client.query('SELECT datname FROM pg_database WHERE datname = ANY($1)', [wanted]);
  const existing = new Set(rows.map((r) => r.datname));
  for (const name of wanted) {
    if (existing.has(name)) continue;
    // Names were checked above: plain identifiers, safe to quote into the statement.
    await client.query(`CREATE DATABASE "${name}"`);
    log(NAME, `created database ${name}`);
  }
  log(NAME, `databases ready: ${wanted.join(', ')}`);
} finally {
  await client.end();
}
