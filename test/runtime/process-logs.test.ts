import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLogLines } from '../../src/runtime/process-logs.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'process-logs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(lines: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const line of lines) out.push(line);
  return out;
}

describe('readLogLines', () => {
  it('reads every line, including a last one without a newline', async () => {
    const file = path.join(dir, 'a.log');
    await writeFile(file, 'one\ntwo\nthree');
    expect(await collect(readLogLines(file, { follow: false }))).toEqual(['one', 'two', 'three']);
  });

  it('tails the last N lines, whether or not the file ends with a newline', async () => {
    const file = path.join(dir, 'b.log');
    await writeFile(file, 'a\nb\nc\nd\n');
    expect(await collect(readLogLines(file, { follow: false, tail: 2 }))).toEqual(['c', 'd']);
    await writeFile(file, 'a\nb\nc\nd');
    expect(await collect(readLogLines(file, { follow: false, tail: 2 }))).toEqual(['c', 'd']);
    expect(await collect(readLogLines(file, { follow: false, tail: 10 }))).toEqual(['a', 'b', 'c', 'd']);
    expect(await collect(readLogLines(file, { follow: false, tail: 0 }))).toEqual([]);
  });

  it('tails across chunk boundaries of a large file', async () => {
    const file = path.join(dir, 'big.log');
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i} ${'x'.repeat(20)}`);
    await writeFile(file, `${lines.join('\n')}\n`);
    expect(await collect(readLogLines(file, { follow: false, tail: 3 }))).toEqual(lines.slice(-3));
  });

  it('keeps multi-byte characters intact', async () => {
    const file = path.join(dir, 'utf8.log');
    await writeFile(file, 'héllo wörld ✓\n');
    expect(await collect(readLogLines(file, { follow: false }))).toEqual(['héllo wörld ✓']);
  });

  it('yields nothing for a missing file when not following', async () => {
    expect(await collect(readLogLines(path.join(dir, 'missing.log'), { follow: false }))).toEqual([]);
  });

  it('follows appended lines, waits for a file that does not exist yet, restarts after truncation', async () => {
    const file = path.join(dir, 'c.log');
    const controller = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const line of readLogLines(file, { follow: true, signal: controller.signal, pollIntervalMs: 10 })) {
        seen.push(line);
        if (line === 'first') await appendFile(file, 'second\n');
        if (line === 'second') await writeFile(file, 'new\n'); // truncate and rewrite
        if (line === 'new') controller.abort();
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 30));
    await writeFile(file, 'first\n');
    await reading;
    expect(seen).toEqual(['first', 'second', 'new']);
  });
});
