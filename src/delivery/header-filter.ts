// The outbound side of the Exchange header firewall (SPEC §3): the spooled message passes
// through this transform on its way to a next hop that may not see Exchange organization
// headers. Only the header section is rewritten; the body streams through untouched.
import { Transform, type TransformCallback } from 'node:stream';
import { filterHeaderBlock } from '../mail/headers.js';

const END = Buffer.from('\r\n\r\n');

export class HeaderFilter extends Transform {
  private head: Buffer[] = [];
  private headLength = 0;
  private done = false;
  /** Fields removed, known once the header section has passed. */
  removed = 0;

  constructor(private readonly dropField: (name: string) => boolean) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.done) return cb(null, chunk);
    this.head.push(chunk);
    this.headLength += chunk.length;
    const all = Buffer.concat(this.head, this.headLength);
    const end = all.indexOf(END, Math.max(0, this.headLength - chunk.length - 3));
    if (end < 0) {
      this.head = [all];
      return cb();
    }
    this.flushHead(all.subarray(0, end + 2));
    cb(null, all.subarray(end + 2));
  }

  override _flush(cb: TransformCallback): void {
    if (!this.done) this.flushHead(Buffer.concat(this.head, this.headLength)); // headers only
    cb();
  }

  private flushHead(block: Buffer): void {
    this.done = true;
    this.head = [];
    const r = filterHeaderBlock(block.toString('latin1'), this.dropField);
    this.removed = r.removed;
    this.push(Buffer.from(r.block, 'latin1'));
  }
}
