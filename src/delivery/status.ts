// Every status the gateway records for an outbound attempt, written once (SPEC §4; the codes
// are Exchange's). The inbound replies have their table in policy/replies.ts; this is its twin
// for delivery. A failure is a typed value: what happened on the connection, as facts, decides
// the kind, and the kind decides the code — never the wording of a library's error message.
import { replies } from '../policy/replies.js';

/** The outcome for one recipient of one attempt. */
export interface RecipientOutcome {
  status: 'delivered' | 'deferred' | 'failed';
  /** Enhanced status code (e.g. 2.0.0, 4.4.316, 5.1.1). */
  code: string;
  /** What to record and put in a DSN: the remote reply or our reason. */
  detail: string;
  remote?: string; // the hop that answered
  /** Delivered to a next hop that offers DSN: NOTIFY and ORCPT went along, it reports from here on. */
  dsnPassed?: boolean;
  /** Exchange organization headers the header firewall removed on the way out. */
  strippedExchangeHeaders?: number;
  /** DKIM keys (selector._domainkey.domain) that signed it, and the ARC seal added (SPEC §11). */
  signed?: { dkim: string[]; arc: string | null };
  /**
   * What secured (or was to secure) an MX delivery (SPEC §8): DANE's TLSA match, TLS required by
   * unusable TLSA, no DANE for the host though DANE is in effect, or — DANE not in effect —
   * the connector's tlsSettings / opportunistic TLS. Absent for smart-host routes.
   */
  security?: 'dane' | 'dane-encrypt' | 'dane-none' | 'mta-sts-enforce' | 'mta-sts-testing' | 'tlsSettings';
  /** Every next hop was unusable (no transaction took place): the destination may be dead (queue/destinations.ts). */
  unreachable?: true;
}

/** Why a next hop (or every next hop) could not be used. */
export type HopFailureKind =
  | 'dns' // 4.4.312 DNS query failed
  | 'timeout' // 4.4.315 timed out
  | 'refused' // 4.4.316 connection refused
  | 'tls-unavailable' // 4.4.317 TLS required but not offered, refused or not negotiated
  | 'closed' // 4.4.318 connection closed
  | 'certificate' // 4.7.320 certificate validation failed
  | 'requiretls' // 5.7.30 the next hop does not offer REQUIRETLS (RFC 8689)
  | 'starttls-required' // 4.7.321 starttls-not-supported: DANE (or MTA-STS) demands TLS
  | 'tlsa-invalid' // 4.7.323 no TLSA record matches the server's certificate
  | 'dnssec-invalid' // 4.7.324 a bogus DNSSEC answer, or mandatory DANE without secure TLSA
  | 'certificate-expired' // 4.7.322 MTA-STS: the certificate has expired
  | 'certificate-host-mismatch'; // 4.7.325 MTA-STS: the certificate is not for the MX name, or the policy does not list the MX

export const HOP_FAILURE_CODES: Record<HopFailureKind, string> = {
  dns: '4.4.312',
  timeout: '4.4.315',
  refused: '4.4.316',
  'tls-unavailable': '4.4.317',
  closed: '4.4.318',
  certificate: '4.7.320',
  requiretls: '5.7.30',
  'starttls-required': '4.7.321',
  'tlsa-invalid': '4.7.323',
  'dnssec-invalid': '4.7.324',
  'certificate-expired': '4.7.322',
  'certificate-host-mismatch': '4.7.325',
};

export interface HopFailure {
  kind: HopFailureKind;
  code: string;
  detail: string;
  /** For a refused certificate: what was wrong with it (chain with the X.509 reason, or name). */
  certificate?: { problem: 'chain' | 'name'; reason: string };
}

export function hopFailure(kind: HopFailureKind, detail: string, certificate?: HopFailure['certificate']): HopFailure {
  return { kind, code: HOP_FAILURE_CODES[kind], detail, ...(certificate ? { certificate } : {}) };
}

/** Outcomes the gateway decides itself (not a next hop's reply). */
export const outcomes = {
  /** An accepted domain that no outbound connector routes: its MX is the gateway (SPEC §3/§4). */
  noRoute: (domain: string): RecipientOutcome => {
    const r = replies.noRoute(domain); // the same words the RCPT check answers with
    return { status: 'deferred', code: r.enhanced, detail: r.text };
  },
  /** A mail flow rule routed the recipient to a connector the policy in force no longer has. */
  ruleRouteMissing: (connector: string, rule: string): RecipientOutcome => ({
    status: 'deferred',
    code: '4.4.0',
    detail: `No route: outbound connector "${connector}" of mail flow rule "${rule}" is not in the policy or is disabled`,
  }),
  /**
   * REQUIRETLS (RFC 8689 §4.2.1): no next hop offered REQUIRETLS over TLS verified for its name.
   * Permanent: the sender learns it from the DSN, the message is never sent with less.
   */
  requireTlsUnmet: (f: HopFailure): RecipientOutcome => ({ status: 'failed', code: '5.7.30', detail: `REQUIRETLS support required: ${f.detail}` }),
  /** Every next hop failed: the last failure stands for the attempt. */
  hopsFailed: (f: HopFailure): RecipientOutcome => ({ status: 'deferred', code: f.code, detail: f.detail, unreachable: true }),
  /** Not tried: the destination is dead (queue/destinations.ts); its last failure stands. */
  notAttempted: (destination: string, since: number, last: { code: string; detail: string }): RecipientOutcome => ({
    status: 'deferred',
    code: last.code,
    detail: `not attempted: ${destination} unreachable since ${new Date(since).toISOString()} (${last.detail})`,
  }),
  /** A next hop took the transaction but said nothing about this recipient. */
  noReply: (remote: string): RecipientOutcome => ({ status: 'deferred', code: '4.0.0', detail: `${remote}: no reply for this recipient`, remote }),
  /** A DKIM signature or ARC seal the policy asks for could not be made: not sent unsigned (a receiver enforcing DMARC would refuse it). */
  signingFailed: (detail: string): RecipientOutcome => ({ status: 'deferred', code: '4.7.0', detail: `signing failed: ${detail}` }),
  /** The delivery code failed unexpectedly (a bug, or the spool file vanished). */
  internalError: (what: string): RecipientOutcome => ({ status: 'deferred', code: '4.0.0', detail: `delivery error: ${what}` }),
  delivered: (remote: string, response: string, dsnPassed: boolean): RecipientOutcome => ({ status: 'delivered', code: '2.0.0', detail: `${remote} said: ${response}`, remote, dsnPassed }),
  /** The message outlived gateway.queue.messageExpiration. */
  expired: (minutes: number, last: string): { code: string; detail: string } => ({
    code: '4.4.7',
    detail: `message expired after ${minutes} minutes in the queue; last result: ${last}`,
  }),
} as const;

/** DNS answers that decide a recipient's fate (resolve.ts). */
export const DNS_STATUS = {
  temporary: '4.4.312',
  noSuchDomain: '5.4.310',
  nullMx: '5.1.10',
} as const;

const ENHANCED = /\b([245]\.\d{1,3}\.\d{1,3})\b/;

/** A next hop's reply to our transaction: 5xx fails the recipient, anything else defers it. */
export function replyOutcome(response: string, responseCode: number, remote: string): RecipientOutcome {
  const enhanced = ENHANCED.exec(response)?.[1];
  const permanent = responseCode >= 500;
  return {
    status: permanent ? 'failed' : 'deferred',
    code: enhanced ?? (permanent ? '5.0.0' : '4.0.0'),
    detail: `${remote} said: ${response.trim()}`,
    remote,
  };
}

/**
 * What is known about a connection that failed, gathered by the SMTP client adapter from the
 * connection's state (never from an error's wording).
 */
export interface ConnectionFacts {
  /** TLS was demanded (the connector's tlsSettings, or a security policy). */
  tlsRequired: boolean;
  /** TLS was established before the failure. */
  secure: boolean;
  /** The step that failed: the TCP connection, STARTTLS (the command or the handshake), or later. */
  stage: 'connect' | 'starttls' | 'session';
  /** A timer of ours expired (connection, greeting, TLS handshake or socket idle). */
  timedOut: boolean;
  /** The operating system's error code (ECONNREFUSED, ECONNRESET, EHOSTUNREACH…), if any. */
  systemCode: string | null;
  /** The next hop's reply that ended the step (e.g. 454 to STARTTLS), if any. */
  replyCode: number | null;
  /** The server certificate was refused: its chain (with the X.509 reason) or its name. */
  certificate: { problem: 'chain' | 'name'; reason: string } | null;
  /** For the record: the library's own description. */
  description: string;
}

/** The Exchange code of a failed connection (SPEC §4), decided from facts. */
export function classifyConnectionFailure(f: ConnectionFacts): HopFailure {
  if (f.certificate) return hopFailure('certificate', `certificate validation failed (${f.certificate.problem}: ${f.certificate.reason}): ${f.description}`, f.certificate);
  if (f.stage === 'starttls' && f.replyCode !== null) return hopFailure('tls-unavailable', `TLS required but STARTTLS was refused: ${f.description}`);
  if (f.timedOut) return hopFailure('timeout', `timed out: ${f.description}`);
  if (f.systemCode === 'ECONNREFUSED') return hopFailure('refused', `connection refused: ${f.description}`);
  if (f.stage === 'starttls') return hopFailure('tls-unavailable', `TLS negotiation failed: ${f.description}`);
  if (f.tlsRequired && !f.secure && f.stage === 'session') return hopFailure('tls-unavailable', `TLS required but not established: ${f.description}`);
  return hopFailure('closed', `connection closed: ${f.description}`);
}
