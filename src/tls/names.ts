// Names a TLS peer certificate carries: CN and DNS subjectAltNames (SPEC §3).
import type { PeerCertificate } from 'node:tls';

/**
 * A host name as a certificate may carry it: LDH labels (a `*` alone as the first, for
 * wildcards), dots between. Anything else — a NUL (`evil.test\0.fabrikam.test`), a space, a
 * quote Node's subjectaltname escaping leaves behind — makes the name match nothing.
 */
const HOST_NAME = /^(\*|[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/;

export function isCertificateHostName(name: string): boolean {
  return name.length <= 253 && HOST_NAME.test(name);
}

/** The certificate's DNS subjectAltNames, lower-cased, whatever they contain (see dnsAltNames). */
export function allDnsAltNames(cert: Pick<PeerCertificate, 'subjectaltname'>): string[] {
  const out: string[] = [];
  for (const part of splitAltNames(cert.subjectaltname ?? '')) {
    const m = /^DNS:(.+)$/.exec(part);
    if (m) out.push(m[1]!.toLowerCase());
  }
  return out;
}

/** The certificate's DNS subjectAltNames that are host names, lower-cased. */
export function dnsAltNames(cert: Pick<PeerCertificate, 'subjectaltname'>): string[] {
  return allDnsAltNames(cert).filter(isCertificateHostName);
}

/** The subject's CNs that are host names, lower-cased. */
export function commonNames(cert: Pick<PeerCertificate, 'subject'>): string[] {
  const cn = cert.subject?.CN;
  return (Array.isArray(cn) ? cn : cn ? [cn] : []).map((v) => String(v).toLowerCase()).filter(isCertificateHostName);
}

/** Inbound attribution (SPEC §3): the CN and the DNS SANs of a verified client certificate. */
export function certificateNames(cert: PeerCertificate | null | undefined): string[] {
  if (!cert || !cert.subject) return [];
  return [...new Set([...commonNames(cert), ...dnsAltNames(cert)])];
}

/**
 * Node writes subjectaltname as `DNS:a, DNS:"b, c"`: an entry with a comma or an unusual
 * character is JSON-quoted. Split on the separators, keeping quoted entries whole and unquoted.
 */
function splitAltNames(s: string): string[] {
  const out: string[] = [];
  for (const m of s.matchAll(/\s*([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)/g)) {
    const value = m[2]!.startsWith('"') ? safeJson(m[2]!) : m[2]!.trim();
    if (value !== null && m[0]!.length) out.push(`${m[1]}:${value}`);
  }
  return out;
}

function safeJson(s: string): string | null {
  try {
    return JSON.parse(s) as string;
  } catch {
    return null;
  }
}
