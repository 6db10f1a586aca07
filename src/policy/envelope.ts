// PURE. What the queue keeps of a transaction, decided at end of DATA: each recipient's route and
// the message's RFC 8689 flags. smtp/session.ts performs it (writes the envelope); `explain`
// asks the same questions.
import type { HeaderField } from '../mail/headers.js';

/** RFC 8689 for delivery: REQUIRETLS (MAIL FROM parameter) or `TLS-Required: No` (header). */
export interface TlsFlags {
  requireTls?: true;
  tlsRequiredNo?: true;
}

/** RFC 8689 §5: the header `TLS-Required: No` asks that TLS policies (DANE, MTA-STS) not stop delivery. */
export function saysTlsRequiredNo(headers: readonly HeaderField[]): boolean {
  return headers.some((h) => h.name.toLowerCase() === 'tls-required' && h.value.trim().toLowerCase() === 'no');
}

/**
 * The message's RFC 8689 flags. REQUIRETLS wins: a sender that asked for it on the envelope is
 * not overruled by a header (RFC 8689 §5 — the header is ignored when REQUIRETLS is given).
 */
export function tlsFlags(requireTlsParameter: boolean, headers: readonly HeaderField[]): TlsFlags {
  if (requireTlsParameter) return { requireTls: true };
  return saysTlsRequiredNo(headers) ? { tlsRequiredNo: true } : {};
}

/** A recipient's route as queued: a mail flow rule's route (SPEC §9) before the one chosen at RCPT. */
export function queuedRoute(ruleRoute: { rule: string; connector: string } | undefined, rcptConnector: string | null | undefined): { connector: string | null; rule?: { name: string; connector: string } } {
  if (ruleRoute) return { connector: ruleRoute.connector, rule: { name: ruleRoute.rule, connector: ruleRoute.connector } };
  return { connector: rcptConnector ?? null };
}

/** RFC 3461 as a sender asked for it: RET of MAIL FROM, NOTIFY of a RCPT. */
export type DsnRet = 'FULL' | 'HDRS' | null;
export type DsnNotify = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

/*
 * What the gateway honours of a sender's DSN requests (honouredRet, honouredNotify). A session not identified by IP address
 * or certificate (no connector, or a partner connector matched by sender domain alone) proves
 * nothing about its MAIL FROM (anyone can write a victim's address there), so its reports are
 * kept from becoming a reflector: a DSN returns the headers only (never RET=FULL, which would
 * carry the attacker's message to the victim), and NOTIFY=SUCCESS and DELAY are not honoured —
 * only FAILURE (a real sender must learn of a failure) or NEVER. What is left of a NOTIFY list
 * that asked only for those is NEVER. Postfix and Exchange Online limit reports to unproven
 * senders the same way.
 */

/** RET of MAIL FROM as honoured: HDRS instead of FULL for an unproven sender. */
export function honouredRet(proven: boolean, ret: DsnRet): DsnRet {
  return !proven && ret === 'FULL' ? 'HDRS' : ret;
}

/** NOTIFY of a RCPT as honoured (undefined: none given, the default): FAILURE and NEVER only for an unproven sender. */
export function honouredNotify(proven: boolean, notify: readonly DsnNotify[] | undefined): DsnNotify[] | undefined {
  if (notify === undefined) return undefined;
  if (proven) return [...notify];
  const kept = notify.filter((n) => n === 'FAILURE' || n === 'NEVER');
  return kept.length ? kept : ['NEVER'];
}

/** Whether the session proved who sends: identified by IP address or by certificate (SPEC §3). */
export function senderProven(attribution: { identifiedBy: 'certificate' | 'ip' | 'senderDomain' | null }): boolean {
  return attribution.identifiedBy === 'ip' || attribution.identifiedBy === 'certificate';
}
