import { describe, expect, it } from 'vitest';
import { buildDsn, type DsnInput } from '../../src/bounce/dsn.js';

const base: DsnInput = {
  kind: 'failed',
  hostname: 'mx1.contoso.test',
  queueId: 'Q1',
  originalSender: 'app@contoso.com',
  arrivalDate: new Date('2026-11-23T10:00:00Z'),
  recipients: [{ address: 'nobody@partner.test', status: '5.1.1', diagnostic: '550 5.1.1 User unknown', remote: '127.0.0.1', orcpt: 'rfc822;nobody@old.example' }],
  originalHeaders: 'Received: from x\r\nSubject: Hello\r\n',
  now: new Date('2026-11-23T11:00:00Z'),
};

describe('buildDsn', () => {
  it('per-message and per-recipient fields in RFC 3464 order, headers returned by default', () => {
    const text = buildDsn({ ...base, envid: 'ENV-1' }).toString('utf8');
    expect(text).toMatch(/Content-Type: message\/delivery-status\r\n\r\nOriginal-Envelope-Id: ENV-1\r\nReporting-MTA: dns; mx1\.contoso\.test\r\n/);
    expect(text).toMatch(/\r\n\r\nOriginal-Recipient: rfc822;nobody@old\.example\r\nFinal-Recipient: rfc822; nobody@partner\.test\r\nAction: failed\r\nStatus: 5\.1\.1\r\n/);
    expect(text).toMatch(/Subject: Undeliverable: Hello\r\n/);
    expect(text).toMatch(/Content-Type: text\/rfc822-headers\r\n\r\nReceived: from x\r\nSubject: Hello\r\n/);
    expect(text.endsWith('--\r\n')).toBe(true);
  });
  it('RET=FULL returns the original byte for byte, 8-bit content included', () => {
    const original = Buffer.concat([Buffer.from('Subject: Hello\r\n\r\ncaf'), Buffer.from([0xe9]), Buffer.from('\r\n')]);
    const out = buildDsn({ ...base, originalMessage: original });
    const at = out.indexOf(Buffer.from('Content-Type: message/rfc822\r\n\r\n'));
    expect(at).toBeGreaterThan(0);
    const start = at + 'Content-Type: message/rfc822\r\n\r\n'.length;
    expect(out.subarray(start, start + original.length).equals(original)).toBe(true);
    expect(out.subarray(start + original.length).toString('latin1')).toMatch(/^--dsn-[0-9a-f]+--\r\n$/);
  });
  it('relayed reports say so', () => {
    const text = buildDsn({ ...base, kind: 'relayed', recipients: [{ address: 'cy@plain.test', status: '2.0.0', diagnostic: '250 OK' }] }).toString('utf8');
    expect(text).toMatch(/Subject: Relayed: Hello/);
    expect(text).toMatch(/Action: relayed\r\nStatus: 2\.0\.0/);
    expect(text).not.toMatch(/Will-Retry-Until/);
  });
});
