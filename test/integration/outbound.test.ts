// Issue 3: routing, enforced TLS per tlsSettings, failover, DNS, retries, DSNs, restart mid-queue.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { issueCertificate } from '../../src/tls/issue.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { freePort, until } from '../helpers/wait.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { startDns } from '../helpers/dns.js';
import { swaks, dataReply } from '../helpers/swaks.js';
import { RawSmtp } from '../helpers/raw.js';

const SETTINGS = [null, 'encryptionOnly', 'certificateValidation', 'domainValidation'] as const;
const KINDS = ['good', 'wrong', 'self', 'expired', 'plain'] as const;
const short = (s: (typeof SETTINGS)[number]) => (s === null ? 'opportunistic' : s.toLowerCase());
// What delivers: [setting][kind]
const EXPECT: Record<string, Record<string, string>> = {
  opportunistic: { good: 'delivered', wrong: 'delivered', self: 'delivered', expired: 'delivered', plain: 'delivered' },
  encryptiononly: { good: 'delivered', wrong: 'delivered', self: 'delivered', expired: 'delivered', plain: '4.4.317' },
  certificatevalidation: { good: 'delivered', wrong: 'delivered', self: '4.7.320', expired: '4.7.320', plain: '4.4.317' },
  domainvalidation: { good: 'delivered', wrong: '4.7.320', self: '4.7.320', expired: '4.7.320', plain: '4.4.317' },
};

let dir: string;
let pki: TestPki;
let gw: RunningGateway;
let file: string;
const sinks: Record<string, Sink> = {};
let dns: Awaited<ReturnType<typeof startDns>>;
let deadPort: number;
let laterPort: number;


function sendFromOnPrem(to: string[], opts: { from?: string; subject?: string } = {}) {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw.port, localAddress: '127.0.0.10', tls: { rejectUnauthorized: false } } as never);
  return t.sendMail({ from: opts.from ?? 'app@contoso.com', to, subject: opts.subject ?? 'outbound test', text: 'hello from on-prem' });
}

const hasDelivered = (rcpt: string) => gw.logs.some((e) => e.event === 'delivered' && e.recipient === rcpt);
const deferral = (rcpt: string) => gw.logs.find((e) => e.event === 'deferred' && e.recipient === rcpt);


beforeAll(async () => {
  dir = tmpDir('outbound');
  pki = makePki(path.join(dir, 'pki'));
  const ca = pki.issuers.partnerCa;
  const now = Date.now();
  const certs = {
    good: issueCertificate({ commonName: 'sink.partner.test', altNames: ['sink.partner.test', 'partner.test'], issuer: ca }),
    wrong: issueCertificate({ commonName: 'other.example', issuer: ca }),
    self: issueCertificate({ commonName: 'sink.partner.test' }),
    expired: issueCertificate({ commonName: 'sink.partner.test', issuer: ca, notBefore: new Date(now - 60 * 86_400_000), notAfter: new Date(now - 86_400_000) }),
  };
  for (const k of ['good', 'wrong', 'self', 'expired'] as const) sinks[k] = await startSink({ cert: { cert: certs[k].certPem + ca.certPem, key: certs[k].keyPem } });
  sinks.plain = await startSink({ noStartTls: true });
  sinks.onprem = await startSink({ cert: { cert: certs.good.certPem, key: certs.good.keyPem } });
  sinks.contoso = await startSink({ cert: { cert: certs.good.certPem, key: certs.good.keyPem } });
  sinks.subs = await startSink({ cert: { cert: certs.good.certPem, key: certs.good.keyPem } });
  sinks.pooled = await startSink({ cert: { cert: certs.good.certPem, key: certs.good.keyPem } });
  sinks.rejecter = await startSink({ rcpt: (a) => (a.startsWith('nobody@') ? [550, '5.1.1 User unknown'] : null) });
  sinks.mx = await startSink({ host: '127.0.0.31', port: 25, cert: { cert: certs.self.certPem, key: certs.self.keyPem } });
  deadPort = await freePort();
  laterPort = await freePort();
  dns = await startDns({
    'relay.partner.test': { A: ['127.0.0.1'] },
    'mxpartner.test': { MX: [{ priority: 10, exchange: 'mx1.mxpartner.test' }] },
    'mx1.mxpartner.test': { A: ['127.0.0.31'] },
  });

  const matrix = SETTINGS.flatMap((s) =>
    KINDS.map((k) => ({
      name: `${short(s)} to ${k}`,
      connectorType: 'partner',
      recipientDomains: [`${short(s)}-${k}.test`],
      smartHosts: [`[127.0.0.1]:${sinks[k]!.port}`],
      tlsSettings: s,
      ...(s === 'certificateValidation' || s === 'domainValidation' ? { tlsCertificateAuthorities: pki.partnerCa } : {}),
      ...(s === 'domainValidation' ? { tlsDomain: '*.partner.test' } : {}),
    })),
  );
  file = writePolicy(dir, {
    gateway: {
      hostname: 'mx1.contoso.test',
      listeners: [{ name: 'mx', address: '127.0.0.1', port: 0 }],
      tls: { certificate: pki.gatewayCert, key: pki.gatewayKey },
      queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1s'], messageExpiration: '1h', delayNotification: 0 },
      dns: { servers: [dns.server] },
    },
    acceptedDomains: [{ domain: 'contoso.com' }, { domain: 'fabrikam.com' }, { domain: '*.contoso.com', domainType: 'internalRelay' }],
    inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.10'] }],
    outboundConnectors: [
      { name: 'All accepted', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [`[127.0.0.1]:${sinks.onprem.port}`], tlsSettings: 'encryptionOnly' },
      { name: 'Contoso', connectorType: 'onPremises', recipientDomains: ['contoso.com'], smartHosts: [`[127.0.0.1]:${sinks.contoso.port}`], tlsSettings: 'certificateValidation', tlsCertificateAuthorities: pki.partnerCa },
      { name: 'Contoso subdomains', connectorType: 'onPremises', recipientDomains: ['*.contoso.com'], smartHosts: [`[127.0.0.1]:${sinks.subs.port}`], tlsSettings: 'domainValidation', tlsDomain: 'sink.partner.test', tlsCertificateAuthorities: pki.partnerCa },
      ...matrix,
      { name: 'DV recipient domain', connectorType: 'partner', recipientDomains: ['partner.test', 'other.test'], smartHosts: [`[127.0.0.1]:${sinks.good!.port}`], tlsSettings: 'domainValidation', tlsCertificateAuthorities: pki.partnerCa },
      { name: 'Failover', connectorType: 'partner', recipientDomains: ['failover.test'], smartHosts: [`[127.0.0.1]:${deadPort}`, `[127.0.0.1]:${sinks.good!.port}`, `127.0.0.1:${deadPort}`], tlsSettings: 'encryptionOnly' },
      { name: 'By name', connectorType: 'partner', recipientDomains: ['named.test'], smartHosts: [`relay.partner.test:${sinks.good!.port}`], tlsSettings: 'domainValidation', tlsDomain: 'sink.partner.test', tlsCertificateAuthorities: pki.partnerCa },
      { name: 'Pooled', connectorType: 'partner', recipientDomains: ['pooled.test'], smartHosts: [`[127.0.0.1]:${sinks.pooled.port}`], tlsSettings: 'encryptionOnly' },
      { name: 'Later', connectorType: 'partner', recipientDomains: ['later.test'], smartHosts: [`[127.0.0.1]:${laterPort}`] },
      { name: 'Rejecter', connectorType: 'partner', recipientDomains: ['bounce.test'], smartHosts: [`[127.0.0.1]:${sinks.rejecter.port}`] },
    ],
  });
  gw = await startGateway(file);
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all(Object.values(sinks).map((s) => s.close()));
  await dns?.close();
});

describe('connector selection (seed 004 example)', () => {
  it('fabrikam.com → all accepted domains, contoso.com → exact, sales.contoso.com → *.contoso.com', async () => {
    const r = await swaks(['--server', `127.0.0.1:${gw.port}`, '--local-interface', '127.0.0.20', '--from', 'sender@internet.example', '--to', 'john@fabrikam.com,john@contoso.com,john@sales.contoso.com']);
    expect(dataReply(r)).toMatch(/^250 2\.6\.0/);
    const [a] = await sinks.onprem!.waitFor(1);
    const [b] = await sinks.contoso!.waitFor(1);
    const [c] = await sinks.subs!.waitFor(1);
    expect(a!.to).toEqual(['john@fabrikam.com']);
    expect(b!.to).toEqual(['john@contoso.com']);
    expect(c!.to).toEqual(['john@sales.contoso.com']);
    for (const m of [a!, b!, c!]) {
      expect(m.secure).toBe(true);
      expect(m.from).toBe('sender@internet.example');
      expect(m.raw).toMatch(/^Received: from /);
      expect(m.raw).toContain('X-Gateway-Connector: none');
    }
  });
});

describe('tlsSettings against each kind of downstream server', () => {
  it('delivers or defers exactly as the connector demands, never plaintext when TLS is required', async () => {
    const rcpts = SETTINGS.flatMap((s) => KINDS.map((k) => `user@${short(s)}-${k}.test`));
    const info = await sendFromOnPrem(rcpts);
    expect(info.response).toMatch(/^250 2\.6\.0/);
    await until(() => rcpts.every((r) => hasDelivered(r) || deferral(r)), 20_000, 'an outcome for every recipient');
    for (const s of SETTINGS) {
      for (const k of KINDS) {
        const rcpt = `user@${short(s)}-${k}.test`;
        const want = EXPECT[short(s)]![k]!;
        if (want === 'delivered') expect(hasDelivered(rcpt), rcpt).toBe(true);
        else {
          expect(hasDelivered(rcpt), rcpt).toBe(false);
          expect(deferral(rcpt)?.code, rcpt).toBe(want);
        }
      }
    }
    // The plaintext-only server received exactly the one opportunistic message, in plaintext.
    expect(sinks.plain!.messages.map((m) => m.to).flat()).toEqual(['user@opportunistic-plain.test']);
    expect(sinks.plain!.plaintextTransactions).toBe(1);
    // The wrong-name message under domainValidation names the reason.
    expect(String(deferral('user@domainvalidation-wrong.test')!.result)).toMatch(/name mismatch: wanted \*\.partner\.test/);
  });
  it('domainValidation with an empty tlsDomain checks the recipient domain', async () => {
    await sendFromOnPrem(['a@partner.test', 'b@other.test']);
    await until(() => hasDelivered('a@partner.test') && !!deferral('b@other.test'), 15_000, 'partner.test delivered, other.test deferred');
    expect(deferral('b@other.test')!.code).toBe('4.7.320');
  });
});

describe('next hops', () => {
  it('fails over from dead smart hosts to a live one (random order)', async () => {
    const rcpts = Array.from({ length: 6 }, (_, i) => `u${i}@failover.test`);
    for (const r of rcpts) await sendFromOnPrem([r]);
    await until(() => rcpts.every(hasDelivered), 15_000, 'failover deliveries');
    expect(rcpts.some((r) => deferral(r))).toBe(false);
  });
  it('reuses a TLS connection to a smart host for the next messages', async () => {
    for (let i = 0; i < 6; i++) {
      await sendFromOnPrem([`p${i}@pooled.test`]);
      await until(() => hasDelivered(`p${i}@pooled.test`), 10_000, 'pooled delivery');
    }
    expect(sinks.pooled!.messages.length).toBe(6);
    expect(sinks.pooled!.messages.every((m) => m.secure)).toBe(true);
    expect(sinks.pooled!.connections).toBe(1);
  });
  it('resolves a smart host name through the configured DNS server (MX, then A)', async () => {
    await sendFromOnPrem(['x@named.test']);
    await until(() => hasDelivered('x@named.test'), 15_000, 'named.test delivered');
    expect(dns.queries).toContain('MX relay.partner.test');
    expect(dns.queries).toContain('A relay.partner.test');
  });
  it('without a connector, delivers by MX lookup (port 25 of the MX host)', async () => {
    await sendFromOnPrem(['y@mxpartner.test']);
    const [m] = await sinks.mx!.waitFor(1);
    expect(m!.to).toEqual(['y@mxpartner.test']);
    expect(m!.secure).toBe(true); // opportunistic TLS: STARTTLS when offered, whatever the certificate
  });
});

describe('retries, bounces, restarts', () => {
  it('a smart host down then up: delivered on retry', async () => {
    await sendFromOnPrem(['z@later.test']);
    await until(() => !!deferral('z@later.test'), 10_000, 'first deferral');
    expect(deferral('z@later.test')!.code).toBe('4.4.316');
    const later = await startSink({ port: laterPort });
    try {
      await later.waitFor(1, 10_000);
      await until(() => hasDelivered('z@later.test'), 5_000, 'delivered event');
    } finally {
      await later.close();
    }
  });
  it('a remote 5xx gives one RFC 3464 DSN to the sender; the accepted recipient is delivered', async () => {
    const before = sinks.contoso!.messages.length;
    await sendFromOnPrem(['nobody@bounce.test', 'somebody@bounce.test'], { from: 'writer@contoso.com', subject: 'will bounce' });
    await until(() => gw.logs.some((e) => e.event === 'bounced' && e.recipient === 'nobody@bounce.test'), 10_000, 'bounce');
    const msgs = await sinks.contoso!.waitFor(before + 1);
    const dsn = msgs[before]!;
    expect(dsn.from).toBe('');
    expect(dsn.to).toEqual(['writer@contoso.com']);
    expect(dsn.raw).toMatch(/Content-Type: multipart\/report; report-type=delivery-status/);
    expect(dsn.raw).toMatch(/Final-Recipient: rfc822; nobody@bounce\.test\r\nAction: failed\r\nStatus: 5\.1\.1/);
    expect(dsn.raw).toContain('Subject: Undeliverable: will bounce');
    expect(dsn.raw).not.toContain('Final-Recipient: rfc822; somebody@bounce.test');
    expect(sinks.rejecter!.messages.some((m) => m.to.includes('somebody@bounce.test'))).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(sinks.contoso!.messages.length).toBe(before + 1); // exactly one DSN (writer@contoso.com routes to the contoso.com connector)
  });
  it('queue list shows deferred messages; restart mid-queue then delivers them', async () => {
    const t = Date.now();
    await sendFromOnPrem([`restart${t}@later.test`]);
    await until(() => !!deferral(`restart${t}@later.test`), 10_000, 'deferral');
    const list = await runCli(['queue', 'list', '--config', file], dir);
    expect(list.stdout).toContain(`restart${t}@later.test`);
    await gw.stop();
    const later = await startSink({ port: laterPort });
    try {
      gw = await startGateway(file);
      const msgs = await later.waitFor(1, 10_000);
      expect(msgs[0]!.to).toEqual([`restart${t}@later.test`]);
    } finally {
      await later.close();
    }
  });
  it('the queue directory does not keep finished messages', async () => {
    await until(() => {
      const names = fs.readdirSync(path.join(dir, 'queue')).filter((n) => n.endsWith('.json'));
      const envs = names.map((n) => JSON.parse(fs.readFileSync(path.join(dir, 'queue', n), 'utf8')));
      return envs.every((e) => e.recipients.some((r: { status: string }) => r.status === 'pending'));
    }, 10_000, 'only pending messages left');
  });
});

describe('what is relayed', () => {
  it('carries BODY=8BITMIME and SMTPUTF8 over, with the 8-bit bytes untouched', async () => {
    const { c } = await RawSmtp.connect(gw.port, { localAddress: '127.0.0.21' });
    await c.cmd('EHLO utf8.example');
    expect(await c.cmd('MAIL FROM:<sender@example.org> BODY=8BITMIME SMTPUTF8')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<jöhn@contoso.com>')).toMatch(/^250/);
    const body = Buffer.from('Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n.\r\n', 'utf8');
    expect(await c.data(body)).toMatch(/^250 2\.6\.0/);
    c.close();
    await until(() => sinks.contoso!.messages.some((m) => m.to.includes('jöhn@contoso.com')), 10_000, 'the UTF-8 message');
    const m = sinks.contoso!.messages.find((x) => x.to.includes('jöhn@contoso.com'))!;
    expect(m.bodyType).toBe('8bitmime');
    expect(m.smtpUtf8).toBe(true);
    expect(m.raw).toContain('Grüße aus Köln');
  });
  it('a bounce of a message from the null sender produces no DSN', async () => {
    const { c } = await RawSmtp.connect(gw.port, { localAddress: '127.0.0.10' });
    await c.cmd('EHLO x');
    expect(await c.cmd('MAIL FROM:<>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<nobody@bounce.test>')).toMatch(/^250/);
    const r = await c.data('Subject: a bounce\r\n\r\nbody\r\n.\r\n');
    c.close();
    const qid = r.split(' ').pop();
    await until(() => gw.logs.some((e) => e.event === 'bounced' && e.qid === qid), 10_000, 'the 5xx');
    await gw.waitFor((e) => e.event === 'dsn-suppressed' && e.qid === qid);
    expect(gw.logs.some((e) => e.event === 'dsn' && e.original === qid)).toBe(false);
  });
});

describe('connector-gateway queue', () => {
  it('show, retry and delete a deferred message', async () => {
    const info = await sendFromOnPrem(['held@later.test']);
    const id = info.response.split(' ').pop()!;
    await until(() => !!deferral('held@later.test'), 10_000, 'the deferral');
    const show = await runCli(['queue', 'show', id, '--config', file], dir);
    expect(show.code).toBe(0);
    const env = JSON.parse(show.stdout);
    expect(env.recipients[0]).toMatchObject({ address: 'held@later.test', status: 'pending' });
    expect(env.recipients[0].lastResult).toMatch(/^4\.4\.316 /);
    const flushes = gw.events('queue-flush').length;
    const retry = await runCli(['queue', 'retry', id, '--config', file], dir);
    expect(retry.stdout).toContain('1 message(s) scheduled for immediate retry');
    await gw.waitFor(() => gw.events('queue-flush').length > flushes);
    const del = await runCli(['queue', 'delete', id, '--config', file], dir);
    expect(del.stdout).toContain(`deleted ${id}`);
    expect((await runCli(['queue', 'list', '--config', file], dir)).stdout).not.toContain(id);
    expect((await runCli(['queue', 'show', 'NOSUCHID0000', '--config', file], dir)).code).toBe(1);
  });
});

describe('expiry', () => {
  let g2: RunningGateway;
  let home: Sink;
  beforeAll(async () => {
    const d = tmpDir('expiry');
    home = await startSink();
    g2 = await startGateway(
      writePolicy(d, {
        gateway: testGateway(d, pki, {
          queue: { directory: path.join(d, 'queue'), retryIntervals: ['500ms'], messageExpiration: '3s', delayNotification: '1s' },
          dns: { servers: [dns.server] },
        }),
        acceptedDomains: [{ domain: 'contoso.com' }],
        inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.10'] }],
        outboundConnectors: [
          { name: 'Home', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [`[127.0.0.1]:${home.port}`] },
          { name: 'Dead', connectorType: 'partner', recipientDomains: ['dead.test'], smartHosts: [`[127.0.0.1]:${deadPort}`] },
        ],
      }),
    );
  });
  afterAll(async () => {
    await g2.stop();
    await home.close();
  });
  it('one delayed DSN after delayNotification, then a failed DSN at expiry', async () => {
    const r = await swaks(['--server', `127.0.0.1:${g2.port}`, '--local-interface', '127.0.0.10', '--from', 'writer@contoso.com', '--to', 'gone@dead.test', '--header', 'Subject: never arrives']);
    expect(dataReply(r)).toMatch(/^250 2\.6\.0/);
    const msgs = await home.waitFor(2, 15_000);
    expect(msgs[0]!.raw).toMatch(/Action: delayed\r\nStatus: 4\.4\.316/);
    expect(msgs[1]!.raw).toMatch(/Action: failed\r\nStatus: 4\.4\.7/);
    expect(msgs[1]!.raw).toContain('Subject: Undeliverable: never arrives');
    await new Promise((res) => setTimeout(res, 1500));
    expect(home.messages.length).toBe(2);
    expect(fs.readdirSync(path.dirname(g2.configFile) + '/queue').filter((n) => n.endsWith('.json'))).toEqual([]);
  });
});
