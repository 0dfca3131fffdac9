#!/usr/bin/env node
/**
 * Ozone, the moderation service, from the installed @atproto/ozone: migrates its database, then
 * runs the API server (OzoneService) and the background daemon (OzoneDaemon: pushes account
 * takedowns to the AppView and PDS, runs scheduled actions), as atproto's dev-env does; listens
 * on loopback.
 *
 * Environment: Ozone's own (OZONE_PORT, OZONE_PUBLIC_URL, OZONE_DB_POSTGRES_URL,
 * OZONE_DID_PLC_URL, OZONE_SIGNING_KEY_HEX, OZONE_ADMIN_PASSWORD, OZONE_APPVIEW_URL,
 * OZONE_PDS_URL, OZONE_PDS_DID, OZONE_ADMIN_DIDS, OZONE_DEV_MODE, …; the full-node profile renders
 * them into ozone.env), plus:
 *   OZONE_SERVER_DID, OZONE_APPVIEW_DID   default: from the service-dids task
 *   HOST                                  address to listen on (default 127.0.0.1)
 *
 * Health: GET /xrpc/_health.
 */
import { bindAppTo, defaultEnv, fail, installedVersion, listenHost, loadPackage, log, readServiceDids, stopOnSignals } from './lib/common.mjs';

const NAME = 'ozone';

const dids = readServiceDids();
defaultEnv('OZONE_SERVER_DID', () => dids.ozone.did);
defaultEnv('OZONE_APPVIEW_DID', () => dids.appview.did);
defaultEnv('OZONE_VERSION', () => installedVersion('@atproto/ozone'));
if (!process.env.OZONE_DB_POSTGRES_URL) fail(`${NAME}: OZONE_DB_POSTGRES_URL is not set`);

const ozone = loadPackage('@atproto/ozone');
const env = ozone.readEnv();
const cfg = ozone.envToCfg(env);
const secrets = ozone.envToSecrets(env);
const host = listenHost();

const migrationDb = new ozone.Database({ url: cfg.db.postgresUrl, schema: cfg.db.postgresSchema });
await migrationDb.migrateToLatestOrThrow();
await migrationDb.close();

const server = await ozone.OzoneService.create(cfg, secrets);
bindAppTo(server.app, host);
const daemon = await ozone.OzoneDaemon.create(cfg, secrets);
stopOnSignals(NAME, async () => {
  await daemon.destroy();
  await server.destroy();
});
await server.start();
await daemon.start();
log(NAME, `Ozone listening on http://${host}:${cfg.service.port} (${cfg.service.did}, public URL ${cfg.service.publicUrl})`, { port: cfg.service.port, host, did: cfg.service.did });
