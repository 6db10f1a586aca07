// Issue 2 scenarios against a real gateway process, with swaks, nodemailer and a raw socket client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { makePki, type TestPki } from '../helpers/pki.js';
import { startGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { swaks, replyTo, dataReply } from '../helpers/swaks.js';
import { RawSmtp } from '../helpers/raw.js';

let dir: string;
let pki: TestPki;
let gw: RunningGateway;
let queueDir: string;

const queued = () => fs.readdirSync(queueDir).filter((n) => n.endsWith('.json'));

beforeAll(async () => {
  dir = tmpDir('inbound');
  pki = makePki(path.join(dir, 'pki'));
  queueDir = path.join(dir, 'queue');
  const file = writePolicy(dir, {
    gateway: {
      hostname: 'mx1.contoso.test',
      listeners: [
        { name: 'mx', address: '127.0.0.1', port: 0 },
        { name: 'smtps', address: '127.0.0.1', port: 0, implicitTls: true },
      ],
      tls: { certificate: pki.gatewayCert, key: pki.gatewayKey, clientCertificateAuthorities: pki.partnerCa },
      queue: { directory: queueDir },
      limits: { maxMessageSize: '64KB', maxRecipientsPerMessage: 5 },
      log: { level: 'info' },
    },
    acceptedDomains: [{ domain: 'contoso.com' }, { domain: '*.contoso.com', domainType: 'internalRelay' }],
    inboundConnectors: [
      { name: 'ContosoBank TLS', connectorType: 'partner', senderDomains: ['contosobank.com'], requireTls: true },
      { name: 'Fabrikam cert', connectorType: 'partner', senderDomains: ['fabrikam.com'], requireTls: true, restrictDomainsToCertificate: true, tlsSenderCertificateName: '*.fabrikam.com' },
      { name: 'Woodgrove IP', connectorType: 'partner', senderDomains: ['woodgrovebank.com'], senderIPAddresses: ['127.0.0.2'], restrictDomainsToIPAddresses: true },
      { name: 'Tailspin IP', connectorType: 'partner', senderIPAddresses: ['127.0.0.4/32'], requireTls: true },
      { name: 'OnPrem IP', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.10-127.0.0.11'] },
      { name: 'OnPrem cert', connectorType: 'onPremises', tlsSenderCertificateName: 'exchange.contoso.com', tlsCertificateAuthorities: pki.onpremCa },
    ],
    outboundConnectors: [{ name: 'To on-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'], tlsSettings: null }],
  });
  gw = await startGateway(file);
});

afterAll(async () => {
  await gw?.stop();
});

const base = () => ['--server', `127.0.0.1:${gw.ports.mx}`];
const cert = (c: { cert: string; key: string }) => ['--tls', '--tls-cert', c.cert, '--tls-key', c.key];

describe('scenario 1: partner domain with requireTls', () => {
  it('plaintext is refused 530 5.7.0 at MAIL FROM', async () => {
    const r = await swaks([...base(), '--from', 'a@contosobank.com', '--to', 'user@contoso.com']);
    expect(replyTo(r, 'MAIL FROM')).toMatch(/^530 5\.7\.0 Must issue a STARTTLS command first/);
  });
  it('with STARTTLS the message is accepted and spooled', async () => {
    const r = await swaks([...base(), '--tls', '--from', 'a@contosobank.com', '--to', 'user@contoso.com']);
    const reply = dataReply(r);
    expect(reply).toMatch(/^250 2\.6\.0 Queued as [0-9A-Z]+$/);
    const id = reply.split(' ').pop()!;
    expect(fs.existsSync(path.join(queueDir, `${id}.json`))).toBe(true);
    const env = JSON.parse(fs.readFileSync(path.join(queueDir, `${id}.json`), 'utf8'));
    expect(env).toMatchObject({ sender: 'a@contosobank.com', recipients: [{ address: 'user@contoso.com', status: 'pending' }], client: { connector: 'ContosoBank TLS' } });
  });
});

describe('scenario 2: partner certificate required', () => {
  const from = ['--from', 'b@fabrikam.com', '--to', 'user@contoso.com'];
  it('plaintext is refused 530 before the certificate is considered', async () => {
    expect(replyTo(await swaks([...base(), ...from]), 'MAIL FROM')).toMatch(/^530 5\.7\.0/);
  });
  it('no certificate, a wrong name, an untrusted CA, an expired certificate: 550 5.7.51', async () => {
    const expected = /^550 5\.7\.51 TenantInboundAttribution; certificate required by connector Fabrikam cert/;
    expect(replyTo(await swaks([...base(), '--tls', ...from]), 'MAIL FROM')).toMatch(expected);
    for (const c of [pki.client.wrongName, pki.client.untrusted, pki.client.expired]) {
      expect(replyTo(await swaks([...base(), ...cert(c), ...from]), 'MAIL FROM'), c.cert).toMatch(expected);
    }
  });
  it('the right name from a trusted CA is accepted; a wildcard certificate too', async () => {
    for (const c of [pki.client.fabrikam, pki.client.fabrikamWildcard]) {
      const r = await swaks([...base(), ...cert(c), ...from]);
      expect(dataReply(r), c.cert).toMatch(/^250 2\.6\.0 Queued as/);
    }
    const tls = await gw.logged('tls', (e) => (e.clientCertificate as { verified?: boolean } | null)?.verified === true);
    expect(tls).toBeDefined();
  });
  it('a session on the implicit-TLS listener counts as TLS', async () => {
    const r = await swaks(['--server', `127.0.0.1:${gw.ports.smtps}`, '--tlsc', '--tls-cert', pki.client.fabrikam.cert, '--tls-key', pki.client.fabrikam.key, ...from]);
    expect(dataReply(r)).toMatch(/^250 2\.6\.0/);
  });
});

describe('scenario 3: sender domain restricted to IP addresses', () => {
  const from = ['--from', 'c@woodgrovebank.com', '--to', 'user@contoso.com'];
  it('from outside the range: 550 5.7.51', async () => {
    const r = await swaks([...base(), '--local-interface', '127.0.0.5', ...from]);
    expect(replyTo(r, 'MAIL FROM')).toMatch(/^550 5\.7\.51 TenantInboundAttribution; sender IP not allowed by connector Woodgrove IP/);
  });
  it('from inside the range: accepted', async () => {
    const r = await swaks([...base(), '--local-interface', '127.0.0.2', ...from]);
    expect(dataReply(r)).toMatch(/^250 2\.6\.0/);
  });
  it('another sender domain from outside the range is unaffected', async () => {
    const r = await swaks([...base(), '--local-interface', '127.0.0.5', '--from', 'x@example.org', '--to', 'user@contoso.com']);
    expect(dataReply(r)).toMatch(/^250 2\.6\.0/);
  });
});

describe('scenario 5: partner identified by IP with requireTls', () => {
  it('plaintext from that IP is refused; TLS from it is accepted', async () => {
    const plain = await swaks([...base(), '--local-interface', '127.0.0.4', '--from', 'x@tailspin.example', '--to', 'user@contoso.com']);
    expect(replyTo(plain, 'MAIL FROM')).toMatch(/^530 5\.7\.0/);
    const tls = await swaks([...base(), '--local-interface', '127.0.0.4', '--tls', '--from', 'x@tailspin.example', '--to', 'user@contoso.com']);
    expect(dataReply(tls)).toMatch(/^250 2\.6\.0/);
  });
});

describe('scenario 6: on-premises relay and open-relay prevention', () => {
  it('on-premises by IP may relay to an external domain (nodemailer, bound to 127.0.0.10)', async () => {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw.ports.mx, localAddress: '127.0.0.10', tls: { ca: fs.readFileSync(pki.gatewayCa) } } as never);
    const info = await t.sendMail({ from: 'app@contoso.com', to: 'someone@partner.example', subject: 'relay', text: 'hello' });
    expect(info.response).toMatch(/^250 2\.6\.0 Queued as/);
    expect(info.accepted).toEqual(['someone@partner.example']);
  });
  it('on-premises by certificate may relay to an external domain', async () => {
    const r = await swaks([...base(), ...cert(pki.client.onprem), '--local-interface', '127.0.0.7', '--from', 'app@contoso.com', '--to', 'someone@partner.example']);
    expect(dataReply(r)).toMatch(/^250 2\.6\.0/);
  });
  it("a certificate for our own exchange.contoso.com issued by a partner's CA identifies nothing: no relay, Exchange headers removed (issue 20, item 3)", async () => {
    const r = await swaks([...base(), ...cert(pki.client.onpremByPartner), '--local-interface', '127.0.0.7', '--from', 'app@contoso.com', '--to', 'someone@partner.example']);
    expect(replyTo(r, 'RCPT TO')).toMatch(/^550 5\.7\.64 TenantAttribution; Relay Access Denied/);
    const issuedByPartner = (e: Record<string, unknown>) => {
      const c = e.clientCertificate as { subject?: string; anchors?: string[] } | null;
      return c?.subject === 'exchange.contoso.com' && (c.anchors ?? []).includes(pki.partnerCa);
    };
    const tls = await gw.logged('tls', issuedByPartner);
    expect(tls?.clientCertificate).toMatchObject({ verified: true, names: ['exchange.contoso.com'], anchors: [pki.partnerCa] });
  });
  it('everyone else gets 550 5.7.64 for external recipients, even with TLS or our own domain as sender', async () => {
    for (const extra of [[], ['--tls'], ['--tls-cert', pki.client.fabrikam.cert, '--tls-key', pki.client.fabrikam.key, '--tls']]) {
      const r = await swaks([...base(), ...extra, '--local-interface', '127.0.0.7', '--from', 'ceo@contoso.com', '--to', 'someone@partner.example']);
      expect(replyTo(r, 'RCPT TO')).toMatch(/^550 5\.7\.64 TenantAttribution; Relay Access Denied/);
    }
  });
  it('a message to an accepted domain from the internet is accepted', async () => {
    const r = await swaks([...base(), '--local-interface', '127.0.0.8', '--from', 'someone@internet.example', '--to', 'user@sales.contoso.com']);
    expect(dataReply(r)).toMatch(/^250 2\.6\.0/);
  });
});

describe('scenario 7: limits and hostile content', () => {
  async function session(ip = '127.0.0.9') {
    const { c, greeting } = await RawSmtp.connect(gw.ports.mx, { localAddress: ip });
    expect(greeting).toMatch(/^220 mx1\.contoso\.test ESMTP/);
    expect(await c.cmd('EHLO client.example')).toMatch(/^250 /);
    return c;
  }
  it('EHLO offers what is implemented: STARTTLS, SIZE, PIPELINING, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, DSN; not AUTH', async () => {
    const r = await swaks([...base(), '--quit-after', 'EHLO']);
    const offered = r.transcript.split('\n').filter((l) => /^<-\s+250[ -]/.test(l)).map((l) => l.replace(/^<-\s+250[ -]/, '').split(' ')[0]!.trim());
    expect(offered).toEqual(expect.arrayContaining(['STARTTLS', 'SIZE', 'PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN']));
    expect(offered).not.toContain('AUTH');
  });
  it('SIZE= above the limit is refused at MAIL FROM with 552 5.3.4', async () => {
    const c = await session();
    expect(await c.cmd('MAIL FROM:<a@example.org> SIZE=99999999')).toBe('552 5.3.4 Message size exceeds fixed maximum message size');
    c.close();
  });
  it('a message larger than the limit is refused at end of DATA with 552 5.3.4 and not spooled', async () => {
    const before = queued().length;
    const c = await session();
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<user@contoso.com>');
    const line = 'x'.repeat(998) + '\r\n';
    expect(await c.data('Subject: big\r\n\r\n' + line.repeat(80) + '.\r\n')).toBe('552 5.3.4 Message size exceeds fixed maximum message size');
    expect(await c.cmd('NOOP')).toMatch(/^250/);
    c.close();
    expect(queued().length).toBe(before);
  });
  it('more recipients than allowed: 452 4.5.3 from the sixth on', async () => {
    const c = await session();
    await c.cmd('MAIL FROM:<a@example.org>');
    for (let i = 1; i <= 5; i++) expect(await c.cmd(`RCPT TO:<u${i}@contoso.com>`)).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<u6@contoso.com>')).toBe('452 4.5.3 Too many recipients');
    c.close();
  });
  it('bare LF and bare CR are refused with 550 5.6.11 and not spooled', async () => {
    const before = queued().length;
    for (const body of ['line one\nline two\r\n', 'line one\rline two\r\n']) {
      const c = await session();
      await c.cmd('MAIL FROM:<a@example.org>');
      await c.cmd('RCPT TO:<user@contoso.com>');
      expect(await c.data(`Subject: smuggle\r\n\r\n${body}.\r\n`)).toMatch(/^550 5\.6\.11 Bare line feed not allowed/);
      c.close();
    }
    expect(queued().length).toBe(before);
  });
  it('more than 30 Received headers: 554 5.4.6', async () => {
    const c = await session();
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<user@contoso.com>');
    const rec = 'Received: from a by b; Mon, 23 Nov 2026 10:00:00 +0000\r\n'.repeat(31);
    expect(await c.data(rec + 'Subject: loop\r\n\r\nbody\r\n.\r\n')).toBe('554 5.4.6 Hop count exceeded - possible mail loop');
    c.close();
  });
  it('forged X-Gateway-* headers are removed; Received and X-Gateway-Connector are added', async () => {
    const c = await session('127.0.0.2');
    await c.cmd('MAIL FROM:<c@woodgrovebank.com>');
    await c.cmd('RCPT TO:<user@contoso.com>');
    const reply = await c.data('X-Gateway-Connector: OnPrem IP\r\nX-Gateway-Trust: yes\r\nSubject: forged\r\n\r\nbody\r\n.\r\n');
    c.close();
    expect(reply).toMatch(/^250 2\.6\.0 Queued as /);
    const id = reply.split(' ').pop()!;
    const eml = fs.readFileSync(path.join(queueDir, `${id}.eml`), 'latin1');
    const headers = eml.slice(0, eml.indexOf('\r\n\r\n'));
    expect(headers).toMatch(/^Received: from client\.example \(localhost \[127\.0\.0\.2\]\)\r\n\tby mx1\.contoso\.test with ESMTP id [0-9A-Z]+;\r\n\t\w{3}, /);
    expect(headers.match(/^X-Gateway-/gim)).toEqual(['X-Gateway-']);
    expect(headers).toContain('\r\nX-Gateway-Connector: Woodgrove IP\r\n');
    expect(eml.endsWith('\r\nbody\r\n')).toBe(true);
  });
});

describe('logs', () => {
  it('every refusal is logged with session id, client IP, connector, rule and reply', () => {
    const refusals = gw.events('refusal');
    expect(refusals.length).toBeGreaterThan(5);
    const ipRefusal = refusals.find((e) => e.rule === 'claim-ip');
    expect(ipRefusal).toMatchObject({ ip: '127.0.0.5', connector: 'Woodgrove IP', reply: expect.stringMatching(/^550 5\.7\.51/) });
    expect(typeof ipRefusal!.sid).toBe('string');
    expect(gw.events('queued').every((e) => typeof e.qid === 'string' && typeof e.sid === 'string')).toBe(true);
  });
});
