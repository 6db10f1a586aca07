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

/** Parses an address as a client IP, folding IPv4-mapped IPv6 into IPv4. Null when invalid. */
export function parseIp(text: string): { v6: boolean; value: bigint } | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return { v6: false, value: v4 };
  if (!ipaddr.isValid(text)) return null;
  const a = ipaddr.process(text);
  return { v6: a.kind() === 'ipv6', value: toBig(a) };
}

/** Parses "1.2.3.4", "10.0.0.0/8", "2001:db8::/32" or "192.0.2.10-192.0.2.20". */
export function parseIpRange(text: string): IpRange | string {
  const t = String(text).trim();
  const bad = `"${text}" is not an IP address, CIDR or range (a.b.c.d, a.b.c.d/nn, a.b.c.d-a.b.c.e, or IPv6)`;
  if (t.includes('-')) {
    const [a, b, ...rest] = t.split('-').map((s) => s.trim());
    if (rest.length || !ipaddr.isValid(a!) || !ipaddr.isValid(b!)) return bad;
    const pa = ipaddr.parse(a!);
    const pb = ipaddr.parse(b!);
    if (pa.kind() !== pb.kind()) return `"${text}": both ends of a range must be the same IP version`;
    const lo = toBig(pa);
    const hi = toBig(pb);
    if (hi < lo) return `"${text}": the range ends before it starts`;
    return { v6: pa.kind() === 'ipv6', lo, hi, size: hi - lo + 1n, text };
  }
  if (t.includes('/')) {
    const slash = t.indexOf('/');
    const base4 = parseIpv4(t.slice(0, slash));
    const bitsText = t.slice(slash + 1);
    if (base4 !== null && /^\d{1,2}$/.test(bitsText) && Number(bitsText) <= 32) {
      const hostBits = BigInt(32 - Number(bitsText));
      const lo = (base4 >> hostBits) << hostBits;
      return { v6: false, lo, hi: lo + (1n << hostBits) - 1n, size: 1n << hostBits, text };
    }
    if (!ipaddr.isValidCIDR(t)) return bad;
    const [addr, bits] = ipaddr.parseCIDR(t);
    const width = addr.kind() === 'ipv6' ? 128 : 32;
    const hostBits = BigInt(width - bits);
    const base = (toBig(addr) >> hostBits) << hostBits;
    return { v6: addr.kind() === 'ipv6', lo: base, hi: base + (1n << hostBits) - 1n, size: 1n << hostBits, text };
  }
  const v4 = parseIpv4(t);
  if (v4 !== null) return { v6: false, lo: v4, hi: v4, size: 1n, text };
  if (!ipaddr.isValid(t)) return bad;
  const a = ipaddr.parse(t);
  const v = toBig(a);
  return { v6: a.kind() === 'ipv6', lo: v, hi: v, size: 1n, text };
}

/** The smallest range containing ip, or null. */
export function smallestContainingRange(ranges: readonly IpRange[], ip: { v6: boolean; value: bigint }): IpRange | null {
  let best: IpRange | null = null;
  for (const r of ranges) {
    if (r.v6 === ip.v6 && r.lo <= ip.value && ip.value <= r.hi && (!best || r.size < best.size)) best = r;
  }
  return best;
}
