import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode, UnreachableError, UsageError } from '../../src/errors.js';
import { connectDocker, dockerodeOptions, pingDocker, resolveDockerEndpoint } from '../../src/runtime/docker-connect.js';
import { frame, demuxLines } from '../../src/runtime/docker-logs.js';
import { freePort } from '../helpers/net.js';

describe('resolveDockerEndpoint', () => {
  it('defaults to the system socket', () => {
    expect(resolveDockerEndpoint({}, {})).toEqual({ kind: 'unix', url: 'unix:///var/run/docker.sock', socketPath: '/var/run/docker.sock' });
  });

  it('reads DOCKER_HOST, and an explicit host (the profile) wins over it', () => {
    expect(resolveDockerEndpoint({}, { DOCKER_HOST: 'unix:///tmp/d.sock' })).toMatchObject({ kind: 'unix', socketPath: '/tmp/d.sock' });
    expect(resolveDockerEndpoint({ host: 'tcp://10.0.0.2:2375' }, { DOCKER_HOST: 'unix:///tmp/d.sock' })).toMatchObject({
      kind: 'tcp',
      host: '10.0.0.2',
      port: 2375,
      tls: false,
    });
  });

  it('uses TLS when asked (option or DOCKER_TLS_VERIFY) with certificates from DOCKER_CERT_PATH', () => {
    expect(resolveDockerEndpoint({}, { DOCKER_HOST: 'tcp://docker.example:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/certs' })).toEqual({
      kind: 'tcp',
      url: 'tcp://docker.example:2376',
      host: 'docker.example',
      port: 2376,
      tls: true,
      certPath: '/certs',
    });
    expect(resolveDockerEndpoint({ host: 'tcp://h', tlsVerify: true, certPath: '/c' }, {})).toMatchObject({ port: 2376, tls: true, certPath: '/c' });
    expect(resolveDockerEndpoint({ host: 'h:1234' }, {})).toMatchObject({ kind: 'tcp', host: 'h', port: 1234, tls: false });
  });

  it('parses ssh endpoints with user and port', () => {
    expect(resolveDockerEndpoint({ host: 'ssh://deploy@build.example:2222' }, {})).toEqual({
      kind: 'ssh',
      url: 'ssh://deploy@build.example:2222',
      host: 'build.example',
      port: 2222,
      username: 'deploy',
    });
  });

  it('rejects unknown schemes as invalid input', () => {
    expect(() => resolveDockerEndpoint({ host: 'ftp://x' }, {})).toThrow(UsageError);
  });

  it('overrides docker-modem defaults taken from the environment', () => {
    const opts = dockerodeOptions({ kind: 'unix', url: 'unix:///x.sock', socketPath: '/x.sock' });
    expect(opts).toHaveProperty('host', undefined);
    expect(opts.socketPath).toBe('/x.sock');
  });

  it('explains missing TLS certificates', () => {
    expect(() => dockerodeOptions({ kind: 'tcp', url: 'tcp://h:2376', host: 'h', port: 2376, tls: true, certPath: '/nonexistent' })).toThrow(
      /ca.pem, cert.pem, key.pem/,
    );
  });
});

describe('pingDocker', () => {
  it('reports a missing socket as UnreachableError (exit 3) naming the endpoint', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'stack-docker-'));
    try {
      const endpoint = resolveDockerEndpoint({ host: `unix://${dir}/docker.sock` }, {});
      const err = await pingDocker(await connectDocker(endpoint), endpoint).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnreachableError);
      expect((err as UnreachableError).exitCode).toBe(ExitCode.unreachable);
      expect((err as Error).message).toContain(`Docker engine at unix://${dir}/docker.sock is not reachable`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports a closed tcp port as UnreachableError', async () => {
    const endpoint = resolveDockerEndpoint({ host: `tcp://127.0.0.1:${await freePort()}` }, {});
    await expect(pingDocker(await connectDocker(endpoint), endpoint)).rejects.toThrow(/is not reachable/);
  });
});

describe('loadDockerode', () => {
  // In a fresh process on the built module: this test process may have loaded dockerode whole.
  const script = `
    import { createRequire } from 'node:module';
    import net from 'node:net';
    const freePort = () => new Promise((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); }); });
    const { loadDockerode, connectDocker, resolveDockerEndpoint, pingDocker } = await import('./dist/runtime/docker-connect.js');
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).filter((f) => /node_modules\\/(ssh2|@grpc)\\//.test(f)).length;
    loadDockerode();
    const before = loaded();
    const endpoint = resolveDockerEndpoint({ host: 'ssh://nobody@127.0.0.1:' + (await freePort()) }, {});
    const error = await pingDocker(await connectDocker(endpoint), endpoint).then(() => 'none', (e) => e.message);
    console.log(JSON.stringify({ before, after: loaded(), error }));`;

  it('leaves out ssh2 and gRPC until an ssh endpoint (or a BuildKit session) uses them, which then work', () => {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: path.resolve(import.meta.dirname, '../..'), encoding: 'utf8' });
    const { before, after, error } = JSON.parse(out) as { before: number; after: number; error: string };
    expect(before).toBe(0);
    expect(after).toBeGreaterThan(0); // ssh2 loaded on use, and it tried to connect
    expect(error).toMatch(/is not reachable/);
  });
});

describe('demuxLines', () => {
  async function* chunks(...parts: Buffer[]) {
    yield* parts;
  }

  it('splits frames into lines, keeping partial lines per stream', async () => {
    const all = Buffer.concat([frame(1, 'hel'), frame(2, 'err one\n'), frame(1, 'lo\nwor'), frame(1, 'ld\r\nlast')]);
    // Cut across frame boundaries to check reassembly.
    const lines: string[] = [];
    for await (const line of demuxLines(chunks(all.subarray(0, 5), all.subarray(5, 20), all.subarray(20)))) lines.push(line);
    expect(lines).toEqual(['err one', 'hello', 'world', 'last']);
  });
});
