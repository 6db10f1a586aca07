// Trust anchors for client certificates (SPEC §3, per-connector trust): the operator's CA files —
// gateway.tls.clientCertificateAuthorities and each inbound connector's tlsCertificateAuthorities —
// and the bundled public roots. The listener trusts them all for the handshake; which of them a
// client's chain actually reached is a fact attribution needs (policy/inbound.ts), because a
// connector may accept its certificate name only from its own anchor.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import { PUBLIC_ROOTS, type Policy } from '../policy/types.js';

export interface TrustAnchor {
  /** The CA file's path, as the policy's connectors name it. */
  id: string;
  pem: string;
  certs: X509Certificate[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every CA file the policy names for client certificates, read once (a file named twice is one anchor). */
export function readClientAnchors(policy: Policy): TrustAnchor[] {
  const files = new Set<string>();
  if (policy.gateway.tls.clientCertificateAuthorities) files.add(policy.gateway.tls.clientCertificateAuthorities);
  for (const c of policy.inboundConnectors) if (c.tlsCertificateAuthorities) files.add(c.tlsCertificateAuthorities);
  return [...files].map((id) => {
    const pem = fs.readFileSync(id, 'utf8');
    return { id, pem, certs: (pem.match(PEM_CERT) ?? []).map((c) => new X509Certificate(c)) };
  });
}

/** The certificates a peer presented (and Node completed from the trust store), leaf first. */
export function peerChain(peer: PeerCertificate | DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  for (let c: DetailedPeerCertificate | undefined = peer as DetailedPeerCertificate; c?.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
  }
  return out;
}

/**
 * PURE. The anchors a *verified* chain reached: each CA file one of whose certificates is in the
 * chain or signed a certificate of it; PUBLIC_ROOTS when it reached none of them (the handshake
 * verified it, so it chains to a bundled root).
 */
export function chainAnchors(chain: readonly X509Certificate[], anchors: readonly TrustAnchor[]): string[] {
  const reached = anchors
    .filter((a) => a.certs.some((ca) => chain.some((c) => c.fingerprint256 === ca.fingerprint256 || (c.checkIssued(ca) && c.verify(ca.publicKey)))))
    .map((a) => a.id);
  return reached.length ? reached : [PUBLIC_ROOTS];
}
