/**
 * Where the Docker engine is and how to talk to it: a unix socket, tcp (optionally TLS), or ssh.
 *
 * Precedence: an explicit `host` (the profile's `docker.host`) wins over `DOCKER_HOST`, which wins
 * over the default socket, like a `--host` flag over the environment in the Docker CLI.
 */
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { UnreachableError, UsageError } from '../errors.js';
import { engineError } from './docker-errors.js';

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

export interface DockerConnectOptions {
  /** unix:///path, tcp://host:port, http(s)://host:port, ssh://user@host[:port]. */
  host?: string;
  tlsVerify?: boolean;
  /** Folder with ca.pem, cert.pem and key.pem. */
  certPath?: string;
}

/** A parsed endpoint: plain data, so it can be shown to users and tested without an engine. */
export type DockerEndpoint =
  | { kind: 'unix'; url: string; socketPath: string }
  | { kind: 'tcp'; url: string; host: string; port: number; tls: false }
  | { kind: 'tcp'; url: string; host: string; port: number; tls: true; certPath: string }
  | { kind: 'ssh'; url: string; host: string; port: number; username?: string };

type Env = Record<string, string | undefined>;

function envFlag(value: string | undefined): boolean {
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

/** Parse the endpoint from explicit options, falling back to DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH. */
export function resolveDockerEndpoint(opts: DockerConnectOptions = {}, env: Env = process.env): DockerEndpoint {
  const raw = opts.host ?? (env.DOCKER_HOST || undefined) ?? DEFAULT_DOCKER_HOST;
  // The Docker CLI accepts a bare `host:port` as tcp.
  const url = raw.includes('://') ? raw : `tcp://${raw}`;
  const scheme = url.slice(0, url.indexOf('://'));

  if (scheme === 'unix') {
    const socketPath = url.slice('unix://'.length) || '/var/run/docker.sock';
    return { kind: 'unix', url: `unix://${socketPath}`, socketPath };
  }

  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new UsageError(`invalid Docker host '${raw}': expected unix://, tcp://, http(s):// or ssh://`, { cause });
  }
  if (!parsed.hostname) throw new UsageError(`invalid Docker host '${raw}': no host name`);

  if (scheme === 'ssh') {
    const port = parsed.port ? Number(parsed.port) : 22;
    return {
      kind: 'ssh',
      url,
      host: parsed.hostname,
      port,
      ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    };
  }
  if (scheme === 'tcp' || scheme === 'http' || scheme === 'https') {
    const tls = scheme === 'https' || (opts.tlsVerify ?? envFlag(env.DOCKER_TLS_VERIFY));
    // Docker's conventional ports: 2376 with TLS, 2375 without.
    const port = parsed.port ? Number(parsed.port) : tls ? 2376 : 2375;
    if (!tls) return { kind: 'tcp', url, host: parsed.hostname, port, tls: false };
    const certPath = opts.certPath ?? (env.DOCKER_CERT_PATH || path.join(env.HOME ?? os.homedir(), '.docker'));
    return { kind: 'tcp', url, host: parsed.hostname, port, tls: true, certPath };
  }
  throw new UsageError(`unsupported Docker host scheme '${scheme}://' in '${raw}': use unix://, tcp:// or ssh://`);
}

/**
 * dockerode options for an endpoint. Every connection field is set explicitly (undefined included)
 * because docker-modem merges its own DOCKER_HOST defaults underneath whatever we pass.
 */
export function dockerodeOptions(endpoint: DockerEndpoint, env: Env = process.env): Dockerode.DockerOptions {
  const none = { socketPath: undefined, host: undefined, port: undefined, protocol: undefined, ca: undefined, cert: undefined, key: undefined };
  switch (endpoint.kind) {
    case 'unix':
      return { ...none, socketPath: endpoint.socketPath };
    case 'tcp':
      if (!endpoint.tls) return { ...none, host: endpoint.host, port: endpoint.port, protocol: 'http' };
      return {
        ...none,
        host: endpoint.host,
        port: endpoint.port,
        protocol: 'https',
        ...readTlsFiles(endpoint.certPath),
      };
    case 'ssh':
      return {
        ...none,
        host: endpoint.host,
        port: endpoint.port,
        protocol: 'ssh',
        ...(endpoint.username ? { username: endpoint.username } : {}),
        ...(env.SSH_AUTH_SOCK ? { sshOptions: { agent: env.SSH_AUTH_SOCK } } : {}),
      };
  }
}

function readTlsFiles(certPath: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  try {
    return {
      ca: readFileSync(path.join(certPath, 'ca.pem')),
      cert: readFileSync(path.join(certPath, 'cert.pem')),
      key: readFileSync(path.join(certPath, 'key.pem')),
    };
  } catch (cause) {
    throw new UsageError(`cannot read Docker TLS certificates (ca.pem, cert.pem, key.pem) in ${certPath}`, { cause });
  }
}

/** A dockerode client for the endpoint. dockerode is imported here, on first use, not at load time. */
export async function connectDocker(endpoint: DockerEndpoint): Promise<Dockerode> {
  const Docker = loadDockerode();
  return new Docker(dockerodeOptions(endpoint));
}

let dockerode: typeof Dockerode | undefined;

/**
 * dockerode, without what only BuildKit sessions (gRPC and protobuf, for `buildImage` with
 * credentials) and ssh:// endpoints (ssh2) need: those modules load when first used. They are
 * three quarters of dockerode's modules and most of its import time (~30 ms instead of 110–200 ms
 * here), paid by every command that talks to Docker — by `stack down` on its critical path. Each
 * stands in the module cache as a function that loads the real module and hands the call on.
 * dockerode laid out otherwise (no such files): imported whole.
 */
export function loadDockerode(): typeof Dockerode {
  if (dockerode) return dockerode;
  const require = createRequire(import.meta.url);
  try {
    const main = require.resolve('dockerode');
    const fromDockerode = createRequire(main);
    const deferred = [fromDockerode.resolve('./session'), createRequire(fromDockerode.resolve('docker-modem')).resolve('./ssh')];
    for (const file of deferred) {
      if (require.cache[file]) continue;
      const stub = new Module(file);
      stub.filename = file;
      stub.loaded = true;
      stub.exports = function loadOnUse(this: unknown, ...args: unknown[]): unknown {
        if (require.cache[file] === stub) delete require.cache[file];
        return (require(file) as (...a: unknown[]) => unknown).apply(this, args);
      };
      require.cache[file] = stub;
    }
  } catch {
    // another layout: nothing deferred
  }
  dockerode = require('dockerode') as typeof Dockerode;
  return dockerode;
}

/**
 * Ping the engine with a deadline. A dead tcp peer or a hung ssh connection would otherwise
 * make the first command hang; we want exit 3 quickly instead.
 */
export async function pingDocker(docker: Dockerode, endpoint: DockerEndpoint, timeoutMs = 5_000): Promise<void> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  try {
    // dockerode accepts an abortSignal on ping; its type declarations do not say so.
    const ping = docker.ping.bind(docker) as unknown as (opts: { abortSignal: AbortSignal }) => Promise<unknown>;
    await ping({ abortSignal: abort.signal });
  } catch (cause) {
    const reason = abort.signal.aborted ? String((abort.signal.reason as Error).message) : describeError(cause);
    throw new UnreachableError('docker', `Docker engine at ${endpoint.url} is not reachable: ${reason}`, { cause });
  } finally {
    clearTimeout(timer);
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
  }
  return String(err);
}

/**
 * The engine client of a Docker-backed runtime: connected and pinged on first use, so every
 * operation fails fast with UnreachableError when the engine is away, and tried afresh on the next
 * call after a failure. `call` runs one operation and names it in any error.
 */
export interface EngineClient {
  docker: () => Promise<Dockerode>;
  /** The engine's address, for messages. */
  url: () => string;
  call: <T>(doing: string, fn: (d: Dockerode) => Promise<T>) => Promise<T>;
  /** Forget the client (the runtime is closing); a later call connects again. */
  reset: () => void;
}

export function engineClient(opts: DockerConnectOptions & { pingTimeoutMs?: number }): EngineClient {
  let endpoint: DockerEndpoint | undefined;
  let client: Promise<Dockerode> | undefined;
  const url = () => endpoint?.url ?? opts.host ?? process.env.DOCKER_HOST ?? 'the default Docker endpoint';
  const docker = (): Promise<Dockerode> => {
    client ??= (async () => {
      endpoint = resolveDockerEndpoint({
        ...(opts.host !== undefined ? { host: opts.host } : {}),
        ...(opts.tlsVerify !== undefined ? { tlsVerify: opts.tlsVerify } : {}),
        ...(opts.certPath !== undefined ? { certPath: opts.certPath } : {}),
      });
      const d = await connectDocker(endpoint);
      await pingDocker(d, endpoint, opts.pingTimeoutMs);
      return d;
    })().catch((err: unknown) => {
      client = undefined; // let a later call try again
      throw err;
    });
    return client;
  };
  return {
    docker,
    url,
    call: async (doing, fn) => {
      const d = await docker();
      try {
        return await fn(d);
      } catch (err) {
        throw engineError(err, doing, url());
      }
    },
    reset: () => {
      client = undefined;
    },
  };
}
