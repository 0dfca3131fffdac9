/**
 * The default backend: one JSON file per instance, `<directory>/<service>/<id>.json`.
 *
 * Works with nothing but a shared folder, so several `stack` processes (and services using the
 * library) on one host see each other. Every write is atomic (temp file + rename, or temp file +
 * link for a create-if-absent), so a reader sees a whole record or none. TTL is `expiresAt` in the
 * record: lookups ignore expired files and remove them; heartbeats rewrite `expiresAt`.
 * Watches use fs.watch on the service's folder for speed, plus a cheap poll of the folder's
 * mtime in case the platform drops events (network file systems, editors, a recreated folder).
 */
import { randomBytes } from 'node:crypto';
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { link, readFile, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { StackError, UnreachableError } from '../errors.js';
import { atomicWrite, makeDirs } from '../util/fs.js';
import { CollisionError, NotRegisteredError } from './errors.js';
import { assertInstanceId, assertServiceName, isExpired, parseRecord, sortById, toRecord } from './record.js';
import { fileDriver } from './drivers/file.js';
import { anySignal, watchList } from './watch.js';
import type { DiscoveryBackend, InstanceInput, RegisterOptions, ServiceInstance, WatchOptions } from './types.js';

/** Where registrations go by default (the file backend's default `fileDirectory`). */
export const DEFAULT_FILE_DIRECTORY = fileDriver.defaults.fileDirectory;

export interface FileBackendOptions {
  /** Root folder; default `.stack/discovery` under the working directory. */
  directory?: string;
  /** Default registration TTL; 0 or undefined: registrations never expire. */
  ttlMs?: number;
  /** How often a watch checks the folder when fs.watch stays silent; default 50 ms. */
  pollIntervalMs?: number;
}

/** What a file holds: the record plus the TTL a heartbeat renews it by. */
interface StoredRecord extends ServiceInstance {
  ttlMs?: number;
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : undefined;
}

export function createFileBackend(options: FileBackendOptions = {}): DiscoveryBackend {
  const root = path.resolve(options.directory ?? DEFAULT_FILE_DIRECTORY);
  const pollIntervalMs = options.pollIntervalMs ?? 50;
  const closing = new AbortController();
  /** Clean-ups of expired files run in the background; close() waits for them. */
  const sweeps = new Set<Promise<void>>();

  const serviceDir = (service: string): string => path.join(root, service);
  const recordFile = (service: string, id: string): string => path.join(root, service, `${id}.json`);
  const tempFile = (file: string): string => path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);

  /** File-system failures on our own folder mean the backend is unusable: exit 3, not a crash. */
  function unreachable(action: string, err: unknown): never {
    if (err instanceof StackError) throw err;
    throw new UnreachableError(`file discovery (${root})`, `file discovery: cannot ${action} in ${root}: ${errnoCode(err) ?? String(err)}`, {
      cause: err,
    });
  }

  async function readStored(file: string): Promise<StoredRecord | undefined> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const raw = JSON.parse(text) as unknown;
      const record = parseRecord(raw);
      if (!record) return undefined;
      const ttlMs = (raw as { ttlMs?: unknown }).ttlMs;
      return typeof ttlMs === 'number' ? { ...record, ttlMs } : record;
    } catch {
      return undefined; // not ours, or damaged: never let one bad file break a lookup
    }
  }

  function encode(record: ServiceInstance, ttlMs: number | undefined): string {
    const stored: StoredRecord = ttlMs ? { ...record, ttlMs } : record;
    return `${JSON.stringify(stored, null, 2)}\n`;
  }

  function strip(stored: StoredRecord): ServiceInstance {
    const { ttlMs: _ttl, ...record } = stored;
    return record;
  }

  /**
   * Remove an expired file without ever removing a fresh one that replaced it meanwhile: move it
   * aside (atomic), look at what we moved, and put it back if it turned out to be alive.
   */
  async function removeIfExpired(file: string): Promise<void> {
    const aside = tempFile(file);
    try {
      await rename(file, aside);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    const moved = await readStored(aside);
    if (moved && !isExpired(moved)) {
      // Someone re-registered between our read and our rename: restore it, unless an even newer one exists.
      await link(aside, file).catch(() => undefined);
    }
    await rm(aside, { force: true });
  }

  function sweep(file: string): void {
    const p = removeIfExpired(file)
      .catch(() => undefined)
      .finally(() => sweeps.delete(p));
    sweeps.add(p);
  }

  async function readService(service: string): Promise<ServiceInstance[]> {
    let names: string[];
    try {
      names = await readdir(serviceDir(service));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
      return unreachable('read', err);
    }
    const now = Date.now();
    const found: ServiceInstance[] = [];
    await Promise.all(
      names
        .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
        .map(async (n) => {
          const file = path.join(serviceDir(service), n);
          const stored = await readStored(file).catch(() => undefined);
          if (!stored || stored.service !== service || `${stored.id}.json` !== n) return;
          if (isExpired(stored, now)) return sweep(file);
          found.push(strip(stored));
        }),
    );
    return sortById(found);
  }

  /**
   * Create the file only if absent, atomically and with its whole content: write a temp file,
   * then hard-link it into place (link fails with EEXIST if the name is taken). Returns false if taken.
   */
  async function createIfAbsent(file: string, content: string): Promise<boolean> {
    const tmp = tempFile(file);
    await writeFile(tmp, content, { mode: 0o644 });
    try {
      await link(tmp, file);
      return true;
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return false;
      throw err;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async function registerExclusive(record: ServiceInstance, ttlMs: number | undefined): Promise<void> {
    const file = recordFile(record.service, record.id);
    // Two rounds: if the holder's record has expired, clear it and claim the id once more.
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await createIfAbsent(file, encode(record, ttlMs))) return;
      const holder = await readStored(file);
      if (holder && !isExpired(holder)) break;
      await removeIfExpired(file);
    }
    throw new CollisionError(record.service, record.id, { backend: 'file' });
  }

  return {
    name: 'file',
    capabilities: fileDriver.capabilities,

    async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<ServiceInstance> {
      const ttlMs = opts.ttlMs ?? options.ttlMs;
      const record = toRecord(input, ttlMs);
      try {
        await makeDirs(serviceDir(record.service));
        if (opts.exclusive) await registerExclusive(record, ttlMs);
        else await atomicWrite(recordFile(record.service, record.id), encode(record, ttlMs));
      } catch (err) {
        unreachable('register', err);
      }
      return record;
    },

    async deregister(service: string, id: string): Promise<void> {
      assertServiceName(service);
      assertInstanceId(id);
      try {
        await unlink(recordFile(service, id));
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') unreachable('deregister', err);
      }
    },

    async heartbeat(service: string, id: string): Promise<void> {
      assertServiceName(service);
      assertInstanceId(id);
      const file = recordFile(service, id);
      const stored = await readStored(file).catch((err: unknown) => unreachable('heartbeat', err));
      // An expired record is gone for everyone else already: renewing it would resurrect it.
      if (!stored || isExpired(stored)) throw new NotRegisteredError(service, id, { backend: 'file' });
      if (!stored.ttlMs) return;
      const renewed = { ...strip(stored), expiresAt: new Date(Date.now() + stored.ttlMs).toISOString() };
      await atomicWrite(file, encode(renewed, stored.ttlMs)).catch((err: unknown) => unreachable('heartbeat', err));
    },

    async lookup(service: string): Promise<ServiceInstance[]> {
      assertServiceName(service);
      return readService(service);
    },

    watch(service: string, opts: WatchOptions = {}): AsyncIterable<ServiceInstance[]> {
      assertServiceName(service);
      const signal = anySignal([opts.signal, closing.signal]);
      const dir = serviceDir(service);
      return watchList(
        {
          load: () => readService(service),
          subscribe(changed) {
            let watcher: FSWatcher | undefined;
            /** Inode the watcher is on: a folder removed and created again needs a new watcher. */
            let watchedIno: number | undefined;
            let lastSeen = '';
            let unsubscribed = false;
            const stopWatcher = (): void => {
              watcher?.close();
              watcher = undefined;
              watchedIno = undefined;
            };
            const startWatcher = (ino: number): void => {
              try {
                watcher = fsWatch(dir, { persistent: false }, changed);
                watchedIno = ino;
                watcher.on('error', () => {
                  stopWatcher();
                  changed();
                });
              } catch {
                stopWatcher(); // folder gone again: the poll retries
              }
            };
            // The fallback poll: one stat per tick. A rename or unlink in the folder moves its mtime.
            const look = (): void => {
              stat(dir).then(
                (s) => {
                  const seen = `${s.ino}:${s.mtimeMs}`;
                  if (seen !== lastSeen) {
                    lastSeen = seen;
                    changed();
                  }
                  if (unsubscribed) return;
                  if (watchedIno !== s.ino) {
                    stopWatcher();
                    startWatcher(s.ino);
                  }
                },
                () => {
                  stopWatcher();
                  if (lastSeen !== 'missing') {
                    lastSeen = 'missing';
                    changed();
                  }
                },
              );
            };
            // The folder must exist for fs.watch; creating it is harmless and makes the watch immediate.
            void makeDirs(dir)
              .catch(() => undefined)
              .then(() => {
                if (!unsubscribed) look();
              });
            const poll = setInterval(look, pollIntervalMs);
            poll.unref();
            return () => {
              unsubscribed = true;
              clearInterval(poll);
              stopWatcher();
            };
          },
        },
        signal,
      );
    },

    async list(): Promise<ServiceInstance[]> {
      let services: string[];
      try {
        services = await readdir(root);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return [];
        return unreachable('list', err);
      }
      const valid = services.filter((s) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(s)).sort();
      const lists = await Promise.all(valid.map((s) => readService(s)));
      return lists.flat();
    },

    async check(): Promise<void> {
      // Reachable and writable: create the folder, then write and remove a probe file.
      const probe = path.join(root, `.check-${process.pid}-${randomBytes(4).toString('hex')}`);
      try {
        await makeDirs(root);
        await atomicWrite(probe, 'ok\n');
        await rm(probe, { force: true });
      } catch (err) {
        unreachable('write', err);
      }
    },

    async close(): Promise<void> {
      closing.abort();
      await Promise.allSettled([...sweeps]);
    },
  };
}
