#!/usr/bin/env node
/**
 * Starts a did:plc directory from the installed @did-plc/server, as its own bin (dist/bin.js)
 * does, with two development changes: it listens on loopback only, and without DATABASE_URL it
 * keeps operations in a file (plc-store.mjs) instead of in memory, so DIDs survive a restart.
 *
 * Environment:
 *   PORT           port to listen on (default 2582, as upstream)
 *   HOST           address to listen on (default 127.0.0.1)
 *   DATABASE_URL   PostgreSQL URL: use upstream's PostgreSQL database instead of the file
 *   PLC_DATA_DIR   folder for the operations file (default: see lib/common.mjs, dataDirFor)
 *   PLC_VERSION    version reported by /_health (default: the package's version)
 *   LOG_ENABLED    "true" for upstream's request logs (pino, JSON lines on stdout)
 *
 * Health: GET /_health answers {"version": …}. Stops on SIGTERM/SIGINT (closes the server and
 * its connections, then the database) and exits 0.
 */
import path from 'node:path';
import { createFileStore, storeSize } from './plc-store.mjs';
import { bindAppTo, dataDirFor, installedVersion, listenHost, loadPackage, log, stopOnSignals } from './lib/common.mjs';

const NAME = 'plc';
const { PlcServer, Database } = loadPackage('@did-plc/server');
const { CID } = loadPackage('multiformats/cid');

const envPort = Number.parseInt(process.env.PORT ?? '', 10);
const port = Number.isNaN(envPort) ? 2582 : envPort;
const host = listenHost();

let db;
if (process.env.DATABASE_URL) {
  const pg = Database.postgres({ url: process.env.DATABASE_URL });
  await pg.migrateToLatestOrThrow();
  db = pg;
  log(NAME, 'using PostgreSQL (DATABASE_URL)');
} else {
  const file = path.join(dataDirFor(NAME, 'PLC_DATA_DIR'), 'operations.json');
  db = createFileStore({ Database, CID }, file);
  log(NAME, `keeping operations in ${file}`, storeSize(db));
}

const server = PlcServer.create({ db, port, version: process.env.PLC_VERSION || installedVersion('@did-plc/server') });
bindAppTo(server.app, host);
stopOnSignals(NAME, () => server.destroy());
await server.start();
log(NAME, `PLC directory listening on http://${host}:${port}`, { port, host });
