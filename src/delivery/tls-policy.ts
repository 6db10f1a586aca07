// What an outbound connector's tlsSettings demand of a connection (SPEC §4), as nodemailer
// SMTPConnection options, plus the name check of domainValidation.
import tls, { type ConnectionOptions, type PeerCertificate, type SecureContext } from 'node:tls';
import { caSetKey, contextTrustingRoots } from '../tls/context.js';
import { allDnsAltNames, commonNames, isCertificateHostName } from '../tls/names.js';
import { certNameMatches, parseDomainPattern, type DomainPattern } from '../policy/match.js';
import type { TlsSettings } from '../policy/types.js';
import type { TlsaRecord } from './dnssec-resolver.js';
import type { ResultType } from './tls-results.js';

/** The error code of a failed name check (checkName), for the failure's classification. */
export const NAME_CHECK_CODE = 'GW_CERT_NAME';

export interface TlsRequirement {
  settings: TlsSettings;
  /** Trusted besides the bundled roots: the connector's tlsCertificateAuthorities (PEM). */
  extraCa: string[];
  /** domainValidation: the pattern the server certificate must carry. */
  domain: DomainPattern | null;
  /**
   * REQUIRETLS (RFC 8689): TLS is required and the certificate must verify (PKIX) for this next
   * hop's name or IP address, whatever tlsSettings say (domainValidation keeps its own name).
   */
  host?: string;
  /**
   * DANE (RFC 7672): TLS is required and the chain must match one of these TLSA records; PKIX
   * and tlsSettings' checks do not apply. The match is made once the connection is up (client.ts).
   */
  dane?: { tlsa: TlsaRecord[]; names: string[] };
  /** MTA-STS: enforce (with `host` set: PKIX for the MX name), or testing (checked, reported, not enforced). */
  sts?: 'enforce' | 'testing';
  /** MTA-STS testing: the MX name the certificate is checked against for the report. */
  stsHost?: string;
  /** MTA-STS testing: told what enforce would have refused. */
  onStsTestingFailure?: (result: ResultType) => void;
}

export interface ClientIdentity {
  key: string;
  cert: string;
  /** Secure contexts by trust roots: building one parses every root, so it is done once. */
  contexts?: Map<string, SecureContext>;
}

function secureContextFor(identity: ClientIdentity, extraCa: string[]): SecureContext {
  const key = caSetKey(extraCa);
  identity.contexts ??= new Map();
  let ctx = identity.contexts.get(key);
  if (!ctx) {
    ctx = contextTrustingRoots({ key: identity.key, cert: identity.cert, minVersion: 'TLSv1.2' }, extraCa);
    identity.contexts.set(key, ctx);
  }
  return ctx;
}

/** The reason a name check failed, or undefined when the certificate carries the name. */
export function checkName(pattern: DomainPattern, cert: PeerCertificate): Error | undefined {
  // RFC 6125: the DNS SANs when there are any; the CN only for a certificate without them.
  // Only host names count (tls/names.ts): a name with a NUL matches nothing.
  const sans = allDnsAltNames(cert);
  const candidates = sans.length ? sans.filter(isCertificateHostName) : commonNames(cert);
  if (candidates.some((n) => certNameMatches(pattern, n))) return undefined;
  return Object.assign(new Error(`certificate name mismatch: wanted ${pattern.text}, certificate has ${candidates.join(', ') || 'no names'}`), { code: NAME_CHECK_CODE });
}

/** RFC 6125 for a host name or IP address (Node's check), failing with our name-check code. */
function checkHost(host: string, cert: PeerCertificate): Error | undefined {
  const err = tls.checkServerIdentity(host, cert);
  return err ? Object.assign(new Error(`certificate name mismatch: ${err.message}`), { code: NAME_CHECK_CODE }) : undefined;
}

/** nodemailer SMTPConnection options for one attempt. */
export function connectionTlsOptions(req: TlsRequirement, identity: ClientIdentity, servername: string | undefined): {
  requireTLS: boolean;
  opportunisticTLS: boolean;
  tls: ConnectionOptions;
} {
  const base: ConnectionOptions = { secureContext: secureContextFor(identity, req.extraCa), minVersion: 'TLSv1.2', servername };
  if (req.dane) return { requireTLS: true, opportunisticTLS: false, tls: { ...base, rejectUnauthorized: false } };
  if (req.host !== undefined && req.settings !== 'domainValidation') {
    const host = req.host;
    return { requireTLS: true, opportunisticTLS: false, tls: { ...base, rejectUnauthorized: true, checkServerIdentity: (_h, cert) => checkHost(host, cert) } };
  }
  switch (req.settings) {
    case null:
      return { requireTLS: false, opportunisticTLS: true, tls: { ...base, rejectUnauthorized: false } };
    case 'encryptionOnly':
      return { requireTLS: true, opportunisticTLS: false, tls: { ...base, rejectUnauthorized: false } };
    case 'certificateValidation':
      return { requireTLS: true, opportunisticTLS: false, tls: { ...base, rejectUnauthorized: true, checkServerIdentity: () => undefined } };
    case 'domainValidation': {
      const pattern = req.domain!;
      return { requireTLS: true, opportunisticTLS: false, tls: { ...base, rejectUnauthorized: true, checkServerIdentity: (_host, cert) => checkName(pattern, cert) } };
    }
  }
}

/** tlsDomain, or the recipient domain when it is empty (SPEC §4). */
export function domainToValidate(tlsDomain: DomainPattern | null, recipientDomain: string): DomainPattern {
  if (tlsDomain) return tlsDomain;
  const p = parseDomainPattern(recipientDomain);
  return typeof p === 'string' ? { kind: 'exact', name: recipientDomain, text: recipientDomain } : p;
}
