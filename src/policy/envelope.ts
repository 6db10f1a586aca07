// PURE. What the queue keeps of a transaction, decided at end of DATA: each recipient's route and
// the message's RFC 8689 flags. smtp/session.ts performs it (writes the envelope); `explain`
// asks the same questions.

type HeaderField = { name: string; value: string };

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
