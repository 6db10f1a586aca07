import { describe, expect, it } from 'vitest';
import { MessageScanner, traceHeaders } from '../../src/smtp/message.js';
import { rfc5322Date } from '../../src/mail/date.js';
import { evaluateData } from '../../src/policy/data.js';

/** What policy/data.ts decides from what the scanner saw. */
function verdict(s: MessageScanner) {
  const r = evaluateData({ sizeExceeded: false, nul: s.nul, bareLineEnding: s.bareLineEnding, receivedHeaders: s.receivedCount }, null);
  return r ? { ok: false, problem: r.rule } : { ok: true };
}

function scan(parts: string[], prepend = 'X-Top: 1\r\n') {
  const s = new MessageScanner(prepend);
  const out: Buffer[] = [];
  for (const p of parts) out.push(...s.push(Buffer.from(p, 'latin1')));
  out.push(...s.end());
  return { s, text: Buffer.concat(out).toString('latin1'), verdict: verdict(s) };
}

describe('MessageScanner', () => {
  it('prepends our headers and strips X-Gateway-* (with folded lines), keeping the rest byte for byte', () => {
    const r = scan(['Subject: hi\r\nX-Gateway-Connector: forged\r\n\tcontinued\r\nx-gateway-other: y\r\nFrom: a@b\r\n\r\nbody X-Gateway-Connector: stays\r\n']);
    expect(r.text).toBe('X-Top: 1\r\nSubject: hi\r\nFrom: a@b\r\n\r\nbody X-Gateway-Connector: stays\r\n');
    expect(r.s.strippedHeaders).toBe(2);
    expect(r.verdict.ok).toBe(true);
  });
  it('finds the header end across chunk boundaries', () => {
    const r = scan(['Subject: hi\r', '\n\r', '\nbody\r\n']);
    expect(r.text).toBe('X-Top: 1\r\nSubject: hi\r\n\r\nbody\r\n');
    expect(r.verdict.ok).toBe(true);
  });
  it('detects bare LF and bare CR, also across chunks', () => {
    expect(scan(['Subject: a\r\n\r\nline\nmore\r\n']).verdict).toEqual({ ok: false, problem: 'bare-lf' });
    expect(scan(['Subject: a\r\n\r\nline\rmore\r\n']).verdict).toEqual({ ok: false, problem: 'bare-cr' });
    expect(scan(['Subject: a\r\n\r\nline\r', 'more\r\n']).verdict).toEqual({ ok: false, problem: 'bare-cr' });
    expect(scan(['Subject: a\r\n\r\nline', '\n']).verdict).toEqual({ ok: false, problem: 'bare-lf' });
    expect(scan(['Subject: a\r\n\r\nline\r', '\n']).verdict.ok).toBe(true);
  });
  it('counts Received headers: 30 pass, 31 is a loop', () => {
    const rec = (n: number) => 'Received: from x by y; date\r\n'.repeat(n) + 'Subject: s\r\n\r\nbody\r\n';
    expect(scan([rec(30)]).verdict.ok).toBe(true);
    expect(scan([rec(31)]).verdict).toEqual({ ok: false, problem: 'hop-count' });
  });
  it('sees a NUL byte anywhere, also "\\0." that a NUL-dropping server would read as the end of data', () => {
    expect(scan(['Subject: a\r\n\r\nline\r\n\0.\r\nmore\r\n']).verdict).toEqual({ ok: false, problem: 'nul' });
    expect(scan(['Subject: a\0b\r\n\r\nbody\r\n']).verdict).toEqual({ ok: false, problem: 'nul' });
    expect(scan(['Subject: a\r\n\r\nbody\r\n']).s.nul).toBe(false);
  });
  it('handles a message of headers only', () => {
    expect(scan(['Subject: only\r\n']).text).toBe('X-Top: 1\r\nSubject: only\r\n');
  });
});

describe('trace headers', () => {
  it('Received in RFC 5321 form with TLS comment, and X-Gateway-Connector', () => {
    const h = traceHeaders({
      helo: 'mail.fabrikam.com',
      rdns: 'localhost',
      ip: '127.0.0.2',
      hostname: 'mx1.contoso.com',
      queueId: 'ABC123',
      tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
      connector: 'Fabrikam',
      date: new Date(Date.UTC(2026, 10, 23, 20, 5, 9)),
    });
    expect(h).toBe(
      'Received: from mail.fabrikam.com (localhost [127.0.0.2])\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n\tby mx1.contoso.com with ESMTPS id ABC123;\r\n\tMon, 23 Nov 2026 20:05:09 +0000\r\nX-Gateway-Connector: Fabrikam\r\n',
    );
  });
  it('client-supplied HELO cannot inject header lines', () => {
    const h = traceHeaders({ helo: 'evil\r\nX-Gateway-Connector: forged', rdns: null, ip: '192.0.2.1', hostname: 'h', queueId: 'Q', tls: null, connector: null });
    expect(h.split('\r\n').filter((l) => l.startsWith('X-Gateway-Connector')).length).toBe(1);
    expect(h).toContain('with ESMTP id Q');
    expect(h).toContain('X-Gateway-Connector: none');
    expect(rfc5322Date(new Date(Date.UTC(2026, 0, 5, 1, 2, 3)))).toBe('Mon, 5 Jan 2026 01:02:03 +0000');
  });
});

describe('readable logs on a terminal', () => {
  it('one line per event: time, level, event, message, the rest as key=value', async () => {
    const { prettyLine } = await import('../../src/observe/log.js');
    const line = prettyLine(JSON.stringify({ level: 'warn', time: '2026-11-24T03:33:00.123Z', svc: 'connector-gateway', event: 'refusal', msg: 'refused', rule: 'relay', reply: '550 5.7.64 TenantAttribution; Relay Access Denied' }));
    expect(line).toBe('03:33:00.123 WARN  refusal: refused  rule=relay reply="550 5.7.64 TenantAttribution; Relay Access Denied"');
    expect(prettyLine('not json')).toBe('not json');
  });
});
