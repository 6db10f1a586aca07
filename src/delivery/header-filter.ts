// The outbound side of the Exchange header firewall (SPEC §3): the spooled message passes
// through this transform on its way to a next hop that may not see Exchange organization
// headers. Only the header section is rewritten; the body streams through untouched.
import { Transform, type TransformCallback } from 'node:stream';
import { filterHeaderBlock } from '../mail/headers.js';
import { HeaderSection } from '../mail/header-section.js';

export class HeaderFilter extends Transform {
  private readonly section = new HeaderSection();
  private done = false;
  /** Fields removed, known once the header section has passed. */
  removed = 0;

  constructor(private readonly dropField: (name: string) => boolean) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.done) return cb(null, chunk);
    const step = this.section.push(chunk);
    if (step.kind !== 'end') return cb(); // no overflow: the spool holds only what the DATA path bounded
    this.flushHead(step.head);
    cb(null, step.rest);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.done) this.flushHead(this.section.rest()); // headers only
    cb();
  }

  private flushHead(block: Buffer): void {
    this.done = true;
    const r = filterHeaderBlock(block.toString('latin1'), this.dropField);
    this.removed = r.removed;
    this.push(Buffer.from(r.block, 'latin1'));
  }
}
