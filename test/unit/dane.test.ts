// DANE's pure parts (delivery/dane.ts) and the choice of outbound security (policy/outbound-security.ts).
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { matchTlsa, planMx, usableTlsa, type MxFacts } from '../../src/delivery/dane.js';
import type { DnsAnswer, TlsaRecord } from '../../src/delivery/dnssec-resolver.js';
import { parseDnsServer } from '../../src/mail/dns-server.js';
import { dnssecTrust, outboundSecurity } from '../../src/policy/outbound-security.js';
import { issueCertificate } from '../../src/tls/issue.js';
import { formatDiagnostics, loadPolicyText } from '../../src/config/load.js';
import { stringify } from 'yaml';
import { baseGateway, policyOf } from './policy-helpers.js';

const ok = <T extends 'MX' | 'A' | 'AAAA' | 'TLSA'>(records: DnsAnswer<T>['records'], secure = true, rcode = 'NOERROR'): DnsAnswer<T> => ({ rcode, secure, extendedErrors: [], records });
const tlsa = (usage: number, selector: number, matchingType: number, data: Buffer): TlsaRecord => ({ usage, selector, matchingType, data });
const facts = (over: Partial<MxFacts> = {}, tl: MxFacts['hosts'][number]['tlsa'] = ok<'TLSA'>([tlsa(3, 1, 1, Buffer.alloc(32))])): MxFacts => ({
  domain: 'example.test',
  mx: ok<'MX'>([{ preference: 10, exchange: 'mx.example.test' }]),
  hosts: [{ name: 'mx.example.test', a: ok<'A'>(['192.0.2.1']), aaaa: ok<'AAAA'>([], true), tlsa: tl }],
  ...over,
});

describe('planMx', () => {
  it('secure MX and TLSA: the hop must match the usable records; the names are the MX host and the domain', () => {
    const p = planMx(facts(), 'opportunistic');
    expect(p.ok && p.hops[0]).toMatchObject({ address: '192.0.2.1', port: 25, security: { kind: 'dane', names: ['mx.example.test', 'example.test'] } });
  });
  it('secure TLSA with only unusable records: TLS without authentication', () => {
    const p = planMx(facts({}, ok<'TLSA'>([tlsa(1, 1, 1, Buffer.alloc(32)), tlsa(3, 2, 1, Buffer.alloc(32))])), 'opportunistic');
    expect(p.ok && p.hops[0]!.security).toEqual({ kind: 'encrypt' });
  });
  it('insecure MX or no TLSA: no DANE (opportunistic), deferred 4.7.324 (mandatory)', () => {
    const insecure = facts({ mx: ok<'MX'>([{ preference: 10, exchange: 'mx.example.test' }], false) }, null);
    expect(planMx(insecure, 'opportunistic')).toMatchObject({ ok: true, hops: [{ security: { kind: 'none' } }] });
    expect(planMx(insecure, 'mandatory')).toMatchObject({ ok: false, status: '4.7.324' });
    const noTlsa = facts({}, ok<'TLSA'>([], true, 'NXDOMAIN'));
    expect(planMx(noTlsa, 'opportunistic')).toMatchObject({ ok: true, hops: [{ security: { kind: 'none' } }] });
    expect(planMx(noTlsa, 'mandatory')).toMatchObject({ ok: false, status: '4.7.324' });
  });
  it('a bogus answer (extended DNS error 6-12) is 4.7.324; another SERVFAIL or no answer is 4.4.312', () => {
    expect(planMx(facts({ mx: { rcode: 'SERVFAIL', secure: false, extendedErrors: [7], records: [] } }), 'opportunistic')).toMatchObject({ ok: false, status: '4.7.324' });
    expect(planMx(facts({ mx: { rcode: 'SERVFAIL', secure: false, extendedErrors: [], records: [] } }), 'opportunistic')).toMatchObject({ ok: false, status: '4.4.312' });
    expect(planMx(facts({ mx: { error: 'timeout' } }), 'opportunistic')).toMatchObject({ ok: false, status: '4.4.312' });
    // A TLSA lookup that fails makes the host unusable (RFC 7672 §2.2.1), never a downgrade.
    expect(planMx(facts({}, { rcode: 'SERVFAIL', secure: false, extendedErrors: [6], records: [] }), 'opportunistic')).toMatchObject({ ok: false, status: '4.7.324' });
  });
  it('NXDOMAIN and null MX are permanent', () => {
    expect(planMx(facts({ mx: ok<'MX'>([], true, 'NXDOMAIN'), hosts: [] }), 'opportunistic')).toMatchObject({ ok: false, permanent: true, status: '5.4.310' });
    expect(planMx(facts({ mx: ok<'MX'>([{ preference: 0, exchange: '' }]), hosts: [] }), 'opportunistic')).toMatchObject({ ok: false, permanent: true, status: '5.1.10' });
  });
});

describe('matchTlsa', () => {
  const ca = issueCertificate({ commonName: 'TA', isCA: true });
  const leaf = issueCertificate({ commonName: 'mx.example.test', altNames: ['mx.example.test'], issuer: ca });
  const rogue = issueCertificate({ commonName: 'Rogue', isCA: true });
  const x = (pem: string) => new crypto.X509Certificate(pem);
  const chain = [x(leaf.certPem), x(ca.certPem)];
  const sha = (alg: string, b: Buffer) => crypto.createHash(alg).update(b).digest();
  const spki = (pem: string) => x(pem).publicKey.export({ type: 'spki', format: 'der' });
  it('DANE-EE: SPKI or whole certificate, SHA-256, SHA-512 or full; the name does not matter', () => {
    expect(matchTlsa([tlsa(3, 1, 1, sha('sha256', spki(leaf.certPem)))], chain, ['other.name'])).toMatchObject({ ok: true });
    expect(matchTlsa([tlsa(3, 0, 2, sha('sha512', x(leaf.certPem).raw))], chain, ['other.name'])).toMatchObject({ ok: true });
    expect(matchTlsa([tlsa(3, 1, 0, spki(leaf.certPem))], chain, [])).toMatchObject({ ok: true });
    expect(matchTlsa([tlsa(3, 1, 1, sha('sha256', spki(ca.certPem)))], chain, [])).toMatchObject({ ok: false });
  });
  it('DANE-TA: the anchor must be in the chain and sign it, and the name must match', () => {
    const ta = [tlsa(2, 0, 1, sha('sha256', x(ca.certPem).raw))];
    expect(matchTlsa(ta, chain, ['mx.example.test'])).toMatchObject({ ok: true });
    expect(matchTlsa(ta, chain, ['mail.example.test'])).toMatchObject({ ok: false, reason: expect.stringMatching(/none of mail\.example\.test/) });
    expect(matchTlsa(ta, [x(leaf.certPem), x(rogue.certPem)], ['mx.example.test'])).toMatchObject({ ok: false });
    expect(matchTlsa(ta, [x(leaf.certPem), x(rogue.certPem), x(ca.certPem)], ['mx.example.test'])).toMatchObject({ ok: false }); // not signed by the next
  });
  it('usableTlsa keeps DANE-TA/EE with known selectors and matching types', () => {
    const d = Buffer.alloc(32);
    expect(usableTlsa([tlsa(0, 1, 1, d), tlsa(1, 1, 1, d), tlsa(2, 1, 1, d), tlsa(3, 0, 2, d), tlsa(3, 2, 1, d), tlsa(3, 1, 3, d)]).map((r) => r.usage)).toEqual([2, 3]);
  });
});

describe('which security applies', () => {
  const with_ = (dns: Record<string, unknown>): ReturnType<typeof policyOf> => {
    const p = policyOf({});
    return { ...p, gateway: { ...p.gateway, dns: { servers: [], dnssecTrusted: false, ...dns } } };
  };
  it('DNSSEC is trusted from loopback resolvers or when declared', () => {
    expect(dnssecTrust(with_({ servers: ['127.0.0.1:5353', '[::1]:53'] })).trusted).toBe(true);
    expect(dnssecTrust(with_({ servers: ['192.0.2.53'] })).trusted).toBe(false);
    expect(dnssecTrust(with_({ servers: ['192.0.2.53'], dnssecTrusted: true })).trusted).toBe(true);
    expect(dnssecTrust(with_({ servers: [] })).trusted).toBe(false);
  });
  it('MX routes get DANE; smart hosts keep their tlsSettings; a connector may override the mode', () => {
    const p = policyOf({ outboundConnectors: [{ name: 'MX partner', connectorType: 'partner', recipientDomains: ['p.test'], useMXRecord: true, smtpDaneMode: 'mandatory' }, { name: 'Smart', connectorType: 'partner', recipientDomains: ['s.test'], smartHosts: ['[192.0.2.9]'] }] });
    const trusted = { ...p, gateway: { ...p.gateway, dns: { servers: ['127.0.0.1'], dnssecTrusted: false } } };
    expect(outboundSecurity(trusted, { kind: 'mx', domain: 'x.test' })).toEqual({ policy: 'dane', mode: 'opportunistic' });
    expect(outboundSecurity(trusted, { kind: 'connector', connector: p.outboundConnectors[0]!, matchedBy: 'p.test' })).toEqual({ policy: 'dane', mode: 'mandatory' });
    expect(outboundSecurity(trusted, { kind: 'connector', connector: p.outboundConnectors[1]!, matchedBy: 's.test' }).policy).toBe('tlsSettings');
    expect(outboundSecurity(p, { kind: 'mx', domain: 'x.test' })).toMatchObject({ policy: 'tlsSettings', why: expect.stringMatching(/^DANE not in effect/) });
  });
  it('DNS server addresses', () => {
    expect(parseDnsServer('127.0.0.1')).toEqual({ host: '127.0.0.1', port: 53 });
    expect(parseDnsServer('127.0.0.1:5353')).toEqual({ host: '127.0.0.1', port: 5353 });
    expect(parseDnsServer('[::1]:53')).toEqual({ host: '::1', port: 53 });
    for (const bad of ['dns.example', '127.0.0.1:0', '1.2.3', '[127.0.0.1]']) expect(parseDnsServer(bad), bad).toBeNull();
  });
  it('check: a bad server address is an error; DANE asked for without a trusted resolver is a warning', () => {
    const check = (gateway: Record<string, unknown>, connectors: unknown[] = []) =>
      formatDiagnostics(loadPolicyText(stringify({ gateway: { ...baseGateway, ...gateway }, outboundConnectors: connectors }), 'p.yaml', { checkFiles: false }));
    expect(check({ dns: { servers: ['dns.example'] } })).toContainEqual(expect.stringMatching(/error: gateway\.dns\.servers\[0\]: "dns\.example" is not a DNS server address/));
    expect(check({ dns: { servers: ['192.0.2.53'] }, outbound: { smtpDaneMode: 'opportunistic' } })).toContainEqual(expect.stringMatching(/warning: gateway\.dns\.servers: DANE is not in effect: 192\.0\.2\.53 is not on loopback/));
    expect(check({ dns: { servers: ['127.0.0.1'] }, outbound: { smtpDaneMode: 'mandatory' } })).toEqual([]);
    expect(check({})).toEqual([]); // no resolver named at all (development): the start-up log says it
    expect(check({ dns: { servers: ['192.0.2.53'] } })).toContainEqual(expect.stringMatching(/warning: gateway\.dns\.servers: DANE is not in effect/));
    expect(check({ dns: { servers: ['192.0.2.53'] }, outbound: { smtpDaneMode: 'none' } })).toEqual([]);
    expect(check({}, [{ name: 'S', connectorType: 'partner', recipientDomains: ['s.test'], smartHosts: ['[192.0.2.9]'], smtpDaneMode: 'mandatory' }])).toContainEqual(expect.stringMatching(/error: outboundConnectors\[0\]\.smtpDaneMode: smtpDaneMode applies to MX routes only/));
  });
});

describe('SecureResolver', () => {
  it('keeps answers for their TTL: the same question twice is asked once; a refused server fails at once', async () => {
    const { startDns } = await import('../helpers/dns.js');
    const { SecureResolver, DnsQueryError } = await import('../../src/delivery/dnssec-resolver.js');
    const dns = await startDns({ 'mx.cache.test': { A: ['192.0.2.7'] } });
    try {
      const [host, port] = dns.server.split(':');
      const r = new SecureResolver([{ host: host!, port: Number(port) }]);
      const first = await r.query('mx.cache.test', 'A');
      const second = await r.query('MX.cache.test', 'A');
      expect(first).toMatchObject({ rcode: 'NOERROR', secure: false, records: ['192.0.2.7'] });
      expect(second).toEqual(first);
      expect(dns.queries.filter((q) => q === 'A mx.cache.test')).toHaveLength(1);
      const t = Date.now();
      await expect(new SecureResolver([{ host: '127.0.0.1', port: 9 }]).query('x.test', 'MX')).rejects.toBeInstanceOf(DnsQueryError);
      expect(Date.now() - t).toBeLessThan(1000);
    } finally {
      await dns.close();
    }
  });
});
