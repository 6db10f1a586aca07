// The base layer: mail addresses and domain names. Imports nothing of ours.

/** Lower-cases and drops one trailing dot, as domain matching does (SPEC §2). */
export function normalizeDomain(domain: string): string {
  let d = domain.trim().toLowerCase();
  if (d.endsWith('.')) d = d.slice(0, -1);
  return d;
}

/** The normalized domain of an address ("" when it has none: the null sender, a bare local part). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : normalizeDomain(address.slice(at + 1));
}

/**
 * The normalized domain of the mailbox a From-like header field names ("Name <a@b>",
 * "a@b (comment)"); null when it names none (no "@", or nothing before it).
 */
export function mailboxDomain(fieldValue: string): string | null {
  const v = fieldValue.trim();
  const addr = /<([^<>]*)>\s*$/.exec(v)?.[1] ?? v.replace(/\([^)]*\)/g, '').trim();
  const at = addr.lastIndexOf('@');
  return at > 0 ? normalizeDomain(addr.slice(at + 1)) || null : null;
}

/** The local part of an address (everything before the last "@"). */
export function localPartOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : address.slice(0, at);
}
