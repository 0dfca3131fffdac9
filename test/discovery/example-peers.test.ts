/**
 * The example under examples/: `stack up` of examples/discovery-peers.yaml, run from a fresh
 * folder as a user would, and its two services find each other through the stack's discovery
 * (the sql catalog on SQLite) with no configuration of their own; `stack down` leaves their
 * rows as history with stopped_at set.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { freePort, waitFor } from '../helpers/net.js';
import { tempDir } from '../engine/helpers.js';
import { repoRoot, stackBin, type CliResult } from '../cli/helpers.js';

const profile = path.join(repoRoot, 'examples', 'discovery-peers.yaml');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function stack(args: string[], cwd: string, env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [stackBin, ...args, '-p', profile], {
      cwd,
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('the example services find each other with no configuration, and deregister on down', async () => {
  const { dir, cleanup } = await tempDir('stack-example-peers-');
  const env = { PING_PORT: String(await freePort()), PONG_PORT: String(await freePort()) };
  cleanups.push(cleanup, async () => void (await stack(['down'], dir, env)));

  const up = await stack(['up', '--detach'], dir, env);
  expect(up.code, up.stderr).toBe(0);
  const logs = path.join(dir, '.stack', 'discovery-peers', 'logs');
  const log = (name: string) => readFile(path.join(logs, `${name}.log`), 'utf8').catch(() => '');
  await waitFor(
    async () => (await log('ping')).includes('found peer pong') && (await log('pong')).includes('found peer ping'),
    30_000,
    'both peers to find each other',
  );
  expect(await log('ping')).toContain(`found peer pong at http://127.0.0.1:${env.PONG_PORT}: hello from pong`);
  expect(await log('pong')).toContain(`found peer ping at http://127.0.0.1:${env.PING_PORT}: hello from ping`);

  const down = await stack(['down'], dir, env);
  expect(down.code, down.stderr).toBe(0);
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(path.join(dir, '.stack', 'discovery-peers', 'catalog.sqlite'), { readonly: true });
  try {
    const rows = db.prepare('SELECT service, id, stopped_at FROM stack_instances ORDER BY service, id').all() as {
      service: string;
      id: string;
      stopped_at: number | null;
    }[];
    // The services' own registrations and the ones `stack` made for them: all stopped, all kept.
    expect(rows.map((r) => [r.service, r.id, r.stopped_at !== null])).toEqual([
      ['greeter', 'ping', true],
      ['greeter', 'pong', true],
      ['ping', 'discovery-peers-ping-0', true],
      ['pong', 'discovery-peers-pong-0', true],
    ]);
  } finally {
    db.close();
  }
});
