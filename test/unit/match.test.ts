import { describe, expect, it } from 'vitest';
import { certNameMatches, domainMatchScore, parseDomainPattern, parseIp, parseIpRange, smallestContainingRange, type DomainPattern, type IpRange } from '../../src/policy/match.js';

const pat = (t: string) => parseDomainPattern(t) as DomainPattern;
const range = (t: string) => parseIpRange(t) as IpRange;

describe('domain patterns', () => {
  it('exact matches case-insensitively and ignores one trailing dot', () => {
    expect(domainMatchScore(pat('Contoso.COM.'), 'contoso.com')).toBeGreaterThan(0);
    expect(domainMatchScore(pat('contoso.com'), 'sales.contoso.com')).toBe(-1);
  });
  it('*.x.com matches every depth below x.com, not x.com itself', () => {
    const p = pat('*.contoso.com');
    expect(domainMatchScore(p, 'a.contoso.com')).toBeGreaterThan(0);
    expect(domainMatchScore(p, 'a.b.contoso.com')).toBeGreaterThan(0);
    expect(domainMatchScore(p, 'contoso.com')).toBe(-1);
    expect(domainMatchScore(p, 'evilcontoso.com')).toBe(-1);
  });
  it('longer wildcards score higher; exact beats any wildcard; * matches everything, lowest', () => {
    expect(domainMatchScore(pat('*.sales.contoso.com'), 'a.sales.contoso.com')).toBeGreaterThan(domainMatchScore(pat('*.contoso.com'), 'a.sales.contoso.com'));
    expect(domainMatchScore(pat('a.sales.contoso.com'), 'a.sales.contoso.com')).toBeGreaterThan(domainMatchScore(pat('*.sales.contoso.com'), 'a.sales.contoso.com'));
    expect(domainMatchScore(pat('*'), 'anything.example')).toBe(0);
    expect(domainMatchScore(pat('*'), '')).toBe(0);
  });
  it('rejects malformed patterns', () => {
    for (const bad of ['*contoso.com', 'a.*.com', '**.x.com', '*.', 'exa mple.com', '-a.com', '']) {
      expect(typeof parseDomainPattern(bad), bad).toBe('string');
    }
  });
});

describe('certificate names', () => {
  it('policy wildcard covers any depth', () => {
    expect(certNameMatches(pat('*.fabrikam.com'), 'mail.fabrikam.com')).toBe(true);
    expect(certNameMatches(pat('*.fabrikam.com'), 'a.b.fabrikam.com')).toBe(true);
    expect(certNameMatches(pat('*.fabrikam.com'), 'fabrikam.com')).toBe(false);
    expect(certNameMatches(pat('mail.fabrikam.com'), 'MAIL.Fabrikam.com')).toBe(true);
  });
  it('a certificate wildcard stands for exactly one label (RFC 6125)', () => {
    expect(certNameMatches(pat('mail.fabrikam.com'), '*.fabrikam.com')).toBe(true);
    expect(certNameMatches(pat('a.mail.fabrikam.com'), '*.fabrikam.com')).toBe(false);
    expect(certNameMatches(pat('fabrikam.com'), '*.fabrikam.com')).toBe(false);
    expect(certNameMatches(pat('*.fabrikam.com'), '*.fabrikam.com')).toBe(true);
    expect(certNameMatches(pat('mail.fabrikam.com'), 'm*.fabrikam.com')).toBe(false);
    expect(certNameMatches(pat('x.com'), '*.com')).toBe(false);
  });
});

describe('IP ranges', () => {
  it('parses single addresses, CIDRs, dash ranges, IPv6', () => {
    expect(range('10.0.0.0/24').size).toBe(256n);
    expect(range('192.0.2.10-192.0.2.20').size).toBe(11n);
    expect(range('198.51.100.7').size).toBe(1n);
    expect(range('2001:db8::/32').v6).toBe(true);
    expect(range('10.0.0.77/24').lo).toBe(range('10.0.0.0').lo); // host bits are masked
    expect(range('10.0.0.77/24').network).toBe('10.0.0.0/24'); // and said, for check's warning
    expect(range('10.0.0.0/24').network).toBeUndefined();
  });
  it('rejects bad input', () => {
    for (const bad of ['10.0.0.0/33', '300.1.1.1', '10.0.0.5-10.0.0.1', '10.0.0.1-2001:db8::1', 'abc', '1.2.3.4/', '1.2.3.4/024']) {
      expect('error' in parseIpRange(bad), bad).toBe(true);
    }
  });
  it('only decimal dotted quads and IPv6: octal, short, hex and integer forms are errors saying how they would be read (issue 20, item 4)', () => {
    const e = (t: string) => parseIpRange(t) as { error: string; fix: string };
    expect(e('010.020.0.0/22')).toEqual({ error: '"010.020.0.0" is not a decimal dotted-quad IPv4 address: it is read as 8.16.0.0 by software that accepts it', fix: 'write 10.20.0.0 if that is the address you mean (or 8.16.0.0)' });
    expect(e('10.20/16').error).toContain('read as 10.0.0.20');
    expect(e('0x0a.0x14.0.0').error).toContain('read as 10.20.0.0');
    expect(e('169090560').error).toContain('read as 10.20.30.0');
    expect(e('010.0.0.1-10.0.0.9').error).toContain('"010.0.0.1"');
    expect('error' in parseIpRange('2001:db8::1')).toBe(false);
    expect('error' in parseIpRange('::ffff:10.0.0.1')).toBe(false);
  });
  it('smallest containing range wins; IPv4-mapped IPv6 clients match IPv4 ranges', () => {
    const rs = [range('10.0.0.0/8'), range('10.1.0.0/16'), range('10.1.2.3-10.1.2.9'), range('2001:db8::/32')];
    expect(smallestContainingRange(rs, parseIp('10.1.2.5')!)!.text).toBe('10.1.2.3-10.1.2.9');
    expect(smallestContainingRange(rs, parseIp('10.1.9.9')!)!.text).toBe('10.1.0.0/16');
    expect(smallestContainingRange(rs, parseIp('::ffff:10.200.0.1')!)!.text).toBe('10.0.0.0/8');
    expect(smallestContainingRange(rs, parseIp('2001:db8::1')!)!.text).toBe('2001:db8::/32');
    expect(smallestContainingRange(rs, parseIp('11.0.0.1')!)).toBeNull();
  });
});
