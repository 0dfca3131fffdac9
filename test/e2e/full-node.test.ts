/**
 * End to end: `stack up --profile full-node` runs a whole ATproto node as local processes
 * (Debian's PostgreSQL, the PLC directory, the PDS, the AppView's dataplane, the AppView, Ozone)
 * that Bluesky's own client (@atproto/api) uses: two accounts, a follow, posts; the follower's
 * timeline, the author feed and the profile come from the AppView, directly and through the
 * PDS's proxy; a report made through the PDS reaches Ozone. `stack down` leaves nothing behind;
 * a second `stack up` keeps accounts, posts, DIDs and the AppView's index.
 *
 * HOME is an empty folder and the stack's state starts empty. The package install is shared with
 * dev-cluster's end-to-end test through the package cache (same pinned set): only the first run on
 * a machine installs (a couple of minutes); FULL_NODE_E2E_EMPTY_CACHE=1 uses an empty cache too.
 * Ports: free loopback ports through the profile's *_PORT variables, so a node on the default
 * ports is no obstacle. Needs Debian's postgresql package (scripts/setup.sh installs it).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStack, type CliResult } from '../helpers/cli.js';
import { freePort, portOpen, waitFor } from '../helpers/net.js';
import { isAlive, loadAtpAgent, registrations, see, tearDownStack, type SeenProcesses } from '../helpers/e2e.js';
import { tmpFiles } from '../helpers/tmp.js';

/** The first `up` may install packages and compile a native module: minutes, not seconds. */
const FIRST_UP_TIMEOUT_MS = 20 * 60_000;
const UP_TIMEOUT_MS = 3 * 60_000;
/** Posts reach the AppView through the firehose and the dataplane: well under a second, polled. */
const INDEX_TIMEOUT_MS = 30_000;

interface FeedView {
  feed: Array<{ post: { uri: string; author: { did: string; handle: string }; record: { text?: string } } }>;
}
interface ProfileView {
  did: string;
  handle: string;
  postsCount?: number;
  followersCount?: number;
  followsCount?: number;
}
/** The parts of @atproto/api this test uses (loaded at run time from the package cache). */
interface Agent {
  session?: { did: string; handle: string };
  createAccount(input: { handle: string; email: string; password: string }): Promise<{ data: { did: string; handle: string } }>;
  login(input: { identifier: string; password: string }): Promise<{ data: { did: string } }>;
  post(record: { text: string; createdAt: string }): Promise<{ uri: string; cid: string }>;
  follow(did: string): Promise<{ uri: string }>;
  withProxy(serviceType: string, did: string): Agent;
  app: {
    bsky: {
      feed: {
        getTimeline(params: Record<string, never>): Promise<{ data: FeedView }>;
        getAuthorFeed(params: { actor: string }): Promise<{ data: FeedView }>;
        getPosts(params: { uris: string[] }): Promise<{ data: { posts: Array<{ uri: string; record: { text?: string } }> } }>;
      };
      actor: { getProfile(params: { actor: string }): Promise<{ data: ProfileView }> };
    };
  };
  com: {
    atproto: {
      moderation: {
        createReport(input: {
          reasonType: string;
          subject: { $type: string; uri: string; cid: string };
        }): Promise<{ data: { id: number; reportedBy: string } }>;
      };
    };
  };
}
type AgentClass = new (opts: { service: string }) => Agent;

interface StatusView {
  empty: boolean;
  services: Array<{ name: string; state: string; running: boolean; handle?: { pid?: number } }>;
}

const SERVICES = ['postgres', 'plc', 'pds', 'dataplane', 'appview', 'ozone'] as const;
const PORT_VARIABLES = {
  postgres: 'POSTGRES_PORT',
  plc: 'PLC_PORT',
  pds: 'PDS_PORT',
  dataplane: 'DATAPLANE_PORT',
  bsync: 'BSYNC_PORT',
  appview: 'APPVIEW_PORT',
  ozone: 'OZONE_PORT',
} as const;

const work = tmpFiles();
let env: Record<string, string>;
const ports = {} as Record<keyof typeof PORT_VARIABLES, number>;
let AtpAgent: AgentClass;
/** Every pid a service of the stack ran as, and PostgreSQL's postmaster, for the "nothing left" checks. */
const seenPids: SeenProcesses = new Map();

const stack = (args: string[], timeoutMs = UP_TIMEOUT_MS): Promise<CliResult> =>
  runStack([...args, '--profile', 'full-node'], { cwd: work.dir, env, timeoutMs });
const stateDir = () => path.join(work.dir, '.stack', 'full-node');
const explain = (r: CliResult) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
const url = (service: keyof typeof PORT_VARIABLES) => `http://localhost:${ports[service]}`;
const secret = (name: string): string =>
  (JSON.parse(readFileSync(path.join(stateDir(), 'secrets.json'), 'utf8')) as { secrets: Record<string, string> }).secrets[name] ?? '';
const serviceDids = () =>
  JSON.parse(readFileSync(path.join(stateDir(), 'data', 'service-dids', 'dids.json'), 'utf8')) as { appview: { did: string }; ozone: { did: string } };

async function status(): Promise<StatusView> {
  const r = await stack(['status', '--json']);
  expect(r.code, explain(r)).toBe(0);
  const view = JSON.parse(r.stdout) as StatusView;
  for (const s of view.services) if (s.handle?.pid !== undefined) see(seenPids, s.handle.pid);
  const postmasterPid = path.join(stateDir(), 'data', 'postgres', 'pgdata', 'postmaster.pid');
  if (existsSync(postmasterPid)) see(seenPids, Number(readFileSync(postmasterPid, 'utf8').split('\n')[0]));
  return view;
}

async function expectNothingLeft(): Promise<void> {
  for (const pid of seenPids.keys()) expect(isAlive(pid), `process ${pid} is still running`).toBe(false);
  for (const [name, port] of Object.entries(ports)) expect(await portOpen(port), `${name}'s port ${port} is still open`).toBe(false);
  expect(registrations(work.dir)).toEqual([]);
  expect(existsSync(path.join(stateDir(), 'lock'))).toBe(false);
  const pids = path.join(stateDir(), 'pids');
  expect(existsSync(pids) ? readdirSync(pids) : []).toEqual([]);
  // PostgreSQL shut down cleanly (it removes its pid file last).
  expect(existsSync(path.join(stateDir(), 'data', 'postgres', 'pgdata', 'postmaster.pid'))).toBe(false);
  expect((await status()).services.filter((s) => s.running)).toEqual([]);
}

/** Polls `read` until `ok` holds for its result (indexing runs behind the writes). */
function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  return waitFor(
    async () => {
      const value = await read();
      return ok(value) ? value : undefined;
    },
    INDEX_TIMEOUT_MS,
    what,
  );
}

beforeAll(async () => {
  for (const name of Object.keys(PORT_VARIABLES) as Array<keyof typeof PORT_VARIABLES>) ports[name] = await freePort();
  const home = path.join(work.dir, 'home');
  mkdirSync(home);
  // The package cache outside the empty HOME, shared with dev-cluster's test (see the header).
  const cache = process.env.FULL_NODE_E2E_EMPTY_CACHE
    ? path.join(work.dir, 'cache')
    : process.env.ATPROTO_STACKS_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'atproto-stacks');
  env = { HOME: home, ATPROTO_STACKS_CACHE: cache, XDG_CACHE_HOME: path.join(home, '.cache') };
  for (const [name, variable] of Object.entries(PORT_VARIABLES)) env[variable] = String(ports[name as keyof typeof PORT_VARIABLES]);
  const up = await stack(['up', '--detach'], FIRST_UP_TIMEOUT_MS);
  expect(up.code, explain(up)).toBe(0);
  AtpAgent = loadAtpAgent<AgentClass>(env);
}, FIRST_UP_TIMEOUT_MS + 60_000);

afterAll(() => tearDownStack(env ? () => stack(['down'], 2 * 60_000) : undefined, seenPids, () => work.cleanup()), 3 * 60_000);

describe('full-node: PostgreSQL, PLC, PDS, AppView with its dataplane, and Ozone, used by @atproto/api', () => {
  const password = 'correct horse battery staple';
  const alice = { handle: 'alice.test', did: '' };
  const bob = { handle: 'bob.test', did: '' };
  const texts = [`first post from the full node (${new Date().toISOString()})`, 'second post'];
  let secrets: string;
  let firstPost: { uri: string; cid: string };

  it('is up and healthy: every task completed, every service healthy on its own endpoint, loopback only', async () => {
    const view = await status();
    const states = Object.fromEntries(view.services.map((s) => [s.name, s.state]));
    expect(states).toEqual({
      setup: 'completed',
      databases: 'completed',
      'service-dids': 'completed',
      ...Object.fromEntries(SERVICES.map((s) => [s, 'healthy'])),
    });
    expect((await fetch(`${url('plc')}/_health`)).status).toBe(200);
    expect((await fetch(`${url('pds')}/xrpc/_health`)).status).toBe(200);
    expect(await (await fetch(`${url('dataplane')}/_health`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${url('appview')}/xrpc/_health`)).status).toBe(200);
    expect((await fetch(`${url('ozone')}/xrpc/_health`)).status).toBe(200);
    // Secrets generated once, mode 0600; PostgreSQL's cluster and socket under the state folder.
    secrets = readFileSync(path.join(stateDir(), 'secrets.json'), 'utf8');
    expect(statSync(path.join(stateDir(), 'secrets.json')).mode & 0o777).toBe(0o600);
    expect(Object.keys((JSON.parse(secrets) as { secrets: object }).secrets)).toEqual(
      expect.arrayContaining(['postgresPassword', 'appviewSigningKey', 'ozoneSigningKey', 'pdsJwtSecret']),
    );
    expect(existsSync(path.join(stateDir(), 'data', 'postgres', 'pgdata', 'PG_VERSION'))).toBe(true);
    expect(readdirSync(path.join(stateDir(), 'data', 'postgres', 'run'))).toContain(`.s.PGSQL.${ports.postgres}`);
    // Nothing listens beyond loopback: the listening sockets of our ports are all on 127.0.0.1.
    const listening = execFileSync('ss', ['-Htln'], { encoding: 'utf8' });
    for (const port of Object.values(ports)) {
      const lines = listening.split('\n').filter((l) => new RegExp(`:${port}\\s`).test(l));
      expect(lines.length, `port ${port} listens`).toBeGreaterThan(0);
      for (const line of lines) expect(line, `port ${port}`).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}\\s`));
    }
  });

  it('registered the AppView and Ozone in the PLC directory with their services', async () => {
    const dids = serviceDids();
    const appview = (await (await fetch(`${url('plc')}/${dids.appview.did}`)).json()) as {
      service: Array<{ id: string; type: string; serviceEndpoint: string }>;
    };
    expect(appview.service).toContainEqual({ id: '#bsky_appview', type: 'BskyAppView', serviceEndpoint: url('appview') });
    const ozone = (await (await fetch(`${url('plc')}/${dids.ozone.did}`)).json()) as { service: Array<{ id: string; type: string; serviceEndpoint: string }> };
    expect(ozone.service).toContainEqual({ id: '#atproto_labeler', type: 'AtprotoLabeler', serviceEndpoint: url('ozone') });
  });

  it('two accounts, a follow and posts: the timeline, author feed and profile come from the AppView', async () => {
    const a = new AtpAgent({ service: url('pds') });
    alice.did = (await a.createAccount({ handle: alice.handle, email: 'alice@example.com', password })).data.did;
    const b = new AtpAgent({ service: url('pds') });
    bob.did = (await b.createAccount({ handle: bob.handle, email: 'bob@example.com', password })).data.did;
    await b.follow(alice.did);
    firstPost = await a.post({ text: texts[0]!, createdAt: new Date().toISOString() });
    await a.post({ text: texts[1]!, createdAt: new Date().toISOString() });

    // Directly at the AppView (no login): the author feed by handle (resolved through the PDS) and the profile.
    const appview = new AtpAgent({ service: url('appview') });
    const feed = await eventually(
      () =>
        appview.app.bsky.feed.getAuthorFeed({ actor: alice.handle }).then(
          (r) => r.data,
          () => ({ feed: [] }) as FeedView,
        ),
      (f) => f.feed.length === 2,
      "alice's two posts in the AppView",
    );
    expect(feed.feed.map((f) => f.post.record.text).sort()).toEqual([...texts].sort());
    const profile = await eventually(
      () => appview.app.bsky.actor.getProfile({ actor: alice.handle }).then((r) => r.data),
      (p) => p.postsCount === 2 && p.followersCount === 1,
      "alice's profile counts",
    );
    expect(profile).toMatchObject({ did: alice.did, handle: alice.handle, postsCount: 2, followersCount: 1 });
    const posts = await appview.app.bsky.feed.getPosts({ uris: [firstPost.uri] });
    expect(posts.data.posts.map((p) => p.record.text)).toEqual([texts[0]]);

    // Through the PDS's proxy: bob's timeline shows alice's posts (default AppView, and by DID with atproto-proxy).
    const timeline = await eventually(
      () => b.app.bsky.feed.getTimeline({}).then((r) => r.data),
      (t) => t.feed.length === 2,
      "bob's timeline",
    );
    expect(timeline.feed.every((f) => f.post.author.did === alice.did)).toBe(true);
    const proxied = await b.withProxy('bsky_appview', serviceDids().appview.did).app.bsky.feed.getTimeline({});
    expect(proxied.data.feed.map((f) => f.post.uri)).toEqual(timeline.feed.map((f) => f.post.uri));
    const bobProfile = await b.app.bsky.actor.getProfile({ actor: bob.handle });
    expect(bobProfile.data).toMatchObject({ did: bob.did, followsCount: 1, postsCount: 0 });
  });

  it('a report made through the PDS reaches Ozone', async () => {
    const b = new AtpAgent({ service: url('pds') });
    await b.login({ identifier: bob.handle, password });
    const report = await b.com.atproto.moderation.createReport({
      reasonType: 'com.atproto.moderation.defs#reasonSpam',
      subject: { $type: 'com.atproto.repo.strongRef', uri: firstPost.uri, cid: firstPost.cid },
    });
    expect(report.data.reportedBy).toBe(bob.did);
    const auth = `Basic ${Buffer.from(`admin:${secret('ozoneAdminPassword')}`).toString('base64')}`;
    const events = (await (
      await fetch(`${url('ozone')}/xrpc/tools.ozone.moderation.queryEvents?types=tools.ozone.moderation.defs%23modEventReport`, {
        headers: { authorization: auth },
      })
    ).json()) as {
      events: Array<{ createdBy: string; subject: { uri?: string } }>;
    };
    expect(events.events).toContainEqual(expect.objectContaining({ createdBy: bob.did, subject: expect.objectContaining({ uri: firstPost.uri }) }));
  });

  it('stack down leaves no process, port, registration or lock behind', async () => {
    await status(); // remember the pids
    const down = await stack(['down']);
    expect(down.code, explain(down)).toBe(0);
    await expectNothingLeft();
  });

  it('stack up again keeps accounts, posts, DIDs and the AppView index', async () => {
    const didsBefore = serviceDids();
    const up = await stack(['up', '--detach']);
    expect(up.code, explain(up)).toBe(0);
    expect(readFileSync(path.join(stateDir(), 'secrets.json'), 'utf8')).toBe(secrets);
    expect(serviceDids()).toEqual(didsBefore);

    const b = new AtpAgent({ service: url('pds') });
    expect((await b.login({ identifier: bob.handle, password })).data.did).toBe(bob.did);
    expect((await fetch(`${url('plc')}/${alice.did}`)).status).toBe(200);
    // The index lives in PostgreSQL: the AppView answers at once, before any catch-up could run.
    const timeline = await b.app.bsky.feed.getTimeline({});
    expect(timeline.data.feed.map((f) => f.post.record.text).sort()).toEqual([...texts].sort());
    const profile = await new AtpAgent({ service: url('appview') }).app.bsky.actor.getProfile({ actor: alice.handle });
    expect(profile.data).toMatchObject({ did: alice.did, postsCount: 2, followersCount: 1 });

    // And it keeps indexing: a new post shows up.
    const a = new AtpAgent({ service: url('pds') });
    await a.login({ identifier: alice.handle, password });
    await a.post({ text: 'after the restart', createdAt: new Date().toISOString() });
    await eventually(
      () => b.app.bsky.feed.getTimeline({}).then((r) => r.data),
      (t) => t.feed.length === 3,
      'the post written after the restart',
    );

    await status();
    const down = await stack(['down']);
    expect(down.code, explain(down)).toBe(0);
    await expectNothingLeft();
  });
});
