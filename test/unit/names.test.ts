// Certificate names (tls/names.ts): only host names count; a name with a NUL or another byte no
// host name has matches nothing (issue 20, item 5).
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { certificateNames, isCertificateHostName } from '../../src/tls/names.js';
import { issueCertificate } from '../../src/tls/issue.js';
import { certNameMatches, parseDomainPattern, type DomainPattern } from '../../src/policy/match.js';

const peer = (commonName: string, altNames: string[]): PeerCertificate => new X509Certificate(issueCertificate({ commonName, altNames }).certPem).toLegacyObject() as unknown as PeerCertificate;

describe('certificateNames', () => {
  it('CN and DNS SANs, lower-cased', () => {
    expect(certificateNames(peer('Mail.Fabrikam.test', ['mail.fabrikam.test', 'MX.fabrikam.test']))).toEqual(['mail.fabrikam.test', 'mx.fabrikam.test']);
  });
  it('a name with a NUL from a trusted CA matches nothing, in the SAN or the CN', () => {
    const names = certificateNames(peer('evil.test\0.fabrikam.test', ['evil.test\0.fabrikam.test', 'ok.fabrikam.test']));
    expect(names).toEqual(['ok.fabrikam.test']);
    const pattern = parseDomainPattern('*.fabrikam.test') as DomainPattern;
    expect(names.filter((n) => n.startsWith('evil')).some((n) => certNameMatches(pattern, n))).toBe(false);
  });
  it('a SAN with a comma cannot smuggle a second name', () => {
    expect(certificateNames(peer('x.example', ['a.example, DNS:mail.fabrikam.test']))).toEqual(['x.example']);
  });
  it.each([
    ['mail.fabrikam.test', true],
    ['*.fabrikam.test', true],
    ['fabrikam.test.', true],
    ['evil.test\0.fabrikam.test', false],
    ['evil test.fabrikam.test', false],
    ['a.*.fabrikam.test', false],
    ['-bad.fabrikam.test', false],
    ['', false],
  ])('%j is a host name: %s', (name, ok) => expect(isCertificateHostName(name)).toBe(ok));
});

describe('checkName (outbound domainValidation) with such names', () => {
  it('a server certificate whose only SAN has a NUL matches nothing, not even by its CN', async () => {
    const { checkName } = await import('../../src/delivery/tls-policy.js');
    const pattern = parseDomainPattern('*.fabrikam.test') as DomainPattern;
    expect(checkName(pattern, peer('mail.fabrikam.test', ['evil.test\0.fabrikam.test']))).toBeInstanceOf(Error);
    expect(checkName(pattern, peer('x', ['mail.fabrikam.test']))).toBeUndefined();
  });
});
