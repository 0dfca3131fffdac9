/**
 * Reading a service's log file: the last N lines, and `tail -f`-like following until a signal
 * aborts. The service writes the file directly (we never pipe its output through ourselves), so
 * following means watching the file grow; a file that shrank was truncated and is read anew.
 */
import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { StackFailedError } from '../errors.js';
import { StringDecoder } from 'node:string_decoder';
import { realClock, type Clock } from '../util/clock.js';

export interface ReadLogOptions {
  follow: boolean;
  /** Only the last `tail` lines of what is already there. */
  tail?: number;
  signal?: AbortSignal;
  clock?: Clock;
  /** How often to look for new output while following. */
  pollIntervalMs?: number;
}

const CHUNK = 64 * 1024;

/** Lines of `file`, without their newline. A missing file yields nothing (or is waited for when following). */
export async function* readLogLines(file: string, opts: ReadLogOptions): AsyncGenerator<string> {
  const clock = opts.clock ?? realClock;
  const pollMs = opts.pollIntervalMs ?? 100;
  const { signal } = opts;

  let fh: FileHandle | undefined;
  try {
    while (!fh) {
      try {
        // No-follow: a log replaced by a symlink must not print another file (`stack logs`).
        fh = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ELOOP') throw new StackFailedError(`${file} is a symlink; refusing to read through it`, { code: 'symlink_refused', path: file });
        if (code !== 'ENOENT' || !opts.follow) return;
        if (!(await pause(clock, pollMs, signal))) return;
      }
    }

    let position = opts.tail === undefined ? 0 : await startOfLastLines(fh, opts.tail);
    let decoder = new StringDecoder('utf8');
    let pending = '';
    const buffer = Buffer.alloc(CHUNK);

    for (;;) {
      const { size } = await fh.stat();
      if (size < position) {
        // Truncated (or replaced): start over from the beginning.
        position = 0;
        pending = '';
        decoder = new StringDecoder('utf8');
      }
      if (size > position) {
        const { bytesRead } = await fh.read(buffer, 0, Math.min(CHUNK, size - position), position);
        position += bytesRead;
        const lines = (pending + decoder.write(buffer.subarray(0, bytesRead))).split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          if (signal?.aborted) return; // the reader asked to stop: not one more line
          yield line;
        }
        continue;
      }
      if (!opts.follow) break;
      if (!(await pause(clock, pollMs, signal))) break;
    }
    const rest = pending + decoder.end();
    if (rest && !signal?.aborted) yield rest;
  } finally {
    await fh?.close();
  }
}

/** Sleep; false when the signal aborted (time to stop following). */
async function pause(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  try {
    await clock.sleep(ms, signal);
    return true;
  } catch {
    return false;
  }
}

/** Byte offset where the last `lines` lines begin, reading backwards in chunks. */
async function startOfLastLines(fh: FileHandle, lines: number): Promise<number> {
  const { size } = await fh.stat();
  if (lines <= 0) return size;
  const buffer = Buffer.alloc(CHUNK);
  let end = size;
  let newlines = 0;
  // A trailing newline ends the last line; it does not start another one.
  let skipTrailing = true;
  while (end > 0) {
    const start = Math.max(0, end - CHUNK);
    const { bytesRead } = await fh.read(buffer, 0, end - start, start);
    for (let i = bytesRead - 1; i >= 0; i--) {
      if (buffer[i] !== 0x0a) {
        skipTrailing = false;
        continue;
      }
      if (skipTrailing) {
        skipTrailing = false;
        continue;
      }
      if (++newlines === lines) return start + i + 1;
    }
    end = start;
  }
  return 0;
}
