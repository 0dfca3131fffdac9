import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UnreachableError } from '../../src/errors.js';
import { createFileBackend } from '../../src/discovery/file.js';
import type { DiscoveryBackend, ServiceInstance } from '../../src/discovery/types.js';
import { describeBackendConformance } from './conformance.js';

const roots: string[] = [];
async function tempRoot(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'stack-file-discovery-'));
  roots.push(dir);
  return dir;
}

describeBackendConformance('file', {
  make: async ({ ttlMs }) => createFileBackend({ directory: await tempRoot(), ttlMs }),
  cleanup: async () => {
    await Promise.all(roots.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  },
});

describe('file backend specifics', () => {
  const opened: DiscoveryBackend[] = [];
  const make = (directory: string, ttlMs?: number): DiscoveryBackend => {
    const b = createFileBackend({ directory, ...(ttlMs !== undefined ? { ttlMs } : {}) });
    opened.push(b);
    return b;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((b) => b.close()));
    await Promise.all(roots.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  it('keeps one JSON file per instance at <dir>/<service>/<id>.json and leaves no temp files', async () => {
    const dir = await tempRoot();
    const b = make(dir, 30_000);
    await b.register({ id: 'pds-1', service: 'pds', address: '127.0.0.1', port: 3000 });
    await b.register({ id: 'pds-2', service: 'pds', address: '127.0.0.1', port: 3001 }, { exclusive: true });
    await b.heartbeat('pds', 'pds-1');
    expect((await readdir(path.join(dir, 'pds'))).sort()).toEqual(['pds-1.json', 'pds-2.json']);
    const stored = JSON.parse(await readFile(path.join(dir, 'pds', 'pds-1.json'), 'utf8')) as ServiceInstance;
    expect(stored).toMatchObject({ id: 'pds-1', service: 'pds', address: '127.0.0.1', port: 3000 });
    expect(typeof stored.expiresAt).toBe('string');
  });

  it('two processes sharing a folder see each other, and exclusive claims collide across them', async () => {
    const dir = await tempRoot();
    const a = make(dir, 30_000);
    const b = make(dir, 30_000);
    await a.register({ id: 'x-1', service: 'relay', address: '127.0.0.1', port: 2470 }, { exclusive: true });
    expect((await b.lookup('relay')).map((i) => i.id)).toEqual(['x-1']);
    await expect(b.register({ id: 'x-1', service: 'relay', address: '127.0.0.2', port: 2471 }, { exclusive: true })).rejects.toMatchObject({
      code: 'collision',
    });
  });

  it('an expired holder does not block an exclusive claim, and its file is cleaned up', async () => {
    const dir = await tempRoot();
    const b = make(dir, 30_000);
    const expired = {
      id: 'old-1',
      service: 'plc',
      address: '127.0.0.1',
      tags: [],
      meta: {},
      registeredAt: new Date(Date.now() - 10_000).toISOString(),
      expiresAt: new Date(Date.now() - 5_000).toISOString(),
    };
    await mkdir(path.join(dir, 'plc'), { recursive: true });
    await writeFile(path.join(dir, 'plc', 'old-1.json'), JSON.stringify(expired));
    await writeFile(path.join(dir, 'plc', 'stale-2.json'), JSON.stringify({ ...expired, id: 'stale-2' }));
    expect(await b.lookup('plc')).toEqual([]);
    await b.register({ id: 'old-1', service: 'plc', address: '127.0.0.3', port: 2582 }, { exclusive: true });
    expect((await b.lookup('plc')).map((i) => i.address)).toEqual(['127.0.0.3']);
    await b.close(); // waits for background clean-ups
    expect((await readdir(path.join(dir, 'plc'))).sort()).toEqual(['old-1.json']);
  });

  it('ignores damaged, foreign and misplaced files instead of failing the lookup', async () => {
    const dir = await tempRoot();
    const b = make(dir);
    await b.register({ id: 'ok-1', service: 'pds', address: '127.0.0.1' });
    await writeFile(path.join(dir, 'pds', 'broken.json'), '{ not json');
    await writeFile(path.join(dir, 'pds', 'notes.txt'), 'hello');
    await writeFile(path.join(dir, 'pds', 'moved.json'), JSON.stringify({ id: 'other', service: 'pds', address: 'x', registeredAt: new Date().toISOString() }));
    expect((await b.lookup('pds')).map((i) => i.id)).toEqual(['ok-1']);
  });

  it('a heartbeat of an expired registration fails instead of resurrecting it', async () => {
    const dir = await tempRoot();
    const b = make(dir, 30_000);
    await b.register({ id: 'h-1', service: 'pds', address: '127.0.0.1' }, { ttlMs: 1 });
    await new Promise((r) => setTimeout(r, 20));
    await expect(b.heartbeat('pds', 'h-1')).rejects.toMatchObject({ code: 'not_registered' });
  });

  it('a watch sees a registration written by another process', async () => {
    const dir = await tempRoot();
    const writer = make(dir, 30_000);
    const reader = make(dir, 30_000);
    const ac = new AbortController();
    const it = reader.watch('feed', { signal: ac.signal })[Symbol.asyncIterator]();
    try {
      expect((await it.next()).value).toEqual([]);
      await writer.register({ id: 'f-1', service: 'feed', address: '127.0.0.1', port: 3200 });
      let seen: ServiceInstance[] = [];
      while (seen.length === 0) seen = (await it.next()).value as ServiceInstance[];
      expect(seen.map((i) => i.id)).toEqual(['f-1']);
    } finally {
      ac.abort();
    }
    expect((await it.next()).done).toBe(true);
  });

  it('a watch survives its folder being removed and created again', async () => {
    const dir = await tempRoot();
    const b = make(dir, 30_000);
    const ac = new AbortController();
    const it = b.watch('pds', { signal: ac.signal })[Symbol.asyncIterator]();
    const nextIds = async (): Promise<string[]> => ((await it.next()).value as ServiceInstance[]).map((i) => i.id);
    try {
      expect(await nextIds()).toEqual([]);
      await b.register({ id: 'p-1', service: 'pds', address: '127.0.0.1' });
      expect(await nextIds()).toEqual(['p-1']);
      await rm(dir, { recursive: true, force: true });
      expect(await nextIds()).toEqual([]);
      await b.register({ id: 'p-2', service: 'pds', address: '127.0.0.1' });
      expect(await nextIds()).toEqual(['p-2']);
      await b.register({ id: 'p-3', service: 'pds', address: '127.0.0.1' });
      expect(await nextIds()).toEqual(['p-2', 'p-3']);
    } finally {
      ac.abort();
    }
  });

  it('rejects names that would escape the folder', async () => {
    const dir = await tempRoot();
    const b = make(dir);
    await expect(b.register({ id: '../evil', service: 'pds', address: '127.0.0.1' })).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(b.register({ id: 'a', service: '../pds', address: '127.0.0.1' })).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(b.lookup('../etc')).rejects.toMatchObject({ code: 'invalid_input' });
  });

  it('check() and register() report an unusable folder as UnreachableError', async () => {
    const dir = await tempRoot();
    const file = path.join(dir, 'not-a-folder');
    await writeFile(file, 'x');
    const b = make(path.join(file, 'discovery'));
    await expect(b.check()).rejects.toBeInstanceOf(UnreachableError);
    await expect(b.register({ id: 'a', service: 'pds', address: '127.0.0.1' })).rejects.toBeInstanceOf(UnreachableError);
    const err = await b.check().catch((e: unknown) => e);
    expect((err as UnreachableError).exitCode).toBe(3);
  });
});
