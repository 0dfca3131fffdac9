/** The supervisor protocol's stop request: what `stack down` leaves for the `stack up` it stops. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { askOwnerToStop, stopRequestPath, takeStopRequest } from '../../src/engine/supervisor.js';
import { processStartTime } from '../../src/util/proc.js';
import { tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function stateDir(): Promise<string> {
  const { dir, cleanup } = await tempDir('supervisor-');
  cleanups.push(cleanup);
  return dir;
}

describe('stop request', () => {
  it('is read once by the process it names; a stale one for another pid is ignored', async () => {
    const dir = await stateDir();
    expect(takeStopRequest(dir)).toEqual({});
    await writeFile(stopRequestPath(dir), JSON.stringify({ timeoutMs: 1000, pid: process.pid + 1 }));
    expect(takeStopRequest(dir)).toEqual({});
    await writeFile(stopRequestPath(dir), JSON.stringify({ timeoutMs: 1000, pid: process.pid }));
    expect(takeStopRequest(dir)).toEqual({ timeoutMs: 1000 });
    expect(existsSync(stopRequestPath(dir))).toBe(false);
  });

  it('askOwnerToStop leaves the timeout for the owner (mode 0600), signals it, waits for its exit, and cleans up', async () => {
    const dir = await stateDir();
    const file = stopRequestPath(dir);
    // The owner reads the request when SIGTERM arrives, as `stack up` does, and reports it.
    const code = `process.on('SIGTERM', () => { const fs = require('fs'); process.stdout.write(JSON.stringify({ mode: fs.statSync(${JSON.stringify(file)}).mode & 0o777, request: JSON.parse(fs.readFileSync(${JSON.stringify(file)}, 'utf8')) })); process.exit(0); }); setInterval(() => {}, 1000); console.log('ready');`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(async () => void child.kill('SIGKILL'));
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((resolve) => child.stdout!.once('data', resolve));
    const owner = { pid: child.pid!, processStartTime: processStartTime(child.pid!)!, startedAt: new Date().toISOString(), command: 'up' };
    const stopped = await askOwnerToStop(dir, owner, { timeoutMs: 1000 }, [600_000]);
    expect(stopped).toBe(true);
    expect(JSON.parse(out.split('\n').slice(1).join('\n'))).toEqual({ mode: 0o600, request: { timeoutMs: 1000, pid: child.pid } });
    expect(existsSync(file)).toBe(false);
  });
});
