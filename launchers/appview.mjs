#!/usr/bin/env node
/**
 * The Bluesky AppView from the installed @atproto/bsky, as its own service entry does
 * (ServerConfig.readEnv → BskyAppView.create({ config, signingKey }) → start), listening on
 * loopback. It never opens the database: it reads everything through the dataplane.
 *
 * Environment: the AppView's own (BSKY_PORT, BSKY_PUBLIC_URL, BSKY_DID_PLC_URL,
 * BSKY_DATAPLANE_URLS, BSKY_DATAPLANE_HTTP_VERSION=1.1, BSKY_BSYNC_URL, BSKY_BSYNC_HTTP_VERSION=1.1,
 * BSKY_SERVICE_SIGNING_KEY (a hex secp256k1 private key), BSKY_ADMIN_PASSWORDS, …; the full-node
 * profile renders them into appview.env), plus:
 *   BSKY_SERVER_DID, MOD_SERVICE_DID, BSKY_LABELS_FROM_ISSUER_DIDS
 *                       default: the AppView's and Ozone's DIDs from the service-dids task
 *   HOST                address to listen on (default 127.0.0.1)
 *   PDS_URL, HANDLE_DOMAINS   handles under these domains resolve at that PDS (see dataplane.mjs)
 *
 * Health: GET /xrpc/_health (503 while the dataplane does not answer).
 */
import { bindAppTo, envList, fail, defaultEnv, installedVersion, listenHost, loadPackage, log, readServiceDids, resolveHandlesAtPds, stopOnSignals } from './lib/common.mjs';

const NAME = 'appview';

const dids = readServiceDids();
defaultEnv('BSKY_SERVER_DID', () => dids.appview.did);
defaultEnv('MOD_SERVICE_DID', () => dids.ozone.did);
defaultEnv('BSKY_LABELS_FROM_ISSUER_DIDS', () => dids.ozone.did);
defaultEnv('BSKY_VERSION', () => installedVersion('@atproto/bsky'));
if (!process.env.BSKY_SERVICE_SIGNING_KEY) fail(`${NAME}: BSKY_SERVICE_SIGNING_KEY is not set`);

const bsky = loadPackage('@atproto/bsky');
const { Secp256k1Keypair } = loadPackage('@atproto/crypto');
const config = bsky.ServerConfig.readEnv();
const signingKey = await Secp256k1Keypair.import(process.env.BSKY_SERVICE_SIGNING_KEY);
const host = listenHost();

const server = bsky.BskyAppView.create({ config, signingKey });
if (process.env.PDS_URL) resolveHandlesAtPds(server.ctx.idResolver, process.env.PDS_URL, envList(process.env.HANDLE_DOMAINS));
bindAppTo(server.app, host);
stopOnSignals(NAME, () => server.destroy());
await server.start();
log(NAME, `AppView listening on http://${host}:${config.port} (${config.serverDid}, public URL ${config.publicUrl})`, { port: config.port, host, did: config.serverDid });
