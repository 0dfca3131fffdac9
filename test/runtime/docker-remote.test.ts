/**
 * Reaching the engine over tcp and over tcp with TLS (client certificates), as a remote engine
 * would be reached. A loopback proxy in this process forwards to the local engine's unix socket:
 * plain for tcp://, TLS-terminating with a throwaway CA for tcp:// + tlsVerify.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnreachableError } from '../../src/errors.js';
import { createDockerRuntime } from '../../src/runtime/docker.js';
import { resolveDockerEndpoint } from '../../src/runtime/docker-connect.js';
import type { Runtime } from '../../src/runtime/types.js';
import { busyboxService, ensureBusyboxImage } from '../fixtures/docker-image.js';

const run = promisify(execFile);
const localEndpoint = resolveDockerEndpoint();
const localSocket = localEndpoint.kind === 'unix' ? localEndpoint.socketPath : undefined;

let dir: string;
let plainProxy: net.Server;
let tlsProxy: tls.Server;

async function openssl(...args: string[]) {
  await run('openssl', args, { cwd: dir });
}

/** A CA, a server certificate for 127.0.0.1, and a client certificate, in Docker's file names. */
async function makeCertificates() {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl('req', '-x509', ...ec, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=stack-test-ca');
  await writeFile(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await writeFile(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, ext] of [
    ['server', 'server.ext'],
    ['client', 'client.ext'],
  ] as const) {
    await openssl('req', ...ec, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    await openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca-key.pem',
      '-CAcreateserial',
      '-out',
      `${name}-cert.pem`,
      '-days',
      '1',
      '-extfile',
      ext,
    );
  }
  // What a Docker client reads from DOCKER_CERT_PATH.
  await writeFile(path.join(dir, 'cert.pem'), await readFile(path.join(dir, 'client-cert.pem')));
  await writeFile(path.join(dir, 'key.pem'), await readFile(path.join(dir, 'client-key.pem')));
}

function forwardToEngine(client: net.Socket) {
  const engine = net.connect(localSocket!);
  client.pipe(engine).pipe(client);
  const close = () => {
    client.destroy();
    engine.destroy();
  };
  client.on('error', close);
  engine.on('error', close);
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

let plainPort: number;
let tlsPort: number;

describe.skipIf(!localSocket)('docker runtime over tcp', () => {
  beforeAll(async () => {
    await ensureBusyboxImage();
    dir = await mkdtemp(path.join(os.tmpdir(), 'stack-docker-tls-'));
    await makeCertificates();
    plainProxy = net.createServer(forwardToEngine);
    tlsProxy = tls.createServer(
      {
        key: await readFile(path.join(dir, 'server-key.pem')),
        cert: await readFile(path.join(dir, 'server-cert.pem')),
        ca: await readFile(path.join(dir, 'ca.pem')),
        requestCert: true,
        rejectUnauthorized: true,
      },
      forwardToEngine,
    );
    tlsProxy.on('tlsClientError', () => undefined); // rejected clients are part of the tests
    plainPort = await listen(plainProxy);
    tlsPort = await listen(tlsProxy);
  });

  afterAll(async () => {
    plainProxy?.close();
    tlsProxy?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Start, find and stop a container through `runtime`; nothing of the stack is left afterwards. */
  async function roundTrip(runtime: Runtime) {
    const stack = `t-${randomBytes(4).toString('hex')}`;
    try {
      const service = busyboxService({ network: 'host', command: ['/bin/sleep', '1000'] });
      await runtime.prepare(stack, [service], {});
      const handle = await runtime.start({
        stack,
        service,
        replica: 0,
        environment: {},
        files: [],
        configDir: dir,
        stateDir: dir,
        profileDir: dir,
      });
      expect((await runtime.inspect(handle)).running).toBe(true);
      expect((await runtime.discover(stack)).map((h) => h.id)).toEqual([handle.id]);
      await runtime.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 10_000 });
      await runtime.teardown(stack);
      expect(await runtime.discover(stack)).toEqual([]);
    } finally {
      for (const h of await runtime.discover(stack).catch(() => [])) await runtime.stop(h, { signal: 'SIGKILL', gracePeriodMs: 0 }).catch(() => undefined);
      await runtime.close();
    }
  }

  it('runs containers on an engine at tcp://', async () => {
    await roundTrip(createDockerRuntime({ host: `tcp://127.0.0.1:${plainPort}` }));
  });

  it('runs containers on an engine at tcp:// with TLS and client certificates from the cert path', async () => {
    await roundTrip(createDockerRuntime({ host: `tcp://127.0.0.1:${tlsPort}`, tlsVerify: true, certPath: dir }));
  });

  it('treats a TLS engine spoken to without TLS as unreachable', async () => {
    const runtime = createDockerRuntime({ host: `tcp://127.0.0.1:${tlsPort}`, tlsVerify: false });
    await expect(runtime.discover('t-none')).rejects.toBeInstanceOf(UnreachableError);
    await runtime.close();
  });
});
