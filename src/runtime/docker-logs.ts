/**
 * Docker's log stream for a container without a TTY is multiplexed: frames of an 8-byte header
 * (stream type; 3 zero bytes; payload size, big-endian uint32) followed by the payload. This turns
 * such a byte stream into text lines. Partial lines are kept per stream, so a stdout fragment and
 * a stderr fragment arriving interleaved never fuse into one line.
 */

const HEADER_SIZE = 8;
const NEWLINE = 0x0a;

export async function* demuxLines(chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>): AsyncGenerator<string> {
  let pending: Buffer = Buffer.alloc(0);
  const partial = new Map<number, Buffer>();

  function* takeLines(stream: number, payload: Buffer): Generator<string> {
    let buf = Buffer.concat([partial.get(stream) ?? Buffer.alloc(0), payload]);
    let nl: number;
    while ((nl = buf.indexOf(NEWLINE)) >= 0) {
      yield stripCarriageReturn(buf.subarray(0, nl).toString('utf8'));
      buf = buf.subarray(nl + 1);
    }
    partial.set(stream, Buffer.from(buf));
  }

  for await (const chunk of chunks) {
    pending = Buffer.concat([pending, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
    while (pending.length >= HEADER_SIZE) {
      const stream = pending.readUInt8(0);
      const size = pending.readUInt32BE(4);
      if (pending.length < HEADER_SIZE + size) break;
      const payload = pending.subarray(HEADER_SIZE, HEADER_SIZE + size);
      pending = pending.subarray(HEADER_SIZE + size);
      yield* takeLines(stream, payload);
    }
  }
  // The last line of a stream need not end with a newline.
  for (const rest of partial.values()) if (rest.length > 0) yield stripCarriageReturn(rest.toString('utf8'));
}

function stripCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** Frame a payload as Docker does (for tests and for symmetry with `demuxLines`). */
export function frame(stream: 1 | 2, payload: string): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt8(stream, 0);
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}
