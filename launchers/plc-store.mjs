/**
 * A did:plc operation store kept in one JSON file, for the PLC directory of a development stack.
 *
 * @did-plc/server's own binary (dist/bin.js) keeps operations in PostgreSQL when DATABASE_URL is
 * set and otherwise in its `MockDatabase`, in memory: a restarted directory would forget every
 * DID while the PDS still holds the accounts. This store is that same MockDatabase (the upstream
 * validation, `assureValidNextOp`, and nullification logic), loaded from a file at start and
 * written back (temp file + rename) after every accepted operation. Development scale: the whole
 * log is rewritten on each write.
 *
 * File format: { "version": 1, "operations": { "<did>": [ { did, operation, cid, nullified,
 * createdAt } ] } } with cid as a string and createdAt as an ISO date.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const FORMAT_VERSION = 1;

/**
 * @param {object} deps
 * @param {any} deps.Database   @did-plc/server's Database (for `Database.mock()`)
 * @param {any} deps.CID        multiformats' CID (for `CID.parse`)
 * @param {string} file         where the operations are kept
 */
export function createFileStore({ Database, CID }, file) {
  const db = Database.mock();
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  db.contents = load(file, CID);

  const addOp = db.validateAndAddOp.bind(db);
  db.validateAndAddOp = async (did, proposed) => {
    await addOp(did, proposed);
    save(file, db.contents);
  };

  // The mock answers /export with nothing; a development directory can list its operations.
  db.exportOps = async (count, after) => {
    const all = Object.values(db.contents).flat();
    all.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    return all
      .filter((op) => !after || op.createdAt > after)
      .slice(0, count)
      .map((op) => ({ did: op.did, operation: op.operation, cid: op.cid.toString(), nullified: op.nullified, createdAt: op.createdAt.toISOString() }));
  };

  db.healthCheck = async () => {};
  return db;
}

/** Number of DIDs and operations in a store, for the start-up log line. */
export function storeSize(db) {
  const dids = Object.keys(db.contents);
  return { dids: dids.length, operations: dids.reduce((n, did) => n + db.contents[did].length, 0) };
}

function load(file, CID) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return {};
    throw err;
  }
  const parsed = JSON.parse(text);
  if (parsed.version !== FORMAT_VERSION || typeof parsed.operations !== 'object') {
    throw new Error(`${file}: not a PLC operations file of version ${FORMAT_VERSION}`);
  }
  const contents = {};
  for (const [did, ops] of Object.entries(parsed.operations)) {
    contents[did] = ops.map((op) => ({ did: op.did, operation: op.operation, cid: CID.parse(op.cid), nullified: op.nullified === true, createdAt: new Date(op.createdAt) }));
  }
  return contents;
}

function save(file, contents) {
  const operations = {};
  for (const [did, ops] of Object.entries(contents)) {
    operations[did] = ops.map((op) => ({ did: op.did, operation: op.operation, cid: op.cid.toString(), nullified: op.nullified, createdAt: op.createdAt.toISOString() }));
  }
  mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify({ version: FORMAT_VERSION, operations }, null, 1)}\n`, { mode: 0o600 });
  renameSync(temp, file);
}
