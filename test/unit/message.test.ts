import { describe, expect, it } from 'vitest';
import { MessageScanner, traceHeaders } from '../../src/smtp/message.js';
import { rfc5322Date } from '../../src/mail/date.js';
import { evaluateData } from '../../src/policy/data.js';

/** What policy/data.ts decides from what the scanner saw. */
function verdict(s: MessageScanner) {
  const r = evaluateData({ sizeExceeded: false, nul: s.nul, bareLineEnding: s.bareLineEnding, receivedHeaders: s.receivedCount, headerTooLarge: s.headerTooLarge, leadingContinuation: s.leadingContinuation }, null);
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
  it('a message whose first line is a continuation line is refused, never folded into our header (issue 20, item 2)', () => {
    const r = scan([' OnPrem by certificate\r\nSubject: x\r\n\r\nbody\r\n'], 'X-Gateway-Connector: none\r\n');
    expect(r.s.leadingContinuation).toBe(true);
    expect(r.verdict).toEqual({ ok: false, problem: 'header-syntax' });
    expect(scan(['\tx\r\n\r\n']).verdict).toEqual({ ok: false, problem: 'header-syntax' });
    expect(scan(['Subject: a\r\n b\r\n\r\n']).verdict.ok).toBe(true); // a continuation after a field is folding
  });
  it('a header section that never ends stops at 1 MB: nothing more is kept, and it is refused (issue 20, item 10)', () => {
    const s = new MessageScanner('X-Top: 1\r\n');
    const line = Buffer.from(`X-Filler: ${'a'.repeat(990)}\r\n`);
    let kept = 0;
    for (let i = 0; i < 2000; i++) kept += s.push(line).reduce((n, b) => n + b.length, 0); // 2 MB of header lines
    kept += s.end().reduce((n, b) => n + b.length, 0);
    expect(kept).toBe(0);
    expect(s.headerTooLarge).toBe(true);
    expect(verdict(s)).toEqual({ ok: false, problem: 'header-size' });
  });
});


describe('HeaderSection (mail/header-section.ts)', () => {
  it('finds the blank line wherever the chunks cut it, and keeps every byte', async () => {
    const { HeaderSection } = await import('../../src/mail/header-section.js');
    const text = 'A: 1\r\nB: 2\r\n\r\nbody\r\n';
    for (let cut1 = 1; cut1 < text.length - 1; cut1++) {
      for (let cut2 = cut1 + 1; cut2 < text.length; cut2++) {
        const h = new HeaderSection();
        const parts = [text.slice(0, cut1), text.slice(cut1, cut2), text.slice(cut2)].map((p) => Buffer.from(p));
        const out: string[] = [];
        let head = '';
        for (const p of parts) {
          if (head) {
            out.push(p.toString());
            continue;
          }
          const step = h.push(p);
          if (step.kind === 'end') (head = step.head.toString()), out.push(step.rest.toString());
        }
        expect(head, `${cut1},${cut2}`).toBe('A: 1\r\nB: 2\r\n');
        expect(out.join(''), `${cut1},${cut2}`).toBe('\r\nbody\r\n');
      }
    }
  });
});
