import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createCommandStrategy,
  createDockerStrategy,
  createFileStrategy,
  createHttpStrategy,
  createSystemdStrategy,
  createTcpStrategy,
  strategyFor,
} from '../../src/health/index.js';
import { isProcessAlive } from '../../src/runtime/process-proc.js';
import { freePort, waitFor } from '../helpers/net.js';
import { makeCheck } from './check.js';

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

  it('is healthy on a 2xx and reports the status', async () => {
    const server = await startServer(204);
    close = server.close;
    const result = await http.probe(makeCheck({ endpoint: '/health' }), { port: server.port }, signal());
    expect(result).toEqual({ ok: true, detail: expect.stringContaining('HTTP 204') });
  });

  it('is unhealthy on a 5xx', async () => {
    const server = await startServer(503);
    close = server.close;
    const result = await http.probe(makeCheck({ endpoint: '/health' }), { host: '127.0.0.1', port: server.port }, signal());
    expect(result.ok).toBe(false);
    expect(result.detail).toContain('HTTP 503');
  });

  it('accepts exactly the configured statuses', async () => {
    const server = await startServer(401);
    close = server.close;
    const check = makeCheck({ expectedStatus: [401] });
    expect((await http.probe(check, { port: server.port }, signal())).ok).toBe(true);
    expect((await http.probe(makeCheck({ expectedStatus: [200] }), { port: server.port }, signal())).ok).toBe(false);
  });

  it('times out on a server that never answers', async () => {
    const server = await startServer(null);
    close = server.close;
    const result = await http.probe(makeCheck({ timeoutMs: 100 }), { port: server.port }, signal());
    expect(result).toEqual({ ok: false, detail: 'timed out after 100 ms' });
  });

  it('is unhealthy when nothing listens', async () => {
    const port = await freePort();
    const result = await http.probe(makeCheck(), { port }, signal());
    expect(result.ok).toBe(false);
    expect(result.detail).toContain('ECONNREFUSED');
  });

  it('refuses non-loopback hosts unless allowed', async () => {
    const result = await http.probe(makeCheck(), { host: '192.0.2.1', port: 80 }, signal());
    expect(result).toEqual({ ok: false, detail: expect.stringContaining('non-loopback') });
  });
});

describe('tcp strategy', () => {
  const tcp = createTcpStrategy();

  it('is healthy when a connection is accepted', async () => {
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      expect(await tcp.probe(makeCheck({ strategy: 'tcp' }), { port }, signal())).toEqual({ ok: true, detail: `connected to 127.0.0.1:${port}` });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

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

  it('is healthy on exit 0 and unhealthy on exit 1', async () => {
    expect(await command.probe(makeCheck({ strategy: 'command', command: ['true'] }), {}, signal())).toEqual({ ok: true, detail: 'exit code 0' });
    expect(await command.probe(makeCheck({ strategy: 'command', command: ['false'] }), {}, signal())).toEqual({ ok: false, detail: 'exit code 1' });
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
  it('is healthy once the file exists, relative to the target cwd', async () => {
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
