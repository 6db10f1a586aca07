// The mailauth adapter's seams: the resolver contract mailauth relies on (dns.promises.resolve's
// error codes tell a void lookup from a failure, RFC 7208 §4.6.4), and the header From domain the
// outbound signing chooses keys by.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { mailauthResolver } from '../../src/auth/verify.js';
import { headerFromDomain } from '../../src/delivery/outgoing.js';

const answering = (a: { rcode: string; records: unknown[] } | Error) => ({ query: async () => (a instanceof Error ? Promise.reject(a) : a) });

describe('mailauthResolver', () => {
  it('NXDOMAIN is ENOTFOUND and an empty answer ENODATA (void lookups); SERVFAIL and no answer are failures (temperror)', async () => {
    const code = (a: Parameters<typeof answering>[0]) => mailauthResolver(answering(a))('x.test', 'TXT').then(() => 'ok', (e: NodeJS.ErrnoException) => e.code);
    expect(await code({ rcode: 'NXDOMAIN', records: [] })).toBe('ENOTFOUND');
    expect(await code({ rcode: 'NOERROR', records: [] })).toBe('ENODATA');
    expect(await code({ rcode: 'SERVFAIL', records: [] })).toBe('ESERVFAIL');
    expect(await code(new Error('no answer within 3000 ms'))).toBe('ETIMEOUT');
  });
  it('answers in dns.promises.resolve shapes: TXT as string arrays, MX with priority', async () => {
    expect(await mailauthResolver(answering({ rcode: 'NOERROR', records: ['v=spf1 -all'] }))('x.test', 'TXT')).toEqual([['v=spf1 -all']]);
    expect(await mailauthResolver(answering({ rcode: 'NOERROR', records: [{ preference: 10, exchange: 'mx.x.test' }] }))('x.test', 'MX')).toEqual([{ priority: 10, exchange: 'mx.x.test' }]);
    await expect(mailauthResolver(answering({ rcode: 'NOERROR', records: [] }))('x.test', 'SRV')).rejects.toMatchObject({ code: 'ENOTIMP' });
  });
});

describe('headerFromDomain', () => {
  it.each([
    ['From: CEO <ceo@Contoso.com>\r\nTo: x@y\r\n\r\nbody', 'contoso.com'],
    ['Subject: a\r\nfrom:ceo@contoso.com\r\n\r\n', 'contoso.com'],
    ['From: "a@b" (comment)\r\n <ceo@contoso.com>\r\n\r\n', 'contoso.com'],
    ['From: undisclosed\r\n\r\n', null],
    ['Subject: no from\r\n\r\n', null],
  ])('%j → %s', async (text, domain) => {
    expect(await headerFromDomain(Readable.from([Buffer.from(text)]))).toBe(domain);
  });
});
