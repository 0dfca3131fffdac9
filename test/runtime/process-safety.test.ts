/**
 * The process runtime never touches what is not the stack's (issue 11): forged pid files, pids or
 * groups it did not create, a folder shared by two stacks, symlinks planted in the state folder,
 * a pid file it cannot write, daemons that leave the process group, a port someone else holds.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createProcessRuntime, type ProcessHandle } from '../../src/runtime/process.js';
import { cgroupsUsable, instanceCgroup } from '../../src/runtime/process-cgroup.js';
import { isProcessAlive, processStartTime } from '../../src/util/proc.js';
import type { Runtime, StartRequest } from '../../src/runtime/types.js';
import { atomicWrite } from '../../src/util/fs.js';
import { freePort, waitFor } from '../helpers/net.js';
import { guardKill, processService } from './helpers.js';

const fixture = fileURLToPath(new URL('../fixtures/http-service.mjs', import.meta.url));
const STACK = 'safety';

let dir: string;
let stateDir: string;
let runtime: Runtime;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'process-safety-'));
  stateDir = path.join(dir, 'state');
  runtime = createProcessRuntime({ stateDirFor: () => stateDir, onWarning: () => undefined });
});

afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) await c();
  await runtime.close();
  await rm(dir, { recursive: true, force: true });
});

function request(stack: string, service = processService('web', { command: ['sleep', '300'] })): StartRequest {
  return { stack, service, replica: 0, environment: {}, files: [], configDir: path.join(dir, 'config'), stateDir, profileDir: dir };
}

/** A process the test starts itself (not through the runtime), leading its own group. */
function unrelated(): ChildProcess {
  const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
  cleanups.push(() => killGroup(child.pid!));
  return child;
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone
  }
}

async function forgePidFile(fields: Record<string, unknown>): Promise<string> {
  const file = path.join(stateDir, 'pids', 'web-0.json');
  await mkdir(path.dirname(file), { recursive: true });
  const handle = {
    runtime: 'process',
    stack: STACK,
    service: 'web',
    replica: 0,
    id: String(fields.pid),
    startedAt: new Date().toISOString(),
    logFile: path.join(stateDir, 'logs', 'web.log'),
    ...fields,
  };
  await writeFile(file, JSON.stringify(handle));
  return file;
}

const trackStarted = (h: ProcessHandle) => cleanups.push(() => killGroup(h.pgid));

describe('process runtime: only what is proven ours is signalled', () => {
  it('never signals pid 1 or process group 1 named by a forged pid file or state handle', async () => {
    const kill = guardKill(() => []);
    await forgePidFile({ pid: 1, pgid: 1 });
    expect(await runtime.discover(STACK)).toEqual([]);
    const forged = {
      runtime: 'process' as const,
      stack: STACK,
      service: 'web',
      replica: 0,
      id: '1',
      pid: 1,
      pgid: 1,
      startedAt: '',
      processStartTime: processStartTime(1)!,
    };
    expect(await runtime.inspect(forged)).toEqual({ running: false });
    await expect(runtime.stop(forged, { signal: 'SIGTERM', gracePeriodMs: 100 })).rejects.toMatchObject({ code: 'not_ours' });
    // A reload's signal (`changeMode: signal`) goes through the same proof.
    await expect(runtime.signal!(forged, 'SIGHUP')).rejects.toMatchObject({ code: 'not_ours' });
    expect(kill.blocked()).toEqual([]);
  });

  it('never signals group 1 through a valid pid of ours recorded with `pgid: 1`', async () => {
    const handle = (await runtime.start(request(STACK))) as ProcessHandle;
    trackStarted(handle);
    const kill = guardKill(() => [handle.pid]);
    const fresh = createProcessRuntime({ stateDirFor: () => stateDir });
    await expect(fresh.stop({ ...handle, pgid: 1 }, { signal: 'SIGTERM', gracePeriodMs: 100 })).rejects.toMatchObject({ code: 'not_ours' });
    expect(kill.blocked()).toEqual([]);
    expect(isProcessAlive(handle.pid)).toBe(true);
    await fresh.close();
  });

  it('reports a pid file without a recorded start time as stale and never signals its (recycled) pid', async () => {
    const other = unrelated();
    await forgePidFile({ pid: other.pid, pgid: other.pid });
    const kill = guardKill(() => [other.pid!]);
    expect(await runtime.discover(STACK)).toEqual([]);
    const [persisted] = [
      { runtime: 'process' as const, stack: STACK, service: 'web', replica: 0, id: String(other.pid), pid: other.pid!, pgid: other.pid!, startedAt: '' },
    ];
    expect(await runtime.inspect(persisted)).toEqual({ running: false });
    await expect(runtime.stop(persisted, { signal: 'SIGTERM', gracePeriodMs: 100 })).rejects.toMatchObject({
      code: 'not_ours',
      message: expect.stringContaining('no start time'),
    });
    expect(kill.calls.filter(([, s]) => s !== 0)).toEqual([]);
    expect(isProcessAlive(other.pid!)).toBe(true);
  });

  it('does not take a process carrying a forged start time but not our STACK_INSTANCE marker', async () => {
    const other = unrelated();
    await forgePidFile({ pid: other.pid, pgid: other.pid, processStartTime: processStartTime(other.pid!), instance: `${STACK}/web/0/feedface` });
    expect(await runtime.discover(STACK)).toEqual([]);
    expect(isProcessAlive(other.pid!)).toBe(true);
  });

  it('marks each instance with STACK_INSTANCE in its environment, recorded in its pid file', async () => {
    const handle = (await runtime.start(request(STACK))) as ProcessHandle;
    trackStarted(handle);
    const environ = (await readFile(`/proc/${handle.pid}/environ`, 'utf8')).split('\0');
    expect(handle.instance).toMatch(new RegExp(`^${STACK}/web/0/[0-9a-f]{16}$`));
    expect(environ).toContain(`STACK_INSTANCE=${handle.instance}`);
    expect(JSON.parse(await readFile(handle.pidFile, 'utf8'))).toMatchObject({ instance: handle.instance });
    const fresh = createProcessRuntime({ stateDirFor: () => stateDir });
    expect((await fresh.discover(STACK)).map((h) => h.pid)).toEqual([handle.pid]);
    await fresh.close();
  });
});

describe('process runtime: a state folder shared by two stacks', () => {
  it('refuses to start a service of another stack over a live instance of the first', async () => {
    const alpha = (await runtime.start(request('alpha'))) as ProcessHandle;
    trackStarted(alpha);
    const other = createProcessRuntime({ stateDirFor: () => stateDir });
    await expect(other.start(request('beta'))).rejects.toMatchObject({ code: 'state_dir_shared' });
    expect(await other.discover('beta')).toEqual([]);
    expect(JSON.parse(await readFile(alpha.pidFile, 'utf8'))).toMatchObject({ stack: 'alpha', pid: alpha.pid });
    expect(isProcessAlive(alpha.pid)).toBe(true);
    // Nor does its teardown forget alpha's instance.
    await other.teardown('beta');
    expect((await runtime.discover('alpha')).map((h) => h.pid)).toEqual([alpha.pid]);
    await other.close();
  });
});

describe('process runtime: a pid file that cannot be written', () => {
  it('stops the spawned service when pids/ is read-only, and says so', async () => {
    const pids = path.join(stateDir, 'pids');
    await mkdir(pids, { recursive: true });
    const readOnly = mountReadOnly(pids);
    cleanups.push(readOnly.undo);
    const marker = path.join(dir, 'started');
    const service = processService('web', { command: ['sh', '-c', `echo $$ > ${marker}; exec sleep 300`] });
    await expect(runtime.start(request(STACK, service))).rejects.toMatchObject({ code: 'start_failed', message: expect.stringContaining('stopped it again') });
    const pid = Number(await readFile(marker, 'utf8').catch(() => '0'));
    if (pid > 0) cleanups.push(() => killGroup(pid));
    // It may not have got as far as writing its pid; then it is certainly not running either.
    if (pid > 0) expect(isProcessAlive(pid)).toBe(false);
    expect(await runtime.discover(STACK)).toEqual([]);
  });
});

describe('process runtime: a service that daemonises', () => {
  it('stops what left the process group (new session) on stop, found by its marker, and says so', async () => {
    const daemonPidFile = path.join(dir, 'daemon.pid');
    const service = processService('web', { command: ['sh', '-c', `setsid sleep 300 & echo $! > ${daemonPidFile}; exec sleep 300`] });
    const warnings: string[] = [];
    const rt = createProcessRuntime({ stateDirFor: () => stateDir, onWarning: (m) => warnings.push(m) });
    const handle = (await rt.start(request(STACK, service))) as ProcessHandle;
    trackStarted(handle);
    const daemon = Number(await waitFor(async () => (await readFile(daemonPidFile, 'utf8').catch(() => '')).trim(), 10_000, 'the daemon pid'));
    cleanups.push(() => killGroup(daemon));
    await waitFor(() => processSession(daemon) === daemon, 10_000, 'the daemon in its own session');
    await rt.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 2000 });
    expect(isProcessAlive(handle.pid)).toBe(false);
    expect(isProcessAlive(daemon)).toBe(false);
    expect(warnings.join('\n')).toContain(String(daemon));
    await rt.close();
  });
});

describe('process runtime: a cgroup per instance, where cgroup v2 is writable', () => {
  it.runIf(cgroupsUsable())('stops a daemon that also cleared its environment, found through the instance cgroup', async () => {
    const daemonPidFile = path.join(dir, 'daemon.pid');
    // It forks after a moment: the child joins its cgroup right after spawning (what it forks in
    // that first instant is found by the marker only, and this daemon drops the marker).
    const service = processService('web', { command: ['sh', '-c', `sleep 0.3; setsid env -i /bin/sleep 300 & echo $! > ${daemonPidFile}; exec sleep 300`] });
    const handle = (await runtime.start(request(STACK, service))) as ProcessHandle;
    trackStarted(handle);
    const daemon = Number(await waitFor(async () => (await readFile(daemonPidFile, 'utf8').catch(() => '')).trim(), 10_000, 'the daemon pid'));
    cleanups.push(() => killGroup(daemon));
    await waitFor(
      async () => processSession(daemon) === daemon && !(await readFile(`/proc/${daemon}/environ`, 'utf8')).includes('STACK_INSTANCE'),
      10_000,
      'the daemon on its own',
    );
    await runtime.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 2000 });
    expect(isProcessAlive(daemon)).toBe(false);
    expect(existsSync(instanceCgroup(handle.instance!)!)).toBe(false); // removed once empty
  });
});

describe('process runtime: symlinks in the state folder', () => {
  it('refuses a planted logs/<svc>.log symlink: the output never reaches its target', async () => {
    const target = path.join(dir, 'victim');
    await writeFile(target, 'precious\n');
    await mkdir(path.join(stateDir, 'logs'), { recursive: true });
    await symlink(target, path.join(stateDir, 'logs', 'web.log'));
    const service = processService('web', { command: ['sh', '-c', 'echo leaked; sleep 300'] });
    await expect(runtime.start(request(STACK, service))).rejects.toMatchObject({ code: 'symlink_refused' });
    expect(await readFile(target, 'utf8')).toBe('precious\n');
  });

  it('refuses a symlinked logs/ or pids/ folder', async () => {
    const elsewhere = path.join(dir, 'elsewhere');
    await mkdir(elsewhere);
    await mkdir(stateDir, { recursive: true });
    await symlink(elsewhere, path.join(stateDir, 'logs'));
    await expect(runtime.start(request(STACK))).rejects.toMatchObject({ code: 'symlink_refused' });
    expect(existsSync(path.join(elsewhere, 'web.log'))).toBe(false);
  });

  it('atomicWrite within a folder refuses a symlinked subfolder (a rendered secret must not land outside)', async () => {
    const elsewhere = path.join(dir, 'elsewhere');
    await mkdir(elsewhere);
    await mkdir(path.join(stateDir, 'config'), { recursive: true });
    await symlink(elsewhere, path.join(stateDir, 'config', 'db'));
    await expect(atomicWrite(path.join(stateDir, 'config', 'db', 'secret.env'), 'PW=x\n', 0o600, { within: stateDir })).rejects.toMatchObject({
      code: 'symlink_refused',
    });
    expect(existsSync(path.join(elsewhere, 'secret.env'))).toBe(false);
  });

  it('`logs` does not read through a log file replaced by a symlink', async () => {
    const handle = (await runtime.start(request(STACK, processService('web', { command: ['sh', '-c', 'echo hi'] })))) as ProcessHandle;
    await runtime.wait(handle);
    const secret = path.join(dir, 'secret');
    await writeFile(secret, 'do not print\n');
    await rm(handle.logFile);
    await symlink(secret, handle.logFile);
    const read = async () => {
      const lines: string[] = [];
      for await (const line of runtime.logs(handle, { follow: false })) lines.push(line);
      return lines;
    };
    await expect(read()).rejects.toMatchObject({ code: 'symlink_refused' });
  });
});

describe('process runtime: a port someone else holds', () => {
  it('fails the start and names the holder, instead of letting the foreign listener pass the health check', async () => {
    const port = await freePort();
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
    const service = processService('web', { port, command: [process.execPath, fixture, `--port=${port}`] });
    await expect(runtime.start(request(STACK, service))).rejects.toMatchObject({
      code: 'port_in_use',
      message: expect.stringContaining(`port ${port} is already in use by pid ${process.pid}`),
    });
    expect(await runtime.discover(STACK)).toEqual([]);
  });
});

/** A read-only mount over `dir` (root), or a read-only mode (others); `undo` restores it. */
function mountReadOnly(folder: string): { undo: () => void } {
  if (process.getuid?.() === 0) {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', folder]);
    return { undo: () => execFileSync('umount', [folder]) };
  }
  execFileSync('chmod', ['0555', folder]);
  return { undo: () => execFileSync('chmod', ['0755', folder]) };
}

function processSession(pid: number): number | undefined {
  try {
    const text = execFileSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' });
    return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[3]);
  } catch {
    return undefined;
  }
}
