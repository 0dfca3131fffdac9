/**
 * End to end: `stack up --profile dev-cluster` runs a real did:plc directory and a real PDS that
 * Bluesky's own client (@atproto/api) uses: create an account (its DID registered at the local
 * PLC), post, list the post back; `stack down` leaves nothing behind; a second `stack up` reuses
 * the kept data and secrets.
 *
 * The first run on a machine installs the service packages (launchers/install.mjs, a few minutes:
 * better-sqlite3 builds from source) into the package cache; later runs reuse it. @atproto/api
 * is loaded from that same install, so the tool itself does not depend on it.
 * Ports: free loopback ports through PLC_PORT / PDS_PORT, so a stack on 2582/2583 is no obstacle.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStack, type CliResult } from '../helpers/cli.js';
import { freePort, portOpen } from '../helpers/net.js';
import { isAlive, loadAtpAgent, registrations, see, tearDownStack, type SeenProcesses } from '../helpers/e2e.js';
import { tmpFiles } from '../helpers/tmp.js';

/** The first `up` may install packages and compile a native module: minutes, not seconds. */
const FIRST_UP_TIMEOUT_MS = 20 * 60_000;
const UP_TIMEOUT_MS = 3 * 60_000;

/** The parts of @atproto/api this test uses (it is loaded at run time from the package cache). */
interface Agent {
  session?: { did: string; handle: string };
  createAccount(input: { handle: string; email: string; password: string }): Promise<{ data: { did: string; handle: string } }>;
  login(input: { identifier: string; password: string }): Promise<{ data: { did: string } }>;
  post(record: { text: string; createdAt: string }): Promise<{ uri: string; cid: string }>;
  com: {
    atproto: {
      repo: {
        listRecords(params: { repo: string; collection: string }): Promise<{ data: { records: Array<{ uri: string; value: { text?: string } }> } }>;
      };
    };
  };
}
type AgentClass = new (opts: { service: string }) => Agent;

interface StatusView {
  empty: boolean;
  services: Array<{ name: string; state: string; running: boolean; handle?: { pid?: number } }>;
}

const work = tmpFiles();
let env: Record<string, string>;
let plcUrl: string;
let pdsUrl: string;
let AtpAgent: AgentClass;
/** Every pid a service of the stack ran as, for the "nothing left" checks and the last-resort cleanup. */
const seenPids: SeenProcesses = new Map();

const stack = (args: string[], timeoutMs = UP_TIMEOUT_MS): Promise<CliResult> =>
  runStack([...args, '--profile', 'dev-cluster'], { cwd: work.dir, env, timeoutMs });
const stateDir = () => path.join(work.dir, '.stack', 'dev-cluster');
const explain = (r: CliResult) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

async function status(): Promise<StatusView> {
  const r = await stack(['status', '--json']);
  expect(r.code, explain(r)).toBe(0);
  const view = JSON.parse(r.stdout) as StatusView;
  for (const s of view.services) if (s.handle?.pid !== undefined) see(seenPids, s.handle.pid);
  return view;
}

async function expectNothingLeft(plcPort: number, pdsPort: number): Promise<void> {
  for (const pid of seenPids.keys()) expect(isAlive(pid), `process ${pid} is still running`).toBe(false);
  expect(await portOpen(plcPort)).toBe(false);
  expect(await portOpen(pdsPort)).toBe(false);
  expect(registrations(work.dir)).toEqual([]);
  expect(existsSync(path.join(stateDir(), 'lock'))).toBe(false);
  const pids = path.join(stateDir(), 'pids');
  expect(existsSync(pids) ? readdirSync(pids) : []).toEqual([]);
  expect((await status()).services.filter((s) => s.running)).toEqual([]);
}

let plcPort: number;
let pdsPort: number;

beforeAll(async () => {
  plcPort = await freePort();
  pdsPort = await freePort();
  env = { PLC_PORT: String(plcPort), PDS_PORT: String(pdsPort) };
  plcUrl = `http://127.0.0.1:${plcPort}`;
  pdsUrl = `http://127.0.0.1:${pdsPort}`;
  const up = await stack(['up', '--detach'], FIRST_UP_TIMEOUT_MS);
  expect(up.code, explain(up)).toBe(0);
  AtpAgent = loadAtpAgent<AgentClass>(env);
}, FIRST_UP_TIMEOUT_MS + 60_000);

afterAll(() => tearDownStack(env ? () => stack(['down'], 2 * 60_000) : undefined, seenPids, () => work.cleanup()), 3 * 60_000);

describe('dev-cluster: a real PLC directory and PDS, used by @atproto/api', () => {
  const handle = 'alice.test';
  const password = 'correct horse battery staple';
  const text = `hello from the dev cluster (${new Date().toISOString()})`;
  let did: string;
  let secrets: string;

  it('is up and healthy: setup completed, plc and pds healthy, data and secrets under .stack/dev-cluster/', async () => {
    const view = await status();
    const states = Object.fromEntries(view.services.map((s) => [s.name, s.state]));
    expect(states).toEqual({ setup: 'completed', plc: 'healthy', pds: 'healthy' });
    expect(await (await fetch(`${plcUrl}/_health`)).json()).toHaveProperty('version');
    expect(await (await fetch(`${pdsUrl}/xrpc/_health`)).json()).toHaveProperty('version');
    secrets = readFileSync(path.join(stateDir(), 'secrets.json'), 'utf8');
    expect(statSync(path.join(stateDir(), 'secrets.json')).mode & 0o777).toBe(0o600);
    expect(Object.keys((JSON.parse(secrets) as { secrets: object }).secrets)).toEqual(
      expect.arrayContaining(['pdsJwtSecret', 'pdsAdminPassword', 'pdsDpopSecret', 'pdsRotationKey']),
    );
    expect(existsSync(path.join(stateDir(), 'data', 'pds', 'account.sqlite'))).toBe(true);
    // The PDS's environment was rendered from its template, with the PLC URL from discovery.
    const pdsEnv = readFileSync(path.join(stateDir(), 'config', 'pds', 'pds.env'), 'utf8');
    expect(pdsEnv).toMatch(new RegExp(`^PDS_DID_PLC_URL="?${plcUrl.replaceAll('.', '\\.')}"?$`, 'm'));
    expect(registrations(work.dir)).toContain(path.join('pds', 'dev-cluster-pds-0.json'));
  });

  it('creates an account whose DID the local PLC knows, posts, and lists the post back', async () => {
    const agent = new AtpAgent({ service: pdsUrl });
    const created = await agent.createAccount({ handle, email: 'alice@example.com', password });
    did = created.data.did;
    expect(did).toMatch(/^did:plc:[a-z2-7]{24}$/);
    expect(created.data.handle).toBe(handle);

    const doc = (await (await fetch(`${plcUrl}/${did}`)).json()) as {
      id: string;
      alsoKnownAs: string[];
      service: Array<{ id: string; serviceEndpoint: string }>;
    };
    expect(doc.id).toBe(did);
    expect(doc.alsoKnownAs).toEqual([`at://${handle}`]);
    expect(doc.service).toContainEqual(expect.objectContaining({ id: '#atproto_pds', serviceEndpoint: `http://localhost:${pdsPort}` }));

    const post = await agent.post({ text, createdAt: new Date().toISOString() });
    expect(post.uri).toMatch(new RegExp(`^at://${did}/app\\.bsky\\.feed\\.post/`));
    const list = await agent.com.atproto.repo.listRecords({ repo: did, collection: 'app.bsky.feed.post' });
    expect(list.data.records.map((r) => r.value.text)).toEqual([text]);
  });

  it('stack down leaves no process, registration, lock or open port behind', async () => {
    await status(); // remember the pids
    const down = await stack(['down']);
    expect(down.code, explain(down)).toBe(0);
    await expectNothingLeft(plcPort, pdsPort);
  });

  it('stack up again reuses the kept data and secrets: log in, the post and the DID are still there', async () => {
    const up = await stack(['up', '--detach']);
    expect(up.code, explain(up)).toBe(0);
    expect(readFileSync(path.join(stateDir(), 'secrets.json'), 'utf8')).toBe(secrets);

    const agent = new AtpAgent({ service: pdsUrl });
    const session = await agent.login({ identifier: handle, password });
    expect(session.data.did).toBe(did);
    const list = await agent.com.atproto.repo.listRecords({ repo: did, collection: 'app.bsky.feed.post' });
    expect(list.data.records.map((r) => r.value.text)).toEqual([text]);
    expect((await fetch(`${plcUrl}/${did}`)).status).toBe(200);

    await status();
    const down = await stack(['down']);
    expect(down.code, explain(down)).toBe(0);
    await expectNothingLeft(plcPort, pdsPort);
  });
});
