// PURE. The end-of-DATA checks of SPEC §3: what the DATA path observed in, a refusal or
// acceptance out. The order is the reply's priority: size (the message, then its header section),
// NUL, line endings, header syntax, hop count.
import { replies } from './replies.js';
import type { Refusal } from './inbound.js';

/** More Received: headers than this is a mail loop (RFC 5321 §6.3). */
export const MAX_RECEIVED = 30;

/** The largest header section kept (Postfix's header_size_limit is per field; this is the whole section). */
export const MAX_HEADER_BYTES = 1024 * 1024;

/** What the DATA path saw (smtp/message.ts and smtp-server's size count). */
export interface DataFacts {
  sizeExceeded: boolean;
  /** The first bare line ending found, if any (SMTP smuggling). */
  bareLineEnding: 'LF' | 'CR' | null;
  /** A NUL byte was seen: servers that drop NULs would read "\0." as a line of its own. */
  nul: boolean;
  receivedHeaders: number;
  /** The header section did not end within MAX_HEADER_BYTES. */
  headerTooLarge: boolean;
  /** The first line is a continuation line (begins with a space or tab): no header to continue. */
  leadingContinuation: boolean;
}

export function evaluateData(facts: DataFacts, connector: string | null): Refusal | null {
  if (facts.sizeExceeded) return { rule: 'size', connector, reply: replies.tooBig() };
  if (facts.headerTooLarge) return { rule: 'header-size', connector, reply: replies.headerTooBig() };
  if (facts.nul) return { rule: 'nul', connector, reply: replies.nulCharacter() };
  if (facts.bareLineEnding === 'LF') return { rule: 'bare-lf', connector, reply: replies.bareLineFeed('LF') };
  if (facts.bareLineEnding === 'CR') return { rule: 'bare-cr', connector, reply: replies.bareLineFeed('CR') };
  if (facts.leadingContinuation) return { rule: 'header-syntax', connector, reply: replies.leadingContinuation() };
  if (facts.receivedHeaders > MAX_RECEIVED) return { rule: 'hop-count', connector, reply: replies.hopCountExceeded() };
  return null;
}
