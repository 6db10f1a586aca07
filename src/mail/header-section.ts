// Finding the end of a message's header section in a stream of chunks (the blank line, CRLF
// CRLF), for the DATA path and the outbound header filter. Linear: the chunks are kept as they
// came and joined once, when the section ends; only the last three bytes of the previous chunk
// are looked at again. A section that grows past `max` bytes is an overflow: its chunks are
// dropped and the caller decides (the DATA path refuses the message).

const END = Buffer.from('\r\n\r\n');

export type SectionStep = { kind: 'more' } | { kind: 'end'; head: Buffer; rest: Buffer } | { kind: 'overflow' };

export class HeaderSection {
  private chunks: Buffer[] = [];
  private length = 0;
  private tail: Buffer = Buffer.alloc(0);

  constructor(private readonly max = Infinity) {}

  /**
   * Feeds the next chunk. `end`: the header section (ending with the CRLF of its last field) and
   * what follows it (starting with the blank line's CRLF).
   */
  push(chunk: Buffer): SectionStep {
    const probe = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
    const at = probe.indexOf(END);
    if (at >= 0) {
      const end = this.length - this.tail.length + at + 2; // offset of the blank line in the whole
      const all = this.chunks.length ? Buffer.concat([...this.chunks, chunk], this.length + chunk.length) : chunk;
      this.chunks = [];
      return { kind: 'end', head: all.subarray(0, end), rest: all.subarray(end) };
    }
    this.chunks.push(chunk);
    this.length += chunk.length;
    if (this.length > this.max) {
      this.chunks = [];
      return { kind: 'overflow' };
    }
    this.tail = probe.subarray(Math.max(0, probe.length - 3));
    return { kind: 'more' };
  }

  /** What was buffered, at the end of the stream (a message of headers only). */
  rest(): Buffer {
    const all = Buffer.concat(this.chunks, this.length);
    this.chunks = [];
    return all;
  }
}
