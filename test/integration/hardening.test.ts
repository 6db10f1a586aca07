// What an attacker found (issue 20), each over a real socket against a real gateway process:
// a header folded into ours, oversized DATA written to disk in full, a header section that never
// ends. Each test failed on the code before the fix.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { RawSmtp } from '../helpers/raw.js';
import { startSink, type Sink } from '../helpers/sink.js';

let dir: string;
let gw: RunningGateway;
let sink: Sink;
const LIMIT = 2 * 1024 * 1024;

beforeAll(async () => {
  dir = tmpDir('hardening');
  const pki = makePki(path.join(dir, 'pki'));
  sink = await startSink();
  const file = writePolicy(dir, {
    gateway: testGateway(dir, pki, { limits: { maxMessageSize: '2MB', maxMessagesPerMinutePerIp: 100000 } }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.10'], cloudServicesMailEnabled: true }],
    outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [`[127.0.0.1]:${sink.port}`] }],
  });
  gw = await startGateway(file);
});
afterAll(async () => {
  await gw?.stop();
  await sink?.close();
});

async function transaction(content: string | Buffer | ((c: RawSmtp) => Promise<string>), from = '127.0.0.1'): Promise<string> {
  const { c, greeting } = await RawSmtp.connect(gw.port, { localAddress: from });
  try {
    expect(greeting).toMatch(/^220/);
    await c.cmd('EHLO attacker.example');
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<victim@contoso.com>')).toMatch(/^250/);
    if (typeof content === 'function') return await content(c);
    return await c.data(content);
  } finally {
    c.close();
  }
}

/** The largest file the queue directory held while `work` ran (polled). */
async function largestSpoolFile<T>(work: () => Promise<T>): Promise<{ result: T; largest: number }> {
  const q = path.join(dir, 'queue');
  let largest = 0;
  const poll = setInterval(() => {
    for (const n of fs.readdirSync(q)) {
      try {
        largest = Math.max(largest, fs.statSync(path.join(q, n)).size);
      } catch {
        /* removed meanwhile */
      }
    }
  }, 5);
  try {
    return { result: await work(), largest };
  } finally {
    clearInterval(poll);
  }
}

describe('header injection (item 2)', () => {
  it('a DATA whose first line begins with a space is refused, not folded into X-Gateway-Connector', async () => {
    const reply = await transaction(' OnPrem by certificate\r\nSubject: hi\r\n\r\nbody\r\n.\r\n');
    expect(reply).toBe('550 5.6.0 Malformed header: the message begins with a continuation line');
    expect(await gw.logged('refusal', (e) => e.rule === 'header-syntax')).toMatchObject({ rule: 'header-syntax' });
  });
  it('the same from an on-premises server too (its headers are trusted more, not less)', async () => {
    expect(await transaction('\tX-MS-Exchange-Organization-SCL: -1\r\n\r\nbody\r\n.\r\n', '127.0.0.10')).toMatch(/^550 5\.6\.0 /);
  });
});

describe('oversized DATA (item 10)', () => {
  it('past maxMessageSize nothing more is written: a 12 MB message against 2 MB leaves at most the limit on disk, then 552', async () => {
    const body = Buffer.alloc(6 * LIMIT, 'a');
    for (let i = 998; i < body.length; i += 1000) (body[i] = 13), (body[i + 1] = 10);
    const { result, largest } = await largestSpoolFile(() => transaction(Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), body, Buffer.from('\r\n.\r\n')])));
    expect(result).toBe('552 5.3.4 Message size exceeds fixed maximum message size');
    expect(largest).toBeLessThanOrEqual(LIMIT + 64 * 1024);
    expect(fs.readdirSync(path.join(dir, 'queue')).filter((n) => n.endsWith('.eml'))).toEqual([]);
  });
  it('a header section that never ends is bounded (1 MB) and refused with 552 5.3.4, and the session still answers', async () => {
    const headerLines = Buffer.from(`X-Filler: ${'h'.repeat(1000)}\r\n`.repeat(1500)); // 1.5 MB of header lines, no blank line: under maxMessageSize
    const reply = await transaction(async (c) => {
      expect(await c.cmd('DATA')).toMatch(/^354/);
      c.raw.write(headerLines);
      c.raw.write('.\r\n');
      return c.reply();
    });
    expect(reply).toBe('552 5.3.4 Message header size exceeds limit');
    expect(await transaction('Subject: next\r\n\r\nfine\r\n.\r\n')).toMatch(/^250 2\.6\.0 /);
  });
});
