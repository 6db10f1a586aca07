// Names a TLS peer certificate carries: CN and DNS subjectAltNames (SPEC §3).
import type { PeerCertificate } from 'node:tls';

export function certificateNames(cert: PeerCertificate | null | undefined): string[] {
  if (!cert || !cert.subject) return [];
  const names = new Set<string>();
  const cn = cert.subject.CN;
  for (const v of Array.isArray(cn) ? cn : cn ? [cn] : []) names.add(String(v).toLowerCase());
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const m = /^\s*DNS:(.+)$/.exec(part);
    if (m) names.add(m[1]!.trim().toLowerCase());
  }
  return [...names];
}
