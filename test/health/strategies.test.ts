import { existsSync } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createCommandStrategy,
  createDockerStrategy,
  createFileStrategy,
  createHttpStrategy,
  createSystemdStrategy,
  createTcpStrategy,
  strategyFor,
  type ContainerHealth,
} from '../../src/health/index.js';
import { commandHealth } from '../../src/health/drivers/command.js';
import { dockerHealth } from '../../src/health/drivers/docker.js';
import { fileHealth } from '../../src/health/drivers/file.js';
import { httpHealth } from '../../src/health/drivers/http.js';
import { systemdHealth } from '../../src/health/drivers/systemd.js';
import { tcpHealth } from '../../src/health/drivers/tcp.js';
import { isProcessAlive } from '../../src/util/proc.js';
import { freePort, waitFor } from '../helpers/net.js';
import { makeCheck } from './check.js';
import { describeStrategyCases, type StrategyFixture } from './strategy.case.js';

const signal = () => new AbortController().signal;

/** An HTTP server on loopback answering every request with `status` (or never, when null). */
async function startServer(status: number | null): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    if (status === null) return; // hang: the probe must time out
    res.writeHead(status).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('no address');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('http strategy', () => {
  const http = createHttpStrategy();
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it('accepts exactly the configured statuses', async () => {
    const server = await startServer(401);
    close = server.close;
    const check = makeCheck({ expectedStatus: [401] });
    expect((await http.probe(check, { port: server.port }, signal())).ok).toBe(true);
    expect((await http.probe(makeCheck({ expectedStatus: [200] }), { port: server.port }, signal())).ok).toBe(false);
  });

  it('refuses non-loopback hosts unless allowed', async () => {
    const result = await http.probe(makeCheck(), { host: '192.0.2.1', port: 80 }, signal());
    expect(result).toEqual({ ok: false, detail: expect.stringContaining('non-loopback') });
  });
});

describe('tcp strategy', () => {
  const tcp = createTcpStrategy();

  it('is unhealthy on a closed port', async () => {
    const port = await freePort();
    const result = await tcp.probe(makeCheck({ strategy: 'tcp', port }), {}, signal());
    expect(result.ok).toBe(false);
    expect(result.detail).toContain('ECONNREFUSED');
  });
});

describe('command strategy', () => {
  const command = createCommandStrategy();
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'health-command-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes arguments verbatim, never through a shell', async () => {
    const marker = path.join(dir, 'injected');
    const check = makeCheck({ strategy: 'command', command: ['echo', `hello; touch ${marker}`, `$(touch ${marker})`] });
    expect((await command.probe(check, {}, signal())).ok).toBe(true);
    expect(existsSync(marker)).toBe(false);
  });

  it('uses a shell only when asked to', async () => {
    const marker = path.join(dir, 'made-by-shell');
    const check = makeCheck({ strategy: 'command', shell: true, command: [`touch ${marker} && test -f ${marker}`] });
    expect((await command.probe(check, {}, signal())).ok).toBe(true);
    expect(existsSync(marker)).toBe(true);
  });

  it("runs in the target's cwd with the target's environment", async () => {
    await writeFile(path.join(dir, 'present'), '');
    const check = makeCheck({ strategy: 'command', command: ['sh', '-c', 'test -f present && test "$PROBE_VALUE" = yes'] });
    expect((await command.probe(check, { cwd: dir, env: { PROBE_VALUE: 'yes' } }, signal())).ok).toBe(true);
    expect((await command.probe(check, { cwd: dir, env: { PROBE_VALUE: 'no' } }, signal())).ok).toBe(false);
  });

  it('kills the whole process group on timeout', async () => {
    const pidFile = path.join(dir, 'grandchild.pid');
    // The script forks a sleeper and waits on it: both must be gone after the timeout.
    const check = makeCheck({ strategy: 'command', timeoutMs: 200, command: ['sh', '-c', `sleep 30 & echo $! > ${pidFile}; wait`] });
    expect(await command.probe(check, {}, signal())).toEqual({ ok: false, detail: 'timed out after 200 ms' });
    const grandchild = Number(await waitFor(async () => (existsSync(pidFile) ? readFile(pidFile, 'utf8') : undefined)));
    await waitFor(() => !isProcessAlive(grandchild), 5000, 'the forked sleeper to be killed');
  });

  it('reports a missing program clearly', async () => {
    const result = await command.probe(makeCheck({ strategy: 'command', command: ['/nonexistent/probe-program'] }), {}, signal());
    expect(result).toEqual({ ok: false, detail: 'command not found: /nonexistent/probe-program' });
  });
});

describe('file strategy', () => {
  it('turns healthy once the file appears, relative to the target cwd', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'health-file-'));
    try {
      const check = makeCheck({ strategy: 'file', path: 'ready.flag' });
      const file = createFileStrategy();
      expect((await file.probe(check, { cwd: dir }, signal())).ok).toBe(false);
      await writeFile(path.join(dir, 'ready.flag'), '');
      expect(await file.probe(check, { cwd: dir }, signal())).toEqual({ ok: true, detail: 'ready.flag exists' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('systemd strategy', () => {
  it('says clearly when systemctl is absent', async () => {
    const systemd = createSystemdStrategy({ systemctl: '/nonexistent/systemctl' });
    const result = await systemd.probe(makeCheck({ strategy: 'systemd', unit: 'ssh.service' }), {}, signal());
    expect(result).toEqual({ ok: false, detail: expect.stringContaining('/nonexistent/systemctl not found') });
  });

  it('is unhealthy for a unit that is not active', async () => {
    // Works with or without a running systemd: the unit does not exist either way.
    const result = await strategyFor('systemd').probe(makeCheck({ strategy: 'systemd', unit: 'no-such-unit-atproto-stacks.service' }), {}, signal());
    expect(result.ok).toBe(false);
  });
});

describe('docker strategy', () => {
  const docker = createDockerStrategy();
  it("follows the container's own HEALTHCHECK status", async () => {
    const check = makeCheck({ strategy: 'docker' });
    expect((await docker.probe(check, { containerHealth: async () => 'healthy' }, signal())).ok).toBe(true);
    expect(await docker.probe(check, { containerHealth: async () => 'starting' }, signal())).toEqual({ ok: false, detail: 'container is starting' });
    expect((await docker.probe(check, { containerHealth: async () => 'none' }, signal())).detail).toContain('no HEALTHCHECK');
    expect((await docker.probe(check, {}, signal())).ok).toBe(false);
  });
});

// ---- The shared cases (strategy.case.ts), one line per strategy; fixtures below. ----

describeStrategyCases(httpHealth, {
  healthy: () => httpTarget(204),
  failing: () => httpTarget(503),
  failingDetail: /HTTP 503/,
  hanging: () => httpTarget(null),
});
describeStrategyCases(tcpHealth, { healthy: tcpListening, failing: tcpClosed, failingDetail: /ECONNREFUSED/ });
describeStrategyCases(commandHealth, {
  healthy: () => argv(['true']),
  failing: () => argv(['false']),
  failingDetail: /exit code 1/,
  hanging: () => argv(['sleep', '30']),
});
describeStrategyCases(fileHealth, { healthy: () => fileTarget(true), failing: () => fileTarget(false), failingDetail: /does not exist/ });
describeStrategyCases(systemdHealth, {
  strategy: createSystemdStrategy({ systemctl: stubSystemctl() }),
  healthy: () => unit('active'),
  failing: () => unit('failed'),
  failingDetail: /unit failed\.service is not active \(exit code 3\)/,
  hanging: () => unit('hang'),
});
describeStrategyCases(dockerHealth, {
  healthy: () => container(async () => 'healthy'),
  failing: () => container(async () => 'unhealthy'),
  failingDetail: /container is unhealthy/,
  hanging: () => container(() => new Promise(() => {})),
});

async function httpTarget(status: number | null): Promise<StrategyFixture> {
  const server = await startServer(status);
  return { check: { endpoint: '/health' }, target: { port: server.port }, cleanup: server.close };
}

async function tcpListening(): Promise<StrategyFixture> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return { target: { port }, cleanup: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function tcpClosed(): Promise<StrategyFixture> {
  return { check: { port: await freePort() } };
}

async function argv(command: string[]): Promise<StrategyFixture> {
  return { check: { command } };
}

async function fileTarget(present: boolean): Promise<StrategyFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'health-file-case-'));
  if (present) await writeFile(path.join(dir, 'ready.flag'), '');
  return { check: { path: 'ready.flag' }, target: { cwd: dir }, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A systemctl stand-in: `is-active --quiet active.service` exits 0, `hang.service` never returns, others exit 3 (as systemctl does). */
function stubSystemctl(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'health-systemctl-'));
  const file = path.join(dir, 'systemctl');
  writeFileSync(file, '#!/bin/sh\ncase "$3" in active.service) exit 0;; hang.service) exec sleep 30;; *) exit 3;; esac\n', { mode: 0o755 });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return file;
}

async function unit(name: string): Promise<StrategyFixture> {
  return { check: { unit: `${name}.service` } };
}

async function container(health: () => Promise<ContainerHealth>): Promise<StrategyFixture> {
  return { target: { containerHealth: health } };
}
