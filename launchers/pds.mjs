#!/usr/bin/env node
/**
 * Starts a Personal Data Server from the installed @atproto/pds, as the upstream image's
 * service/index.js does (readEnv → envToCfg / envToSecrets → PDS.create → start; SIGTERM →
 * destroy), with development defaults filled in where the environment says nothing:
 *
 *   PDS_DATA_DIRECTORY           default: see lib/common.mjs, dataDirFor (kept across restarts)
 *   PDS_BLOBSTORE_DISK_LOCATION  default: <data directory>/blocks
 *   HOST                         address to listen on (default 127.0.0.1; upstream: every interface)
 *
 * Everything else is the PDS's own configuration (PDS_HOSTNAME, PDS_PORT, PDS_DID_PLC_URL,
 * PDS_JWT_SECRET, PDS_ADMIN_PASSWORD, PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX, PDS_DEV_MODE,
 * PDS_INVITE_REQUIRED, PDS_CRAWLERS, …): the dev-cluster profile renders it into pds.env.
 *
 * When an AppView or moderation service URL is given (PDS_BSKY_APP_VIEW_URL, PDS_MOD_SERVICE_URL,
 * as full-node does) without its DID, the DID comes from the service-dids task's dids.json.
 *
 * Health: GET /xrpc/_health answers {"version": …}. Logs: upstream's pino JSON lines on stdout
 * (LOG_ENABLED=true).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { bindAppTo, dataDirFor, defaultEnv, installedVersion, listenHost, loadPackage, log, readServiceDids, stopOnSignals } from './lib/common.mjs';

const NAME = 'pds';

const dataDirectory = dataDirFor(NAME, 'PDS_DATA_DIRECTORY');
process.env.PDS_DATA_DIRECTORY = dataDirectory;
process.env.PDS_BLOBSTORE_DISK_LOCATION ||= path.join(dataDirectory, 'blocks');
mkdirSync(process.env.PDS_BLOBSTORE_DISK_LOCATION, { recursive: true, mode: 0o700 });
mkdirSync(dataDirectory, { recursive: true, mode: 0o700 });

if ((process.env.PDS_BSKY_APP_VIEW_URL && !process.env.PDS_BSKY_APP_VIEW_DID) || (process.env.PDS_MOD_SERVICE_URL && !process.env.PDS_MOD_SERVICE_DID)) {
  const dids = readServiceDids();
  if (process.env.PDS_BSKY_APP_VIEW_URL) defaultEnv('PDS_BSKY_APP_VIEW_DID', () => dids.appview.did);
  if (process.env.PDS_MOD_SERVICE_URL) defaultEnv('PDS_MOD_SERVICE_DID', () => dids.ozone.did);
}

// The PDS reads LOG_* when its logger module loads: load it only after the environment is final.
const { PDS, envToCfg, envToSecrets, readEnv } = loadPackage('@atproto/pds');

const env = readEnv();
env.version ||= installedVersion('@atproto/pds');
const cfg = envToCfg(env);
const secrets = envToSecrets(env);
const host = listenHost();

const pds = await PDS.create(cfg, secrets);
bindAppTo(pds.app, host);
stopOnSignals(NAME, () => pds.destroy());
await pds.start();
log(NAME, `PDS listening on http://${host}:${cfg.service.port} (public URL ${cfg.service.publicUrl}, PLC ${cfg.identity.plcUrl}, data ${dataDirectory})`, {
  port: cfg.service.port,
  host,
  did: cfg.service.did,
  plcUrl: cfg.identity.plcUrl,
});
