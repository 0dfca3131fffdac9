import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { waitUntilHealthy } from '../../src/health/index.js';
import { healthTargetFor } from '../../src/index.js';
import type { ServiceSpec } from '../../src/profile/types.js';
import { createProcessRuntime, type ProcessHandle } from '../../src/runtime/process.js';
import { isProcessAlive, processStartTime } from '../../src/util/proc.js';
import type { Runtime, ServiceHandle, StartRequest } from '../../src/runtime/types.js';
import { freePort, waitFor } from '../helpers/net.js';
import { processService as makeService } from './helpers.js';

const fixture = fileURLToPath(new URL('../fixtures/http-service.mjs', import.meta.url));
const STACK = 'proc-test';

let dir: string;
let runtime: Runtime;
const started: ServiceHandle[] = [];

function request(service: ServiceSpec, environment: Record<string, string> = {}, replica = 0): StartRequest {
  return { stack: STACK, service, replica, environment, files: [], configDir: path.join(dir, 'config'), stateDir: path.join(dir, 'state'), profileDir: dir };
}

async function start(service: ServiceSpec, environment: Record<string, string> = {}, replica = 0): Promise<ProcessHandle> {
  const handle = (await runtime.start(request(service, environment, replica))) as ProcessHandle;
  started.push(handle);
  return handle;
}

const logText = (handle: ServiceHandle) => readFile(handle.logFile!, 'utf8').catch(() => '');

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'process-runtime-'));
  runtime = createProcessRuntime({ stateDirFor: () => path.join(dir, 'state') });
});

afterEach(async () => {
  for (const handle of started.splice(0)) {
    try {
      process.kill(-(handle.pgid ?? handle.pid!), 'SIGKILL');
    } catch {
      // already stopped
    }
  }
  await runtime.close();
  await rm(dir, { recursive: true, force: true });
});

describe('process runtime', () => {
  it('starts a real service whose output goes to its log file, and stops it gracefully', async () => {
    const port = await freePort();
    const handle = await start(makeService('web', { command: [process.execPath, fixture, `--port=${port}`] }));
    expect(handle.logFile).toBe(path.join(dir, 'state', 'logs', 'web.log'));
    expect(existsSync(path.join(dir, 'state', 'pids', 'web-0.json'))).toBe(true);

    expect(runtime.endpoint(handle, port)).toEqual({ host: '127.0.0.1', port });
    const check = { strategy: 'http' as const, endpoint: '/health', intervalMs: 1000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 };
    const target = healthTargetFor(runtime, handle, makeService('web', { port }), check, { profileDir: dir });
    expect(target).toMatchObject({ host: '127.0.0.1', port, cwd: dir });
    expect((await waitUntilHealthy(check, target, { deadlineMs: 20_000 })).ok).toBe(true);
    expect(await runtime.inspect(handle)).toEqual({ running: true });
    await waitFor(async () => (await logText(handle)).includes(`listening on 127.0.0.1:${port}`), 10_000, 'the listening line');
    // The service writes its log file itself (no pipe through us), so output outlives `stack`.
    expect(await readlink(`/proc/${handle.pid}/fd/1`)).toBe(handle.logFile);
    expect(await readlink(`/proc/${handle.pid}/fd/2`)).toBe(handle.logFile);

    await runtime.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 10_000 });
    expect(await runtime.wait(handle)).toEqual({ code: 0, signal: null }); // it handled SIGTERM itself
    expect(await runtime.inspect(handle)).toMatchObject({ running: false });
    expect(await logText(handle)).toContain('received SIGTERM');
    expect(existsSync(handle.pidFile)).toBe(false);
  });

  it('gates on the fixture health file: unhealthy (503) until the file exists', async () => {
    const port = await freePort();
    const healthFile = path.join(dir, 'healthy');
    const handle = await start(makeService('gated', { command: [process.execPath, fixture, `--port=${port}`, `--health-file=${healthFile}`] }));
    const check = { strategy: 'http' as const, endpoint: '/health', intervalMs: 1000, timeoutMs: 1000, retries: 0, startPeriodMs: 0 };
    const target = runtime.endpoint(handle, port);
    const details: string[] = [];
    const waiting = waitUntilHealthy(check, target, { deadlineMs: 20_000, onProbe: (r) => details.push(r.detail) });
    await waitFor(() => details.some((d) => d.includes('HTTP 503')), 10_000, 'a 503 from the fixture');
    await writeFile(healthFile, '');
    expect(await waiting).toEqual({ ok: true, detail: 'HTTP 200 from GET /health' });
  });

  it('reports the exit code through wait()', async () => {
    const handle = await start(makeService('task', { command: [process.execPath, fixture, '--exit-after-ms=10', '--exit-code=3'] }));
    expect(await runtime.wait(handle)).toEqual({ code: 3, signal: null });
  });

  it('runs in the working directory with the request environment over the inherited one', async () => {
    const work = path.join(dir, 'work');
    await mkdir(work);
    process.env.STACK_TEST_INHERITED = 'from-parent';
    try {
      const service = makeService('env', { workingDir: 'work', command: ['sh', '-c', 'pwd; echo "A=$A B=$STACK_TEST_INHERITED"'] });
      const handle = await start(service, { A: 'from-request' });
      await runtime.wait(handle);
      expect(await logText(handle)).toBe(`${work}\nA=from-request B=from-parent\n`);

      const minimal = createProcessRuntime({ inheritEnv: 'minimal' });
      const second = (await minimal.start(
        request(makeService('env', { workingDir: 'work', command: ['sh', '-c', 'echo "B=$STACK_TEST_INHERITED"'] }), {}, 1),
      )) as ProcessHandle;
      started.push(second);
      await minimal.wait(second);
      expect(second.logFile).toBe(path.join(dir, 'state', 'logs', 'env-1.log'));
      expect(await logText(second)).toBe('B=\n');
      await minimal.close();
    } finally {
      delete process.env.STACK_TEST_INHERITED;
    }
  });

  it('never runs argv through a shell, and uses /bin/sh -c only with shell: true', async () => {
    const marker = path.join(dir, 'injected');
    const plain = await start(makeService('plain', { command: ['echo', `hi; touch ${marker}`] }));
    await runtime.wait(plain);
    expect(await logText(plain)).toBe(`hi; touch ${marker}\n`);
    expect(existsSync(marker)).toBe(false);

    const shelled = await start(makeService('shelled', { shell: true, command: [`touch ${marker} && echo made`] }));
    expect(await runtime.wait(shelled)).toEqual({ code: 0, signal: null });
    expect(existsSync(marker)).toBe(true);
  });

  it('stops the whole process tree: a child that spawned a grandchild, both gone', async () => {
    const childPidFile = path.join(dir, 'grandchild.pid');
    const handle = await start(makeService('tree', { command: [process.execPath, fixture] }), { CHILD_PID_FILE: childPidFile });
    const grandchild = Number(await waitFor(async () => (existsSync(childPidFile) ? readFile(childPidFile, 'utf8') : undefined), 10_000, 'the grandchild'));
    expect(isProcessAlive(grandchild)).toBe(true);

    await runtime.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 10_000 });
    expect(isProcessAlive(handle.pid)).toBe(false);
    expect(isProcessAlive(grandchild)).toBe(false);
  });

  it('escalates to SIGKILL when the service ignores the stop signal', async () => {
    const handle = await start(makeService('stubborn', { command: [process.execPath, fixture] }), { IGNORE_SIGTERM: '1' });
    await waitFor(async () => (await logText(handle)).includes('starting'), 10_000, 'the SIGTERM handler');

    await runtime.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 300 });
    expect(await runtime.wait(handle)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await logText(handle)).toContain('received SIGTERM, ignoring it');
  });

  it('discover() from a fresh runtime finds a running instance and not a dead one, and can stop it', async () => {
    const alive = await start(makeService('alive', { command: ['sleep', '60'] }));
    const dead = await start(makeService('dead', { command: ['true'] }));
    await runtime.wait(dead);
    await runtime.close();

    const fresh = createProcessRuntime({ stateDirFor: () => path.join(dir, 'state') });
    const found = await fresh.discover(STACK);
    expect(found.map((h) => h.service)).toEqual(['alive']);
    const [handle] = found;
    expect(handle).toMatchObject({ pid: alive.pid, pgid: alive.pgid, logFile: alive.logFile, runtime: 'process' });
    expect(await fresh.inspect(handle!)).toEqual({ running: true });

    const waiting = fresh.wait(handle!);
    await fresh.stop(handle!, { signal: 'SIGTERM', gracePeriodMs: 5000 });
    expect(await waiting).toEqual({ code: null, signal: null }); // not our child: exit status unknown
    expect(isProcessAlive(alive.pid)).toBe(false);
    expect(await fresh.discover(STACK)).toEqual([]);

    await fresh.teardown(STACK);
    expect(existsSync(path.join(dir, 'state', 'pids'))).toBe(false);
    await fresh.close();
  });

  it('does not mistake a recycled pid for its own process', async () => {
    // An unrelated live process that got "our" pid: same pid, different start time.
    const stranger = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    try {
      const pid = stranger.pid!;
      await waitFor(() => processStartTime(pid), 5000, 'the stranger to start');
      const pidFile = path.join(dir, 'state', 'pids', 'ghost-0.json');
      const persisted = {
        runtime: 'process',
        stack: STACK,
        service: 'ghost',
        replica: 0,
        id: String(pid),
        pid,
        pgid: pid,
        startedAt: new Date().toISOString(),
        logFile: path.join(dir, 'state', 'logs', 'ghost.log'),
        pidFile,
        processStartTime: '1',
      };
      await mkdir(path.dirname(pidFile), { recursive: true });
      await writeFile(pidFile, JSON.stringify(persisted));

      const fresh = createProcessRuntime({ stateDirFor: () => path.join(dir, 'state') });
      expect(await fresh.discover(STACK)).toEqual([]);
      await fresh.stop(persisted as ProcessHandle, { signal: 'SIGKILL', gracePeriodMs: 100 });
      expect(isProcessAlive(pid)).toBe(true); // left alone
      await fresh.close();
    } finally {
      stranger.kill('SIGKILL');
    }
  });

  it('shows the last lines of a log, and follows it until aborted', async () => {
    const script = 'for i in 1 2 3 4 5; do echo "line $i"; done; i=6; while true; do echo "line $i"; i=$((i+1)); sleep 0.05; done';
    const handle = await start(makeService('chatty', { command: ['sh', '-c', script] }));
    await waitFor(async () => (await logText(handle)).includes('line 7'), 10_000, 'some output');

    const tail: string[] = [];
    for await (const line of runtime.logs(handle, { follow: false, tail: 2 })) tail.push(line);
    expect(tail).toHaveLength(2);
    const last = Number(tail[1]!.split(' ')[1]);
    expect(tail[0]).toBe(`line ${last - 1}`);

    const controller = new AbortController();
    const followed: string[] = [];
    for await (const line of runtime.logs(handle, { follow: true, tail: 1, signal: controller.signal })) {
      followed.push(line);
      if (followed.length === 4) controller.abort();
    }
    const numbers = followed.map((l) => Number(l.split(' ')[1]));
    expect(numbers).toEqual([numbers[0], numbers[0]! + 1, numbers[0]! + 2, numbers[0]! + 3]);
    expect(numbers[0]).toBeGreaterThanOrEqual(last);
  });

  it('prepare() names each service whose program cannot be found', async () => {
    const services = [
      makeService('ok', { command: ['node', '-v'] }),
      makeService('typo', { command: ['no-such-program-xyz', '--flag'] }),
      makeService('missing', { command: [] }),
      makeService('absolute', { command: ['/nonexistent/bin/server'] }),
      makeService('container', { runtime: 'docker', image: 'x' }),
    ];
    const error = await runtime.prepare(STACK, services, {}).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(InvalidInputError);
    const problems = (error as InvalidInputError).problems;
    expect(problems.map((p) => p.path)).toEqual(['services.typo.command', 'services.missing.command', 'services.absolute.command']);
    expect(problems[0]!.message).toContain("'no-such-program-xyz' not found on PATH");
    await expect(runtime.prepare(STACK, [services[0]!], {})).resolves.toBeUndefined();
  });

  it('fails to start clearly when the program is missing', async () => {
    await expect(runtime.start(request(makeService('broken', { command: ['/nonexistent/bin/server'] })))).rejects.toThrow(/cannot start 'broken'.*ENOENT/);
  });
});
