#!/usr/bin/env node
/**
 * The AppView's dataplane, from the installed @atproto/bsky, wired as atproto's dev-env wires it:
 *
 *   - migrates the AppView's PostgreSQL database (DATABASE_URL) to the latest schema;
 *   - DataPlaneServer (Connect-RPC over HTTP/1.1) on DATAPLANE_PORT: the AppView reads everything
 *     through it;
 *   - MockBsync on BSYNC_PORT (the AppView requires a bsync URL; this dataplane keeps mutes and
 *     notification preferences in its own database);
 *   - one RepoSubscription per PDS in REPO_PROVIDERS: the PDS's firehose (subscribeRepos) is read
 *     straight from the PDS and indexed into the database. No relay is needed for this.
 *
 * Catch-up after a restart: the subscription's cursor lives in memory and starts at 0, so each
 * start replays the PDS's whole event window (the PDS keeps PDS_REPO_BACKFILL_LIMIT_MS of events,
 * a day by default); indexing is idempotent, so events seen before change nothing and those
 * written while the dataplane was down are indexed within seconds. The index itself is kept in
 * PostgreSQL.
 *
 * Environment:
 *   DATABASE_URL       the AppView's database (postgres://…/bsky)
 *   DATAPLANE_PORT     default 2585;  BSYNC_PORT  default 2586
 *   HOST               address both listen on (default 127.0.0.1; upstream: every interface)
 *   PLC_URL            the PLC directory
 *   REPO_PROVIDERS     comma-separated firehose URLs, ws://host:port of each PDS
 *   PDS_URL, HANDLE_DOMAINS   handles ending in one of HANDLE_DOMAINS (comma-separated, e.g. .test)
 *                      are resolved by asking the PDS at PDS_URL (GET /.well-known/atproto-did
 *                      with Host: <handle>), since no DNS server knows them
 *
 * Health: GET /_health on DATAPLANE_PORT answers 200 {"status":"ok"} when the database answers
 * (upstream has only the Connect-RPC route POST /bsky.Service/Ping). SIGTERM/SIGINT: closes the
 * subscriptions, the servers and the database, exits 0.
 */
import { envList, fail, listenHost, listeningOn, loadPackage, log, resolveHandlesAtPds, stopOnSignals } from './lib/common.mjs';

const NAME = 'dataplane';
const bsky = loadPackage('@atproto/bsky');

const url = process.env.DATABASE_URL || fail(`${NAME}: DATABASE_URL is not set`);
const plcUrl = process.env.PLC_URL || fail(`${NAME}: PLC_URL is not set`);
const dataplanePort = Number.parseInt(process.env.DATAPLANE_PORT || '2585', 10);
const bsyncPort = Number.parseInt(process.env.BSYNC_PORT || '2586', 10);
const providers = envList(process.env.REPO_PROVIDERS);
const host = listenHost();

const migrationDb = new bsky.Database({ url });
await migrationDb.migrateToLatestOrThrow();
await migrationDb.close();

const db = new bsky.Database({ url, poolSize: 10 });
const [dataplane, bsync] = await listeningOn(host, () => Promise.all([bsky.DataPlaneServer.create(db, dataplanePort, plcUrl), bsky.MockBsync.create(db, bsyncPort)]));
if (process.env.PDS_URL) resolveHandlesAtPds(dataplane.idResolver, process.env.PDS_URL, envList(process.env.HANDLE_DOMAINS));
addHealthRoute(dataplane.server);

const subscriptions = providers.map((service) => new bsky.RepoSubscription({ service, db, idResolver: dataplane.idResolver }));
for (const sub of subscriptions) sub.start();

stopOnSignals(NAME, async () => {
  await Promise.all(subscriptions.map((s) => s.destroy()));
  await bsync.destroy();
  await dataplane.destroy();
  await db.close();
});
log(NAME, `dataplane on http://${host}:${dataplanePort}, bsync on http://${host}:${bsyncPort}, indexing ${providers.join(', ') || 'no PDS'}`, {
  port: dataplanePort,
  bsyncPort,
  host,
  providers,
});

/** GET /_health in front of the Connect-RPC routes (every other request goes to them unchanged). */
function addHealthRoute(server) {
  const handlers = server.listeners('request');
  server.removeAllListeners('request');
  server.on('request', (req, res) => {
    if (req.method === 'GET' && req.url === '/_health') {
      db.pool
        .query('SELECT 1')
        .then(() => reply(res, 200, { status: 'ok' }))
        .catch((err) => reply(res, 503, { status: 'unhealthy', error: String(err?.message ?? err) }));
      return;
    }
    for (const handler of handlers) handler.call(server, req, res);
  });
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
