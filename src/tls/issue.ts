// Certificate issuing with node-forge: the dev CA and gateway certificate of `dev-certs`, and
// the CAs and certificates the tests generate.
import forge from 'node-forge';
import { randomBytes } from 'node:crypto';

export interface Issued {
  certPem: string;
  keyPem: string;
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

export interface IssueOptions {
  commonName: string;
  /** DNS names (and IP addresses, detected) for subjectAltName. */
  altNames?: string[];
  /** Signing CA; self-signed when absent. */
  issuer?: Issued;
  isCA?: boolean;
  notBefore?: Date;
  notAfter?: Date;
  organization?: string;
  /** CRL distribution point URL, as publicly issued certificates carry. */
  crlUrl?: string;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export function issueCertificate(o: IssueOptions): Issued {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  const now = Date.now();
  cert.validity.notBefore = o.notBefore ?? new Date(now - 3600_000);
  // 397 days: within the CA/Browser Forum's 398-day limit that TLS scanners check.
  cert.validity.notAfter = o.notAfter ?? new Date(now + 397 * 86_400_000);
  const subject = [{ name: 'commonName', value: o.commonName }];
  if (o.organization) subject.push({ name: 'organizationName', value: o.organization });
  cert.setSubject(subject);
  cert.setIssuer(o.issuer ? o.issuer.cert.subject.attributes : subject);
  const ext: object[] = [];
  if (o.isCA) {
    ext.push({ name: 'basicConstraints', cA: true, critical: true });
    ext.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
  } else {
    ext.push({ name: 'basicConstraints', cA: false });
    ext.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true });
    ext.push({ name: 'extKeyUsage', serverAuth: true, clientAuth: true });
    const alt = o.altNames ?? [o.commonName];
    ext.push({ name: 'subjectAltName', altNames: alt.map((n) => (IPV4.test(n) ? { type: 7, ip: n } : { type: 2, value: n })) });
    if (o.crlUrl) ext.push({ name: 'cRLDistributionPoints', altNames: [{ type: 6, value: o.crlUrl }] });
  }
  ext.push({ name: 'subjectKeyIdentifier' });
  if (o.issuer) ext.push({ name: 'authorityKeyIdentifier', keyIdentifier: o.issuer.cert.generateSubjectKeyIdentifier().getBytes() });
  cert.setExtensions(ext);
  cert.sign(o.issuer ? o.issuer.key : keys.privateKey, forge.md.sha256.create());
  return {
    cert,
    key: keys.privateKey,
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(keys.privateKey),
  };
}
