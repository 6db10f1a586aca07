// Test PKI generated per run with node-forge: gateway certificate, a trusted partner CA and an
// untrusted one, and client certificates: right name, wildcard, wrong name, untrusted, expired.
import fs from 'node:fs';
import path from 'node:path';
import { issueCertificate, type Issued } from '../../src/tls/issue.js';

export interface TestPki {
  dir: string;
  gatewayCert: string;
  gatewayKey: string;
  gatewayCa: string; // CA that issued the gateway certificate
  partnerCa: string; // trusted for client certificates
  onpremCa: string; // our own servers' CA: named on the on-premises connector only
  /** name → {cert, key} file paths */
  client: Record<'fabrikam' | 'fabrikamWildcard' | 'wrongName' | 'untrusted' | 'expired' | 'onprem' | 'onpremByPartner', { cert: string; key: string }>;
  issuers: { gatewayCa: Issued; partnerCa: Issued; rogueCa: Issued; onpremCa: Issued };
}

function write(dir: string, name: string, c: Issued, chain: Issued[] = []): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  fs.writeFileSync(cert, c.certPem + chain.map((x) => x.certPem).join(''));
  fs.writeFileSync(key, c.keyPem);
  return { cert, key };
}

export function makePki(dir: string): TestPki {
  fs.mkdirSync(dir, { recursive: true });
  const gatewayCa = issueCertificate({ commonName: 'Test Gateway CA', isCA: true });
  const partnerCa = issueCertificate({ commonName: 'Test Partner CA', isCA: true });
  const rogueCa = issueCertificate({ commonName: 'Rogue CA', isCA: true });
  const onpremCa = issueCertificate({ commonName: 'Contoso on-premises CA', isCA: true });
  fs.writeFileSync(path.join(dir, 'onprem-ca.crt'), onpremCa.certPem);
  const gw = write(dir, 'gateway', issueCertificate({ commonName: 'mx1.contoso.test', altNames: ['mx1.contoso.test', 'localhost', '127.0.0.1'], issuer: gatewayCa, crlUrl: 'http://pki.contoso.test/gateway-ca.crl' }), [gatewayCa]);
  fs.writeFileSync(path.join(dir, 'gateway-ca.crt'), gatewayCa.certPem);
  fs.writeFileSync(path.join(dir, 'partner-ca.crt'), partnerCa.certPem);
  const now = Date.now();
  return {
    dir,
    gatewayCert: gw.cert,
    gatewayKey: gw.key,
    gatewayCa: path.join(dir, 'gateway-ca.crt'),
    partnerCa: path.join(dir, 'partner-ca.crt'),
    onpremCa: path.join(dir, 'onprem-ca.crt'),
    client: {
      fabrikam: write(dir, 'fabrikam', issueCertificate({ commonName: 'mail.fabrikam.com', issuer: partnerCa })),
      fabrikamWildcard: write(dir, 'fabrikam-wild', issueCertificate({ commonName: 'Fabrikam', altNames: ['*.fabrikam.com'], issuer: partnerCa })),
      wrongName: write(dir, 'wrong-name', issueCertificate({ commonName: 'mail.evil.example', issuer: partnerCa })),
      untrusted: write(dir, 'untrusted', issueCertificate({ commonName: 'mail.fabrikam.com', issuer: rogueCa })),
      expired: write(
        dir,
        'expired',
        issueCertificate({ commonName: 'mail.fabrikam.com', issuer: partnerCa, notBefore: new Date(now - 90 * 86_400_000), notAfter: new Date(now - 86_400_000) }),
      ),
      onprem: write(dir, 'onprem', issueCertificate({ commonName: 'exchange.contoso.com', issuer: onpremCa })),
      // Our own name, minted by a partner's CA (issue 20, item 3): it must identify nothing of ours.
      onpremByPartner: write(dir, 'onprem-by-partner', issueCertificate({ commonName: 'exchange.contoso.com', issuer: partnerCa })),
    },
    issuers: { gatewayCa, partnerCa, rogueCa, onpremCa },
  };
}
