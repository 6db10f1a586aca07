// The one place that reaches into nodemailer's SMTPConnection beyond its documented API.
// test/unit/adapters.test.ts fails loudly when an upgrade changes anything relied on here:
//   - `_supportedExtensions`: what the next hop's EHLO offered (DSN, REQUIRETLS…);
//   - `_getDsnRcptToArgs` and `_recipientQueue`: nodemailer gives every RCPT of a transaction
//     the same NOTIFY/ORCPT, so the parameters are supplied per recipient through them;
//   - the error fields `code`, `originalCode`, `command`, `responseCode` and the `upgrading`
//     flag, from which a failed connection's facts are read (never from the message text),
//     and the code EREQUIRETLS (a next hop without REQUIRETLS);
//   - `_socket`, the TLS socket, for the certificate chain DANE matches.
import { X509Certificate } from 'node:crypto';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { ConnectionFacts } from './status.js';
import { NAME_CHECK_CODE } from './tls-policy.js';

export type Conn = InstanceType<typeof SMTPConnection>;
export { SMTPConnection };

export type NodemailerError = Error & { code?: string; originalCode?: string; responseCode?: number; response?: string; command?: string };

interface Internals {
  _socket?: { getPeerCertificate?: (detailed: boolean) => DetailedCertificate; authorized?: boolean; authorizationError?: Error | string | null };
  _supportedExtensions?: string[];
  _recipientQueue?: string[];
  _getDsnRcptToArgs?: () => string;
  upgrading?: boolean;
}

const internals = (conn: Conn): Internals => conn as unknown as Internals;

type DetailedCertificate = { raw?: Buffer; issuerCertificate?: DetailedCertificate };

/** The certificate chain the next hop sent (server certificate first), once TLS is up. */
export function peerCertificates(conn: Conn): X509Certificate[] {
  const first = internals(conn)._socket?.getPeerCertificate?.(true);
  const out: X509Certificate[] = [];
  const seen = new Set<DetailedCertificate>();
  for (let c = first; c && c.raw && !seen.has(c); c = c.issuerCertificate) {
    seen.add(c);
    out.push(new X509Certificate(c.raw));
  }
  return out;
}

/** Whether the server certificate chained to a trusted root (only meaningful once TLS is up). */
export function peerVerification(conn: Conn): { authorized: boolean; error: string | null } {
  const s = internals(conn)._socket;
  const e = s?.authorizationError;
  return { authorized: !!s?.authorized, error: e ? String(typeof e === 'string' ? e : ((e as NodeJS.ErrnoException).code ?? e.message)) : null };
}

/** Whether the next hop's EHLO (after STARTTLS, when there was one) offered an extension. */
export function offersExtension(conn: Conn, keyword: string): boolean {
  return !!internals(conn)._supportedExtensions?.includes(keyword);
}

/**
 * Supplies the parameters of each RCPT TO (after the address) per recipient, for the
 * transactions that follow on this connection.
 */
export function setRcptParameters(conn: Conn, parametersFor: (recipient: string) => string): void {
  const c = internals(conn);
  c._getDsnRcptToArgs = () => {
    const queue = c._recipientQueue ?? [];
    const p = parametersFor(queue[queue.length - 1] ?? '');
    return p ? ` ${p}` : '';
  };
}

/** The next hop does not offer REQUIRETLS (nodemailer checks before MAIL FROM when asked to use it). */
export function isRequireTlsRefusal(err: NodemailerError): boolean {
  return err.code === 'EREQUIRETLS';
}

/**
 * X.509 verification results as Node reports them (the OpenSSL X509_V_ERR_* names): a server
 * certificate refused for its chain, dates or use. Names not listed here are not
 * certificate problems (e.g. ERR_SSL_* handshake alerts).
 */
const X509_VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_CRL', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_SIGNATURE_FAILURE', 'CRL_SIGNATURE_FAILURE', 'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID', 'CRL_HAS_EXPIRED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD', 'ERROR_IN_CRL_NEXT_UPDATE_FIELD', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_CHAIN_TOO_LONG', 'CERT_REVOKED', 'INVALID_CA',
  'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * The facts of a failed connection. `connected`: our connect callback had fired (the session
 * was set up); nodemailer's `upgrading` flag stays set when a STARTTLS handshake failed.
 */
export function connectionFacts(err: NodemailerError, conn: Conn, tlsRequired: boolean, connected: boolean): ConnectionFacts {
  const system = err.originalCode ?? null;
  const certificate =
    system === NAME_CHECK_CODE ? { problem: 'name' as const, reason: system } : system && X509_VERIFY_CODES.has(system) ? { problem: 'chain' as const, reason: system } : null;
  const starttls = err.command === 'STARTTLS' || !!internals(conn).upgrading;
  return {
    tlsRequired,
    secure: conn.secure,
    stage: starttls ? 'starttls' : connected ? 'session' : 'connect',
    timedOut: err.code === 'ETIMEDOUT',
    systemCode: system,
    replyCode: typeof err.responseCode === 'number' ? err.responseCode : null,
    certificate,
    description: (err.message ?? String(err)).split('\n')[0]!,
  };
}
