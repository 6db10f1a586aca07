// Pure matching primitives: domain patterns, certificate names, IP ranges.
import ipaddr from 'ipaddr.js';
import { normalizeDomain } from '../mail/address.js';

/** A domain pattern of the policy: "*" (everything), "*.x.com" (every name below x.com), or "x.com". */
export type DomainPattern =
  | { kind: 'any'; text: string }
  | { kind: 'suffix'; suffix: string; text: string } // suffix = ".x.com"
  | { kind: 'exact'; name: string; text: string };

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

export function isValidDomainName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((l) => LABEL.test(l));
}

/** Parses a policy domain pattern; returns an error string when it is not one. */
export function parseDomainPattern(text: string): DomainPattern | string {
  const t = normalizeDomain(text);
  if (t === '*') return text.trim() === '*' ? { kind: 'any', text } : `"${text}" is not a valid pattern: write "*" alone`;
  if (t.startsWith('*.')) {
    const rest = t.slice(2);
    if (!isValidDomainName(rest) || rest.includes('*')) return `"${text}" is not a valid wildcard: use "*.example.com"`;
    return { kind: 'suffix', suffix: '.' + rest, text };
  }
  if (t.includes('*')) return `"${text}" is not a valid pattern: a wildcard may only be "*" or a leading "*."`;
  if (!isValidDomainName(t)) return `"${text}" is not a valid domain name`;
  return { kind: 'exact', name: t, text };
}

/** How specifically a pattern matched: higher is more specific; -1 = no match. */
export function domainMatchScore(p: DomainPattern, domain: string): number {
  switch (p.kind) {
    case 'exact':
      return p.name === domain ? 100_000 : -1;
    case 'suffix':
      return domain.endsWith(p.suffix) ? p.suffix.length : -1;
    case 'any':
      return 0;
  }
}

/** Best score over a list of patterns (-1 when none matches). */
export function bestDomainMatch(patterns: readonly DomainPattern[], domain: string): number {
  let best = -1;
  for (const p of patterns) {
    const s = domainMatchScore(p, domain);
    if (s > best) best = s;
  }
  return best;
}

/**
 * Does a verified certificate carrying `certName` (CN or DNS SAN) satisfy the policy's
 * `tlsSenderCertificateName` / `tlsDomain` pattern? Policy wildcards cover any depth
 * (SPEC §2); a wildcard inside the certificate follows RFC 6125: exactly one label, and only
 * as the whole left-most label.
 */
export function certNameMatches(policyPattern: DomainPattern, certName: string): boolean {
  const name = normalizeDomain(certName);
  if (name.startsWith('*.')) {
    const certBase = name.slice(1); // ".x.com"
    if (certBase.includes('*') || certBase.split('.').length < 3) return false; // "*.com" is never valid
    switch (policyPattern.kind) {
      case 'any':
        return true;
      // A certificate for "*.x.com" proves control of every single-label name under x.com.
      // It satisfies a policy name that is itself exactly one label under x.com, or the same wildcard.
      case 'exact': {
        const dot = policyPattern.name.indexOf('.');
        return dot > 0 && policyPattern.name.slice(dot) === certBase;
      }
      case 'suffix':
        return policyPattern.suffix === certBase;
    }
  }
  if (name.includes('*')) return false;
  return domainMatchScore(policyPattern, name) >= 0;
}

// ---------------------------------------------------------------------------------------
// IP ranges

export interface IpRange {
  v6: boolean;
  lo: bigint;
  hi: bigint;
  size: bigint; // number of addresses, for "smallest range wins"
  text: string;
  /** A CIDR written with host bits set ("10.20.0.5/22"): the network it means, for a warning. */
  network?: string;
}

function toBig(addr: ipaddr.IPv4 | ipaddr.IPv6): bigint {
  let n = 0n;
  for (const b of addr.toByteArray()) n = (n << 8n) | BigInt(b);
  return n;
}

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Dotted-quad IPv4 without ipaddr.js (the hot path of every lookup); null when not one. */
function parseIpv4(text: string): bigint | null {
  const m = DOTTED_QUAD.exec(text);
  if (!m) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = m[i]!;
    if (o.length > 1 && o[0] === '0') return null; // no octal-looking octets
    const v = Number(o);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return BigInt(n);
}

/**
 * An address as the policy may write it: a dotted quad in decimal (each octet 0–255, no leading
 * zero) or an IPv6 address in its RFC 4291 text form. ipaddr.js (and inet_aton) also read
 * `010.020.0.0` as octal (8.16.0.0), `10.20` as 10.0.0.20, hex and plain integers: a policy must
 * never mean one network and match another, so those are errors that say how they would be read.
 * The error is a predicate for the caller to put after the text ("10.20" is not …).
 */
export function parseStrictAddress(text: string): { v6: boolean; value: bigint } | { error: string; fix: string; loose: boolean } {
  const t = String(text).trim();
  const v4 = parseIpv4(t);
  if (v4 !== null) return { v6: false, value: v4 };
  if (t.includes(':') && ipaddr.IPv6.isValid(t)) return { v6: true, value: toBig(ipaddr.IPv6.parse(t)) };
  if (ipaddr.IPv4.isValid(t)) {
    const read = ipaddr.IPv4.parse(t).toString();
    const decimal = DOTTED_QUAD.exec(t) ? t.split('.').map((o) => String(Number(o))).join('.') : null;
    return {
      loose: true,
      error: `is not a decimal dotted-quad IPv4 address: it is read as ${read} by software that accepts it`,
      fix: decimal && decimal !== read ? `write ${decimal} if that is the address you mean (or ${read})` : `write the four decimal octets, e.g. ${read}`,
    };
  }
  return { loose: false, error: 'is not an IP address', fix: 'write a.b.c.d (decimal) or an IPv6 address' };
}

/** The canonical text of a strict address (dotted quad, or RFC 5952 for IPv6). */
export function canonicalAddress(a: { v6: boolean; value: bigint }): string {
  if (!a.v6) return [24n, 16n, 8n, 0n].map((s) => String((a.value >> s) & 255n)).join('.');
  const bytes = Array.from({ length: 16 }, (_, i) => Number((a.value >> BigInt(8 * (15 - i))) & 255n));
  return (ipaddr.fromByteArray(bytes) as ipaddr.IPv6).toRFC5952String();
}

/** Parses an address as a client IP, folding IPv4-mapped IPv6 into IPv4. Null when invalid. */
export function parseIp(text: string): { v6: boolean; value: bigint } | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return { v6: false, value: v4 };
  if (!ipaddr.isValid(text)) return null;
  const a = ipaddr.process(text);
  return { v6: a.kind() === 'ipv6', value: toBig(a) };
}

/** A range that cannot be read: what is wrong, and the fix (the canonical form where there is one). */
export interface IpRangeError {
  error: string;
  fix: string;
}

/**
 * Parses "1.2.3.4", "10.0.0.0/8", "2001:db8::/32" or "192.0.2.10-192.0.2.20", every address
 * strictly (parseStrictAddress). A CIDR with host bits set is read as its network, and says so
 * (`network`) for the caller's warning.
 */
export function parseIpRange(text: string): IpRange | IpRangeError {
  const t = String(text).trim();
  const bad: IpRangeError = { error: `"${text}" is not an IP address, CIDR or range`, fix: 'write a.b.c.d, a.b.c.d/nn, a.b.c.d-a.b.c.e, or an IPv6 address or prefix' };
  const addr = (s: string): { v6: boolean; value: bigint } | IpRangeError => parseStrictAddress(s);
  if (t.includes('-')) {
    const [a, b, ...rest] = t.split('-').map((s) => s.trim());
    if (rest.length) return bad;
    const pa = addr(a!);
    const pb = addr(b!);
    if ('error' in pa) return { error: `"${a}" ${pa.error}`, fix: pa.fix };
    if ('error' in pb) return { error: `"${b}" ${pb.error}`, fix: pb.fix };
    if (pa.v6 !== pb.v6) return { error: `"${text}": both ends of a range must be the same IP version`, fix: 'write two IPv4 or two IPv6 addresses' };
    if (pb.value < pa.value) return { error: `"${text}": the range ends before it starts`, fix: `write ${canonicalAddress(pb)}-${canonicalAddress(pa)}` };
    return { v6: pa.v6, lo: pa.value, hi: pb.value, size: pb.value - pa.value + 1n, text };
  }
  if (t.includes('/')) {
    const slash = t.indexOf('/');
    const base = addr(t.slice(0, slash));
    if ('error' in base) return { error: `"${t.slice(0, slash)}" ${base.error}`, fix: base.fix };
    const bitsText = t.slice(slash + 1);
    const width = base.v6 ? 128 : 32;
    if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > width || (bitsText.length > 1 && bitsText[0] === '0')) {
      return { error: `"${text}": /${bitsText} is not a prefix length for IPv${base.v6 ? 6 : 4}`, fix: `write a length from 0 to ${width}` };
    }
    const hostBits = BigInt(width - Number(bitsText));
    const lo = (base.value >> hostBits) << hostBits;
    const range: IpRange = { v6: base.v6, lo, hi: lo + (1n << hostBits) - 1n, size: 1n << hostBits, text };
    if (lo !== base.value) range.network = `${canonicalAddress({ v6: base.v6, value: lo })}/${bitsText}`;
    return range;
  }
  const single = parseStrictAddress(t);
  if ('error' in single) return single.loose ? { error: `"${t}" ${single.error}`, fix: single.fix } : bad;
  return { v6: single.v6, lo: single.value, hi: single.value, size: 1n, text };
}

/** The smallest range containing ip, or null. */
export function smallestContainingRange(ranges: readonly IpRange[], ip: { v6: boolean; value: bigint }): IpRange | null {
  let best: IpRange | null = null;
  for (const r of ranges) {
    if (r.v6 === ip.v6 && r.lo <= ip.value && ip.value <= r.hi && (!best || r.size < best.size)) best = r;
  }
  return best;
}
