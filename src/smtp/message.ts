// The DATA path of SPEC §3 as a streaming transform: bare CR/LF detection, hop counting,
// removal of X-Gateway-* headers that arrive from outside and of Exchange organization headers
// the header firewall does not trust, and our own headers prepended.
// It decides nothing: what it saw (`bareLineEnding`, `receivedCount`, `headerTooLarge`,
// `leadingContinuation`) goes to policy/data.ts.
import { rfc5322Date } from '../mail/date.js';
import { filterHeaderBlock, parseHeaderBlock, type HeaderField } from '../mail/headers.js';
import { HeaderSection } from '../mail/header-section.js';
import { isExchangeTrustedHeader } from '../policy/headers.js';
import { MAX_HEADER_BYTES } from '../policy/data.js';

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;

export class MessageScanner {
  private inHeaders = true;
  private readonly section = new HeaderSection(MAX_HEADER_BYTES);
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
  /** The header section grew past MAX_HEADER_BYTES without ending: nothing more is kept. */
  headerTooLarge = false;
  /** The message's first line begins with a space or tab: it would continue the header we write before it. */
  leadingContinuation = false;

  /** Feeds a chunk of (dot-unstuffed) DATA; returns what to write to the spool. */
  push(chunk: Buffer): Buffer[] {
    this.scanLineEnds(chunk);
    if (!this.nul && chunk.includes(0)) this.nul = true;
    if (this.headerTooLarge) return [];
    if (!this.inHeaders) return [chunk];
    const step = this.section.push(chunk);
    if (step.kind === 'more') return [];
    this.inHeaders = false;
    if (step.kind === 'overflow') {
      this.headerTooLarge = true;
      return [];
    }
    return [this.rewriteHeaders(step.head), step.rest];
  }

  /** Flushes what remains at end of DATA. */
  end(): Buffer[] {
    if (this.prevWasCR) this.bare ??= 'CR';
    if (!this.inHeaders) return [];
    this.inHeaders = false;
    // A message of headers only (no empty line).
    return [this.rewriteHeaders(this.section.rest())];
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
    if (block.length && (block[0] === SP || block[0] === HTAB)) this.leadingContinuation = true;
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
