/**
 * The feed of the page, on its own: the graph first, a detached stack's history from its
 * supervisor.log (with the times it was logged), events of the UI's own doing, and a note (once)
 * when the status cannot be read.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRuntimeSet, type RuntimeSet } from '../../src/engine/runtimes.js';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import { createFeed, type Feed } from '../../src/ui/feed.js';
import type { UiMessage } from '../../src/ui/view.js';
import { waitFor } from '../helpers/net.js';
import { tempDir } from '../engine/helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A feed of a stack whose state folder `prepare` filled first. */
async function feedFor(
  services: Record<string, unknown>,
  prepare: (stateDir: string) => Promise<void>,
  given?: RuntimeSet,
): Promise<{ feed: Feed; stateDir: string; messages: UiMessage[]; start: () => void }> {
  const { dir, cleanup } = await tempDir('stack-ui-feed-');
  const profile = mkDeploymentProfile({ name: 'feed', runtime: 'process', discovery: { backend: 'memory' }, services } as never, { cwd: dir });
  const stateDir = path.join(dir, '.stack', 'feed');
  await mkdir(stateDir, { recursive: true });
  await prepare(stateDir);
  const runtimes = given ?? createRuntimeSet({ stateDir, docker: profile.docker });
  const feed = createFeed({ profile, stateDir, cwd: dir, runtimes, pollMs: 50 });
  const messages: UiMessage[] = [];
  let unsubscribe = () => {};
  cleanups.push(async () => {
    unsubscribe();
    await feed.close();
    await runtimes.close();
    await cleanup();
  });
  return { feed, stateDir, messages, start: () => (unsubscribe = feed.subscribe((m) => messages.push(m))) };
}

describe('createFeed', () => {
  it('starts with the graph, replays the supervisor log with its times, and passes on its own events', async () => {
    const logged = [
      { time: '2026-01-01T00:00:01.000Z', type: 'stack', stack: 'feed', phase: 'starting', elapsedMs: 0 },
      { time: '2026-01-01T00:00:02.000Z', type: 'state', service: 'db', state: 'healthy', previous: 'checking', elapsedMs: 5 },
    ];
    const report = { type: 'report', report: { outcome: 'up' } };
    const log = [...logged.map((e) => JSON.stringify(e)), JSON.stringify(report), 'some error text', ''].join('\n');
    const f = await feedFor({ db: { command: ['true'] }, web: { command: ['true'], dependencies: [{ name: 'db', type: 'optional' }] } }, (stateDir) =>
      writeFile(path.join(stateDir, 'supervisor.log'), log),
    );
    f.start();
    await waitFor(() => f.messages.some((m) => m.kind === 'status'), 5000, 'the first status');
    expect(f.messages[0]).toMatchObject({ kind: 'hello', stack: 'feed', graph: { edges: [{ from: 'web', to: 'db', type: 'optional' }] } });
    const events = f.messages.flatMap((m) => (m.kind === 'event' ? [m.event] : []));
    expect(events).toEqual(logged); // the report line and the text are not events
    const status = f.messages.find((m) => m.kind === 'status');
    expect(status).toMatchObject({ status: { services: [] } }); // nothing runs

    f.feed.publish({ type: 'stack', stack: 'feed', phase: 'stopped', elapsedMs: 1 });
    const last = f.messages.at(-1);
    expect(last).toMatchObject({ kind: 'event', event: { type: 'stack', phase: 'stopped' } });
  });

  it('says once, as a note, when the status cannot be read', async () => {
    // A runtime that cannot be reached (a Docker engine that is not there, say).
    const unreachable: RuntimeSet = {
      get: () => Promise.reject(new Error('the Docker engine at tcp://127.0.0.1:1 is unreachable')),
      created: () => [],
      close: async () => undefined,
    };
    const f = await feedFor({ app: { command: ['true'] } }, async () => undefined, unreachable);
    f.start();
    await waitFor(() => f.messages.some((m) => m.kind === 'note'), 5000, 'a note');
    await new Promise((resolve) => setTimeout(resolve, 300)); // several more polls
    const notes = f.messages.filter((m) => m.kind === 'note');
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ text: "cannot read the stack's status: the Docker engine at tcp://127.0.0.1:1 is unreachable" });
  });
});
