// The listener's TLS: the certificate, key and client CAs read from the policy's files, and
// the protocol settings every listener uses.
import { constants as cryptoConstants } from 'node:crypto';
import type { SMTPServer } from 'smtp-server';
import type { Policy } from '../policy/types.js';
import { addTrustedCas } from '../tls/context.js';
import { readIdentity } from '../tls/files.js';
import { readClientAnchors, type TrustAnchor } from '../tls/anchors.js';
import { defaultSecureContext } from './smtp-server-adapter.js';

/** AEAD suites with forward secrecy only (TLS 1.3 suites are always on). */
export const MODERN_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** No client-initiated renegotiation (testssl.sh: secure_client_renego). */
export const SECURE_OPTIONS = cryptoConstants.SSL_OP_NO_RENEGOTIATION;

export interface TlsMaterial {
  key: string;
  cert: string;
  /** Client-certificate CAs trusted besides the bundled roots (see tls/context.ts): every anchor's PEM. */
  extraCa: string[];
  /** Which file each client CA came from, to tell which one a client's chain reached. */
  anchors: TrustAnchor[];
}

export function readTlsMaterial(policy: Policy): TlsMaterial {
  const anchors = readClientAnchors(policy);
  return { ...readIdentity(policy), extraCa: anchors.map((a) => a.pem), anchors };
}

/**
 * smtp-server builds its context from our options, without `ca`, so it trusts the bundled
 * roots without listing them as client CA names; the operator's client CAs are added to it
 * here (copy-on-write store). Used at start and after each context rebuild.
 */
export function trustClientCas(server: SMTPServer, material: TlsMaterial): void {
  addTrustedCas(defaultSecureContext(server), material.extraCa);
}
