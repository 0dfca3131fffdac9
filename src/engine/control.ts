/**
 * The control channel of a running stack, for `stack ui` (and any other local client): a Unix
 * socket, `<stateDir>/control.sock`, served by the engine that runs the stack — a foreground
 * `stack up`, the detached supervisor of `up --detach`, or a library user — for as long as it
 * holds the stack's lock.
 *
 * One JSON document per line. A client sends one request:
 *   {"op":"subscribe"}                 → every engine event, one per line ({time, ...event}), until it closes
 *   {"op":"restart","service":"x"}     → {"ok":true} once the restart has begun, or {"ok":false,"error":"…"}
 *   {"op":"render","service":"x"}      → {"ok":true,"files":[…]} once its templates are re-rendered
 * Stopping the stack is not here: `stack down`'s protocol (supervisor.ts: stop request + SIGTERM)
 * already reaches whoever runs it, and also works when nobody does any more.
 *
 * Why a socket: signals carry no argument (which service?), and SIGUSR1 is Node's debugger; a
 * socket also answers (errors reach the page) and streams events to a second process. It is
 * created mode 0600 in the state folder: only the stack's user can connect, as with the lock and
 * the signals `stack down` sends. Events never hold a secret (types.ts), nor do the answers.
 *
 * Renders are recorded in `<stateDir>/renders.json` (when, why, which files; never content), so
 * `stack ui` can say when and why each config file was last rendered, even after the engine is gone.
 */
import { errorText } from '../util/error-text.js';
import { chmod, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { atomicWrite } from '../util/fs.js';
import type { RenderConfigs } from './engine.js';
import type { EngineEvent } from './types.js';

export type ControlRequest = { op: 'subscribe' } | { op: 'restart'; service: string } | { op: 'render'; service: string };
export type ControlAnswer = { ok: true; files?: string[] } | { ok: false; error: string };

export interface ControlHandlers {
  subscribe(listener: (event: EngineEvent) => void): () => void;
  /** Resolves once the restart has begun (the page follows it through the events). */
  restart(service: string): Promise<void>;
  /** Re-render its templates; resolves with the files written (destinations). */
  render(service: string): Promise<string[]>;
}

export interface ControlServer {
  close(): Promise<void>;
}

/** Unix socket paths are limited to 108 bytes (sun_path). */
const MAX_SOCKET_PATH = 107;

export function controlSocketPath(stateDir: string): string {
  return path.join(stateDir, 'control.sock');
}

/** Serve the control channel; undefined (with `onWarning`) when the socket cannot be created. */
export async function serveControl(stateDir: string, handlers: ControlHandlers, onWarning: (message: string) => void): Promise<ControlServer | undefined> {
  const file = controlSocketPath(stateDir);
  if (Buffer.byteLength(path.resolve(file)) > MAX_SOCKET_PATH) {
    onWarning(`no control channel (stack ui's actions): the state folder's path is too long for a Unix socket (${file})`);
    return undefined;
  }
  await rm(file, { force: true }); // we hold the lock: a socket left here belongs to a dead `up`
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    answer(socket, handlers);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => resolve());
    });
    await chmod(file, 0o600);
  } catch (err) {
    server.close();
    onWarning(`no control channel (stack ui's actions): ${errorText(err)}`);
    return undefined;
  }
  server.unref(); // never keeps a finished `up` alive
  return {
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(file, { force: true });
    },
  };
}

function answer(socket: net.Socket, handlers: ControlHandlers): void {
  let buffer = '';
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    const nl = buffer.indexOf('\n');
    if (nl < 0) {
      if (buffer.length > 64 * 1024) socket.destroy();
      return;
    }
    socket.off('data', onData);
    void handle(buffer.slice(0, nl));
  };
  const reply = (a: ControlAnswer) => socket.end(`${JSON.stringify(a)}\n`);
  const handle = async (line: string) => {
    let request: Partial<ControlRequest & { service: unknown }>;
    try {
      request = JSON.parse(line) as typeof request;
    } catch {
      return reply({ ok: false, error: 'not a JSON request' });
    }
    try {
      if (request.op === 'subscribe') {
        const unsubscribe = handlers.subscribe((event) => {
          if (!socket.destroyed) socket.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
        });
        socket.on('close', unsubscribe);
        socket.write(`${JSON.stringify({ ok: true })}\n`);
        return;
      }
      if ((request.op === 'restart' || request.op === 'render') && typeof request.service === 'string') {
        if (request.op === 'restart') {
          await handlers.restart(request.service);
          return reply({ ok: true });
        }
        return reply({ ok: true, files: await handlers.render(request.service) });
      }
      return reply({ ok: false, error: `unknown request: ${JSON.stringify(request.op ?? null)}` });
    } catch (err) {
      return reply({ ok: false, error: errorText(err) });
    }
  };
  socket.on('data', onData);
}

// ---- the client side (stack ui) ----------------------------------------------------------------

/** Send one request and wait for its answer. Rejects when nobody serves the stack's control channel. */
export function controlRequest(stateDir: string, request: Exclude<ControlRequest, { op: 'subscribe' }>, timeoutMs = 30_000): Promise<ControlAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(controlSocketPath(stateDir));
    let text = '';
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk) => (text += chunk.toString('utf8')));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text.trim()) as ControlAnswer);
      } catch {
        reject(new Error('the control channel answered nothing readable'));
      }
    });
  });
}

export interface ControlSubscription {
  close(): void;
}

/** Follow the engine's events; `onEnd` once the engine (or the connection) is gone. */
export function subscribeControl(stateDir: string, onEvent: (line: string) => void, onEnd: (err?: Error) => void): ControlSubscription {
  const socket = net.createConnection(controlSocketPath(stateDir));
  let buffer = '';
  let first = true;
  socket.on('connect', () => socket.write(`${JSON.stringify({ op: 'subscribe' })}\n`));
  socket.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (first) {
        first = false; // the {"ok":true} greeting
        continue;
      }
      if (line !== '') onEvent(line);
    }
  });
  let ended = false;
  const end = (err?: Error) => {
    if (ended) return;
    ended = true;
    onEnd(err);
  };
  socket.on('error', (err) => end(err));
  socket.on('close', () => end());
  return { close: () => socket.destroy() };
}

// ---- render records -----------------------------------------------------------------------------

export interface RenderRecord {
  /** ISO-8601. */
  at: string;
  why: string;
  /** Destinations written (relative to the service's config folder). */
  files: string[];
}

export function rendersPath(stateDir: string): string {
  return path.join(stateDir, 'renders.json');
}

export async function readRenderRecords(stateDir: string): Promise<Record<string, RenderRecord>> {
  try {
    const parsed = JSON.parse(await readFile(rendersPath(stateDir), 'utf8')) as { services?: Record<string, RenderRecord> };
    return parsed.services && typeof parsed.services === 'object' ? parsed.services : {};
  } catch {
    return {};
  }
}

/**
 * The render hook, recording each render (when, why, which files) in renders.json. `whyOf` says
 * why a service renders now (a first start, a restart, a request from `stack ui`).
 */
export function recordingRenderer(render: RenderConfigs, stateDir: string, whyOf: (service: string) => string): RenderConfigs {
  let records: Promise<Record<string, RenderRecord>> | undefined;
  let writing: Promise<void> = Promise.resolve();
  return async (service, context) => {
    const why = whyOf(service.name);
    const rendered = await render(service, context);
    if (service.templates.length === 0) return rendered;
    records ??= readRenderRecords(stateDir);
    const all = await records;
    all[service.name] = { at: new Date().toISOString(), why, files: rendered.files.map((f) => f.destination) };
    // One write at a time, each of the whole map (services render concurrently).
    writing = writing
      .then(() => atomicWrite(rendersPath(stateDir), `${JSON.stringify({ version: 1, services: all }, null, 2)}\n`, 0o600))
      .catch(() => undefined);
    await writing;
    return rendered;
  };
}
