// recipientVerification: callout (SPEC §3): recipients of an authoritative domain are checked
// with the domain's outbound smart host before they are accepted; unknown ones get 550 5.4.1.
// While the smart host cannot answer, addresses verified before (kept on disk, across restarts)
// are accepted and never-verified ones get 450 4.1.1 unless the domain accepts them unverified.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { issueCertificate } from '../../src/tls/issue.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { freePort, until } from '../helpers/wait.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { swaks, dataReply, replyTo } from '../helpers/swaks.js';

let pki: TestPki;
let gw: RunningGateway;
let file: string;
let directory: Sink;
let selfSigned: Sink;
/** RCPTs in transactions with the null sender, i.e. probes, per sink and address. */
const probes: Array<{ sink: string; to: string; secure: boolean }> = [];
const KNOWN = new Set(['alice@contoso.com', 'bob@contoso.com']);
const probesOf = (to: string) => probes.filter((p) => p.to === to.toLowerCase()).length;

beforeAll(async () => {
  const dir = tmpDir('verify');
  pki = makePki(path.join(dir, 'pki'));
  const ca = pki.issuers.partnerCa;
  const good = issueCertificate({ commonName: 'dir.contoso.test', altNames: ['dir.contoso.test'], issuer: ca });
  const self = issueCertificate({ commonName: 'dir.contoso.test' });
  const probe = (sink: string) => (to: string, session: { envelope: { mailFrom: false | { address: string } }; secure: boolean }) => {
    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : null;
    if (from === '') probes.push({ sink, to: to.toLowerCase(), secure: session.secure });
    return KNOWN.has(to.toLowerCase()) || to.endsWith('@relay.contoso.org') ? null : ([550, '5.1.1 User unknown'] as [number, string]);
  };
  directory = await startSink({ cert: { cert: good.certPem + ca.certPem, key: good.keyPem }, rcpt: probe('directory') });
  selfSigned = await startSink({ cert: { cert: self.certPem, key: self.keyPem }, rcpt: probe('self-signed') });
  const dead = await freePort();
  file = writePolicy(dir, {
    gateway: testGateway(dir, pki, { log: { level: 'info' } }),
    acceptedDomains: [
      { domain: 'contoso.com', recipientVerification: 'callout' },
      { domain: 'down.contoso.net', recipientVerification: 'callout' },
      { domain: 'lenient.contoso.net', recipientVerification: 'callout', unverifiedRecipients: 'accept' },
      { domain: 'badtls.contoso.net', recipientVerification: 'callout' },
      { domain: 'relay.contoso.org', domainType: 'internalRelay', recipientVerification: 'callout' },
    ],
    inboundConnectors: [{ name: 'OnPrem IP', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.10'] }],
    outboundConnectors: [
      { name: 'Directory', connectorType: 'onPremises', recipientDomains: ['contoso.com', 'relay.contoso.org'], smartHosts: [`[127.0.0.1]:${directory.port}`], tlsSettings: 'certificateValidation', tlsCertificateAuthorities: pki.partnerCa },
      { name: 'Down', connectorType: 'onPremises', recipientDomains: ['down.contoso.net', 'lenient.contoso.net'], smartHosts: [`[127.0.0.1]:${dead}`], tlsSettings: null },
      { name: 'Bad TLS', connectorType: 'onPremises', recipientDomains: ['badtls.contoso.net'], smartHosts: [`[127.0.0.1]:${selfSigned.port}`], tlsSettings: 'certificateValidation', tlsCertificateAuthorities: pki.partnerCa },
    ],
  });
  gw = await startGateway(file);
});

afterAll(async () => {
  await gw?.stop();
  await directory?.close();
  await selfSigned?.close();
});

const from = (to: string, extra: string[] = []) => swaks(['--server', `127.0.0.1:${gw.port}`, '--tls', '--from', 'someone@example.org', '--to', to, ...extra]);

describe('recipientVerification: callout', () => {
  it('a known recipient is accepted and delivered; an unknown one gets 550 5.4.1 at RCPT', async () => {
    expect(dataReply(await from('alice@contoso.com'))).toMatch(/^250 2\.6\.0 Queued as/);
    expect(replyTo(await from('nobody@contoso.com'), 'RCPT TO')).toBe('550 5.4.1 Recipient address rejected: Access denied');
    await directory.waitFor(1);
    expect(directory.messages.map((m) => m.to)).toEqual([['alice@contoso.com']]);
    const refusal = await gw.logged('refusal', (e) => e.recipient === 'nobody@contoso.com');
    expect(refusal).toMatchObject({ rule: 'unknown-recipient', verifiedBy: 'Directory' });
    expect(String(refusal!.detail)).toMatch(/^550 5\.1\.1/);
  });

  it('probes follow the connector: over TLS with its CA, from the null sender', async () => {
    const mine = probes.filter((p) => p.sink === 'directory' && (p.to === 'alice@contoso.com' || p.to === 'nobody@contoso.com'));
    expect(mine.length).toBe(2);
    expect(mine.every((p) => p.secure)).toBe(true);
  });

  it('answers are cached: the same addresses again cause no new probe', async () => {
    expect(dataReply(await from('ALICE@contoso.com'))).toMatch(/^250 2\.6\.0/);
    expect(replyTo(await from('nobody@contoso.com'), 'RCPT TO')).toMatch(/^550 5\.4\.1/);
    expect(probesOf('alice@contoso.com')).toBe(1);
    expect(probesOf('nobody@contoso.com')).toBe(1);
    await until(() => gw.events('recipient-verification').filter((e) => e.cached === true).length >= 2, 5_000, 'two cached answers logged');
  });

  it('one transaction with known and unknown recipients: the unknown one is refused, the message goes to the rest', async () => {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw.port, tls: { rejectUnauthorized: false } } as never);
    const info = await t.sendMail({ from: 'someone@example.org', to: ['bob@contoso.com', 'ghost@contoso.com'], subject: 'mixed', text: 'hi' });
    expect(info.accepted).toEqual(['bob@contoso.com']);
    expect(info.rejected).toEqual(['ghost@contoso.com']);
    await directory.waitFor(3);
    expect(directory.messages.some((m) => m.to.join() === 'bob@contoso.com')).toBe(true);
  });

  it('a next hop that is down, or fails the TLS the connector demands, gives no answer: a never-verified recipient gets 450 4.1.1', async () => {
    expect(replyTo(await from('someone@down.contoso.net'), 'RCPT TO')).toBe('450 4.1.1 Recipient address rejected: unverified address, try again later');
    expect(replyTo(await from('someone@badtls.contoso.net'), 'RCPT TO')).toMatch(/^450 4\.1\.1 /);
    expect(await gw.logged('refusal', (e) => e.recipient === 'someone@down.contoso.net')).toMatchObject({ rule: 'unverified-recipient', verifiedBy: 'Down' });
    const down = await gw.logged('recipient-verification', (e) => e.recipient === 'someone@down.contoso.net');
    const bad = await gw.logged('recipient-verification', (e) => e.recipient === 'someone@badtls.contoso.net');
    expect(down).toMatchObject({ result: 'unknown' });
    expect(String(down!.detail)).toMatch(/ECONNREFUSED|refused/i);
    expect(bad).toMatchObject({ result: 'unknown' });
    expect(String(bad!.detail)).toMatch(/certificate|self[- ]signed/i);
    expect(probes.filter((p) => p.sink === 'self-signed')).toEqual([]); // never asked without the TLS it demands
  });

  it('unverifiedRecipients: accept queues a never-verified recipient while the next hop cannot answer', async () => {
    expect(dataReply(await from('someone@lenient.contoso.net'))).toMatch(/^250 2\.6\.0/);
    expect(await gw.logged('recipient-verification', (e) => e.recipient === 'someone@lenient.contoso.net')).toMatchObject({ result: 'unknown', lastValidAt: null });
  });

  it('internalRelay domains and on-premises sessions are not verified', async () => {
    expect(dataReply(await from('anyone@relay.contoso.org'))).toMatch(/^250 2\.6\.0/);
    expect(dataReply(await swaks(['--server', `127.0.0.1:${gw.port}`, '--local-interface', '127.0.0.10', '--from', 'app@contoso.com', '--to', 'nobody2@contoso.com']))).toMatch(/^250 2\.6\.0/);
    expect(probesOf('anyone@relay.contoso.org')).toBe(0);
    expect(probesOf('nobody2@contoso.com')).toBe(0);
  });
});

describe('callout during an on-premises outage (Postfix: address_verify_positive_expire_time, defer_if_permit)', () => {
  it('after a restart with the directory down, an address verified before is accepted, a never-verified one is deferred', async () => {
    expect(probesOf('alice@contoso.com')).toBe(1); // verified above, positively
    await gw.stop();
    await directory.close(); // on-premises goes down
    gw = await startGateway(file); // the in-memory answers are gone; the positive ones are on disk
    expect(dataReply(await from('alice@contoso.com'))).toMatch(/^250 2\.6\.0/);
    const v = await gw.logged('recipient-verification', (e) => e.recipient === 'alice@contoso.com');
    expect(v).toMatchObject({ result: 'unknown', cached: false });
    expect(Date.parse(String(v!.lastValidAt))).toBeGreaterThan(Date.now() - 3_600_000);
    expect(replyTo(await from('carol@contoso.com'), 'RCPT TO')).toBe('450 4.1.1 Recipient address rejected: unverified address, try again later');
    expect(replyTo(await from('nobody@contoso.com'), 'RCPT TO')).toMatch(/^450 4\.1\.1 /); // known bad before, but not known good: deferred, not accepted
  });
});
