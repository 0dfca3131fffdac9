/** Reading a rendered config file, wherever the engine put it (a file, or memory for `configsInMemory` runtimes). */
import { readFile } from 'node:fs/promises';
import type { RenderedFile } from './types.js';

/** The rendered bytes: the content handed over, else the file under the state folder. */
export async function renderedContent(f: RenderedFile): Promise<Buffer> {
  if (f.content !== undefined) return f.content;
  if (f.hostPath === undefined) throw new Error(`rendered file ${f.destination} has neither content nor a path`);
  return readFile(f.hostPath);
}
