// The DATA path of SPEC §3 as a streaming transform: bare CR/LF detection, hop counting,
// removal of X-Gateway-* headers that arrive from outside and of Exchange organization headers
// the header firewall does not trust, and our own headers prepended.
// It decides nothing: what it saw (`bareLineEnding`, `receivedCount`) goes to policy/data.ts.
import { rfc5322Date } from '../mail/date.js';
import { filterHeaderBlock, parseHeaderBlock, type HeaderField } from '../mail/headers.js';
import { isExchangeTrustedHeader } from '../policy/headers.js';

const CR = 13;
const LF = 10;
const HEADER_END = Buffer.from('\r\n\r\n');

export class MessageScanner {
  private inHeaders = true;
  private headerChunks: Buffer[] = [];
  private headerLength = 0;
  private prevWasCR = false;
  private bare: 'LF' | 'CR' | null = null;
  private ownHeaders = '';
  private headLength = 0;
  receivedCount = 0;
  /** X-Gateway-* fields that arrived from outside (always removed). */
  strippedHeaders = 0;
  /** Exchange organization fields removed by the header firewall. */
  strippedExchangeHeaders = 0;

  /**
   * @param prepend header lines (each ending in CRLF) written before the message's own headers.
   * @param options.stripExchangeHeaders the header firewall's verdict for this session (policy/headers.ts).
   */
  constructor(
    private readonly prepend: string,
    private readonly options: { stripExchangeHeaders: boolean } = { stripExchangeHeaders: true },
  ) {}

  /** A NUL byte was seen anywhere in DATA. */
  nul = false;

  /** Feeds a chunk of (dot-unstuffed) DATA; returns what to write to the spool. */
  push(chunk: Buffer): Buffer[] {
    this.scanLineEnds(chunk);
    if (!this.nul && chunk.includes(0)) this.nul = true;
    if (!this.inHeaders) return [chunk];
    this.headerChunks.push(chunk);
    this.headerLength += chunk.length;
    const all = this.headerChunks.length === 1 ? chunk : Buffer.concat(this.headerChunks, this.headerLength);
    this.headerChunks = [all];
    // Search a little before the new chunk, since the separator may straddle chunks.
    const from = Math.max(0, this.headerLength - chunk.length - 3);
    const end = all.indexOf(HEADER_END, from);
    if (end < 0) return [];
    this.inHeaders = false;
    this.headerChunks = [];
    return [this.rewriteHeaders(all.subarray(0, end + 2)), all.subarray(end + 2)];
  }

  /** Flushes what remains at end of DATA. */
  end(): Buffer[] {
    if (this.prevWasCR) this.bare ??= 'CR';
    if (!this.inHeaders) return [];
    this.inHeaders = false;
    // A message of headers only (no empty line).
    const all = Buffer.concat(this.headerChunks, this.headerLength);
    this.headerChunks = [];
    return [this.rewriteHeaders(all)];
  }

  /** The first bare line ending seen (a CR not followed by LF, or an LF without CR), if any. */
  get bareLineEnding(): 'LF' | 'CR' | null {
    return this.bare;
  }

  private scanLineEnds(chunk: Buffer): void {
    if (this.bare) return;
    if (this.prevWasCR && chunk.length && chunk[0] !== LF) {
      this.bare = 'CR';
      return;
    }
    let i = chunk.indexOf(LF);
    while (i >= 0) {
      const before = i > 0 ? chunk[i - 1] : this.prevWasCR ? CR : -1;
      if (before !== CR) {
        this.bare = 'LF';
        return;
      }
      i = chunk.indexOf(LF, i + 1);
    }
    i = chunk.indexOf(CR);
    while (i >= 0 && i < chunk.length - 1) {
      if (chunk[i + 1] !== LF) {
        this.bare = 'CR';
        return;
      }
      i = chunk.indexOf(CR, i + 1);
    }
    this.prevWasCR = chunk.length > 0 && chunk[chunk.length - 1] === CR;
  }

  /** `block` ends with CRLF (or is the whole message when it has no body). */
  private rewriteHeaders(block: Buffer): Buffer {
    // latin1 keeps every byte as it is (8-bit headers pass through untouched).
    const { block: kept } = filterHeaderBlock(block.toString('latin1'), (name) => {
      if (/^received$/i.test(name)) this.receivedCount++;
      if (/^x-gateway-/i.test(name)) {
        this.strippedHeaders++;
        return true;
      }
      if (this.options.stripExchangeHeaders && isExchangeTrustedHeader(name)) {
        this.strippedExchangeHeaders++;
        return true;
      }
      return false;
    });
    this.ownHeaders = kept;
    const head = Buffer.from(this.prepend + kept, 'latin1');
    this.headLength = head.length;
    return head;
  }

  /** The message's own header fields as kept (after the firewall), for mail flow rules. */
  headerFields(): HeaderField[] {
    return parseHeaderBlock(this.ownHeaders);
  }

  /** The header block written first to the spool (ours, then the message's), for header actions. */
  get head(): { ours: string; own: string; length: number } {
    return { ours: this.prepend, own: this.ownHeaders, length: this.headLength };
  }
}

// ---------------------------------------------------------------------------------------

export interface TraceInfo {
  helo: string;
  rdns: string | null;
  ip: string;
  hostname: string;
  queueId: string;
  tls: { version: string; cipher: string } | null;
  connector: string | null;
  date?: Date;
}

/** Strips what must not reach a header (CR, LF, other controls, parentheses that would break the comment). */
const clean = (s: string) => s.replace(/[\x00-\x1f\x7f()]/g, '').slice(0, 255);

/** The Received: and X-Gateway-Connector: headers of SPEC §3. */
export function traceHeaders(t: TraceInfo): string {
  const proto = t.tls ? 'ESMTPS' : 'ESMTP';
  const tls = t.tls ? `\r\n\t(using ${clean(t.tls.version)} with cipher ${clean(t.tls.cipher)})` : '';
  const helo = clean(t.helo) || 'unknown';
  const rdns = t.rdns ? clean(t.rdns) : 'unknown';
  return (
    `Received: from ${helo} (${rdns} [${t.ip}])${tls}\r\n` +
    `\tby ${t.hostname} with ${proto} id ${t.queueId};\r\n` +
    `\t${rfc5322Date(t.date)}\r\n` +
    `X-Gateway-Connector: ${t.connector === null ? 'none' : clean(t.connector)}\r\n`
  );
}
