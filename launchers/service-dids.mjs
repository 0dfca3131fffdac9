#!/usr/bin/env node
/**
 * The full-node service-dids task: gives the AppView and Ozone their did:plc identities in the
 * local PLC directory, signed with their kept secp256k1 keys, and writes the DIDs to
 * <state folder>/data/service-dids/dids.json, where the PDS, AppView and Ozone launchers read them.
 *
 *   AppView: verification method `atproto`; services `bsky_appview` (BskyAppView) and
 *            `bsky_notif` (BskyNotificationService), both at APPVIEW_URL.
 *   Ozone:   verification method `atproto_label`; service `atproto_labeler` (AtprotoLabeler) at OZONE_URL.
 * The key is also the DID's rotation key (as atproto's dev-env does).
 *
 * Idempotent: a DID already in dids.json is kept; when its document in the PLC differs from the
 * wanted one (a port changed), an update operation signed with the same key brings it in line;
 * when the PLC does not know it, the genesis operation is sent (the same key and endpoints give
 * the same DID). A new DID is made only for a service that has none.
 *
 * Environment:
 *   PLC_URL                  the PLC directory
 *   APPVIEW_URL, OZONE_URL   the services' public URLs (as written into their DID documents)
 *   APPVIEW_SIGNING_KEY_HEX, OZONE_SIGNING_KEY_HEX   32-byte hex private keys (kept secrets)
 *   SERVICE_DIDS_DIR         where dids.json goes (default <state folder>/data/service-dids)
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fail, loadPackage, log, serviceDidsFile } from './lib/common.mjs';

const NAME = 'service-dids';
const plc = loadPackage('@did-plc/lib');
const { Secp256k1Keypair } = loadPackage('@atproto/crypto');

const need = (name) => process.env[name] || fail(`${NAME}: ${name} is not set`);
const plcUrl = need('PLC_URL');
const client = new plc.Client(plcUrl);

/** The DID document data (PLC operation fields) each service should have. */
const wanted = {
  appview: (key) => ({
    rotationKeys: [key.did()],
    verificationMethods: { atproto: key.did() },
    alsoKnownAs: [],
    services: {
      bsky_appview: { type: 'BskyAppView', endpoint: need('APPVIEW_URL') },
      bsky_notif: { type: 'BskyNotificationService', endpoint: need('APPVIEW_URL') },
    },
  }),
  ozone: (key) => ({
    rotationKeys: [key.did()],
    verificationMethods: { atproto_label: key.did() },
    alsoKnownAs: [],
    services: { atproto_labeler: { type: 'AtprotoLabeler', endpoint: need('OZONE_URL') } },
  }),
};
const keyVariable = { appview: 'APPVIEW_SIGNING_KEY_HEX', ozone: 'OZONE_SIGNING_KEY_HEX' };

/** Field-by-field comparison of the parts of a document we set (key order does not matter). */
function sameData(a, b) {
  const norm = (d) =>
    JSON.stringify({
      rotationKeys: d.rotationKeys,
      verificationMethods: Object.fromEntries(Object.entries(d.verificationMethods ?? {}).sort()),
      alsoKnownAs: d.alsoKnownAs,
      services: Object.fromEntries(Object.entries(d.services ?? {}).sort().map(([k, v]) => [k, { type: v.type, endpoint: v.endpoint }])),
    });
  return norm(a) === norm(b);
}

/** The PLC's current data for `did`, or undefined when it does not know the DID. */
async function currentData(did) {
  try {
    return await client.getDocumentData(did);
  } catch (err) {
    if (err?.status === 404) return undefined;
    throw err;
  }
}

async function ensure(service, kept) {
  const key = await Secp256k1Keypair.import(need(keyVariable[service]));
  const data = wanted[service](key);
  const genesis = await plc.signOperation({ type: 'plc_operation', ...data, prev: null }, key);
  const did = kept?.did ?? (await plc.didForCreateOp(genesis));
  const current = await currentData(did);
  if (current === undefined) {
    if (kept?.did && kept.did !== (await plc.didForCreateOp(genesis))) {
      fail(`${NAME}: the PLC directory does not know ${service}'s DID ${kept.did} (was its database reset?): delete ${serviceDidsFile()} to register a new one`);
    }
    await client.sendOperation(did, genesis);
    log(NAME, `registered ${service} as ${did}`);
  } else if (!sameData(current, data)) {
    await client.updateData(did, key, () => data);
    log(NAME, `updated ${service}'s DID document (${did})`);
  } else {
    log(NAME, `${service} is ${did} (unchanged)`);
  }
  return { did, key: key.did(), endpoint: Object.values(data.services)[0].endpoint };
}

const file = serviceDidsFile();
let kept = {};
try {
  kept = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  if (err.code !== 'ENOENT') fail(`${NAME}: cannot read ${file}: ${err.message}`);
}
const out = {};
for (const service of ['appview', 'ozone']) out[service] = await ensure(service, kept[service]);
mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
writeFileSync(`${file}.tmp`, `${JSON.stringify(out, null, 2)}\n`, { mode: 0o644 });
renameSync(`${file}.tmp`, file);
log(NAME, `service DIDs in ${file}`, { appview: out.appview.did, ozone: out.ozone.did });
