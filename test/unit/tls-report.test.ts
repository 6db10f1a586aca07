// RFC 8460's pure parts (delivery/tls-report.ts): the TXT record, result types, the report.
import { describe, expect, it } from 'vitest';
import { buildReport, parseTlsRptRecord, resultTypeOf, type SessionResult } from '../../src/delivery/tls-results.js';

describe('parseTlsRptRecord', () => {
  it('one TLSRPTv1 record; mailto and https URIs', () => {
    expect(parseTlsRptRecord(['v=TLSRPTv1; rua=mailto:tls@example.com, https://r.example.com/v1'])).toEqual({ rua: ['mailto:tls@example.com', 'https://r.example.com/v1'] });
    expect(parseTlsRptRecord(['v=TLSRPTv1;rua=mailto:a@b.c,http://insecure.example,ftp://x'])).toEqual({ rua: ['mailto:a@b.c'] });
    expect(parseTlsRptRecord(['v=TLSRPTv1; rua=http://insecure.example'])).toBeNull();
    expect(parseTlsRptRecord(['v=TLSRPTv1; rua=mailto:a@b.c', 'v=TLSRPTv1; rua=mailto:d@e.f'])).toBeNull();
    expect(parseTlsRptRecord(['v=spf1 -all'])).toBeNull();
  });
});

describe('resultTypeOf', () => {
  it('TLS negotiation failures have a result type; others are not reported', () => {
    expect(resultTypeOf('starttls-required')).toBe('starttls-not-supported');
    expect(resultTypeOf('tlsa-invalid')).toBe('tlsa-invalid');
    expect(resultTypeOf('certificate-host-mismatch')).toBe('certificate-host-mismatch');
    expect(resultTypeOf('certificate')).toBe('certificate-not-trusted');
    expect(resultTypeOf('refused')).toBeNull();
    expect(resultTypeOf('timeout')).toBeNull();
  });
});

describe('buildReport', () => {
  const at = '2026-11-24T10:00:00.000Z';
  const s = (domain: string, result: SessionResult['result'], mx = 'mx.example.com', ip = '192.0.2.1'): SessionResult => ({ at, domain, policyType: 'sts', policyString: ['version: STSv1', 'mode: enforce', 'mx: mx.example.com', 'max_age: 86400'], mxHost: mx, receivingIp: ip, result });
  it('counts successes and failures per policy for one domain, failures by type, host and address', () => {
    const r = buildReport({
      organization: 'gw.example.org',
      contact: 'postmaster@gw.example.org',
      reportId: 'id-1',
      start: new Date('2026-11-24T00:00:00Z'),
      end: new Date('2026-11-24T23:59:59Z'),
      domain: 'example.com',
      sendingIp: '198.51.100.1',
      results: [s('example.com', 'success'), s('example.com', 'success'), s('example.com', 'certificate-expired'), s('example.com', 'certificate-expired'), s('example.com', 'starttls-not-supported', 'mx2.example.com', '192.0.2.2'), s('other.com', 'success')],
    });
    expect(r).toEqual({
      'organization-name': 'gw.example.org',
      'date-range': { 'start-datetime': '2026-11-24T00:00:00Z', 'end-datetime': '2026-11-24T23:59:59Z' },
      'contact-info': 'postmaster@gw.example.org',
      'report-id': 'id-1',
      policies: [
        {
          policy: { 'policy-type': 'sts', 'policy-string': ['version: STSv1', 'mode: enforce', 'mx: mx.example.com', 'max_age: 86400'], 'policy-domain': 'example.com', 'mx-host': ['mx.example.com', 'mx2.example.com'] },
          summary: { 'total-successful-session-count': 2, 'total-failure-session-count': 3 },
          'failure-details': [
            { 'result-type': 'certificate-expired', 'sending-mta-ip': '198.51.100.1', 'receiving-mx-hostname': 'mx.example.com', 'receiving-ip': '192.0.2.1', 'failed-session-count': 2 },
            { 'result-type': 'starttls-not-supported', 'sending-mta-ip': '198.51.100.1', 'receiving-mx-hostname': 'mx2.example.com', 'receiving-ip': '192.0.2.2', 'failed-session-count': 1 },
          ],
        },
      ],
    });
  });
});
