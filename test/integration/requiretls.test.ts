// REQUIRETLS (RFC 8689, SPEC §8) end to end: a message sent with REQUIRETLS goes only to a next
// hop that offers REQUIRETLS over TLS verified for its name; otherwise the sender gets a DSN with
// 5.7.30 (itself sent with REQUIRETLS, without the message body) and nothing is sent.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { issueCertificate } from '../../src/tls/issue.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { until } from '../helpers/wait.js';

const ONPREM = '127.0.0.30';
let dir: string;
let pki: TestPki;
let gw: RunningGateway;
let file: string;
const sinks: Record<'good' | 'noext' | 'self' | 'onprem', Sink> = {} as never;

function send(to: string, requireTls: boolean, text = 'secret body'): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw.port, localAddress: ONPREM, requireTLS: true, tls: { rejectUnauthorized: false } } as never);
  return t.sendMail({ from: 'alice@contoso.com', to, subject: 'requiretls', text, ...(requireTls ? { requireTLSExtensionEnabled: true } : {}) } as never).then((i) => i.response.split(' ').pop()!);
}

beforeAll(async () => {
  dir = tmpDir('requiretls');
  pki = makePki(path.join(dir, 'pki'));
  const ca = pki.issuers.partnerCa;
  // Valid for the name the gateway connects to: the IP literal of the smart host.
  const good = issueCertificate({ commonName: 'sink.requiretls.test', altNames: ['sink.requiretls.test', '127.0.0.1'], issuer: ca });
  const self = issueCertificate({ commonName: 'self.requiretls.test', altNames: ['127.0.0.1'] });
  const pem = { cert: good.certPem + ca.certPem, key: good.keyPem };
  sinks.good = await startSink({ cert: pem, requireTls: true });
  sinks.noext = await startSink({ cert: pem });
  sinks.self = await startSink({ cert: { cert: self.certPem, key: self.keyPem }, requireTls: true });
  sinks.onprem = await startSink({ cert: pem, requireTls: true });
  const hop = (s: Sink) => [`[127.0.0.1]:${s.port}`];
  file = writePolicy(dir, {
    gateway: testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] } }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: [ONPREM] }],
    outboundConnectors: [
      { name: 'To OnPrem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: hop(sinks.onprem), tlsCertificateAuthorities: pki.partnerCa },
      { name: 'Good', connectorType: 'partner', recipientDomains: ['good.test'], smartHosts: hop(sinks.good), tlsCertificateAuthorities: pki.partnerCa },
      { name: 'No extension', connectorType: 'partner', recipientDomains: ['noext.test'], smartHosts: hop(sinks.noext), tlsCertificateAuthorities: pki.partnerCa },
      { name: 'Self-signed', connectorType: 'partner', recipientDomains: ['self.test'], smartHosts: hop(sinks.self) },
      { name: 'Down', connectorType: 'partner', recipientDomains: ['down.test'], smartHosts: ['[127.0.0.1]:9'] },
    ],
  });
  gw = await startGateway(file);
});
afterAll(async () => {
  await gw?.stop();
  await Promise.all(Object.values(sinks).map((s) => s.close()));
});

const dsnFor = (rcpt: string) => sinks.onprem.messages.find((m) => m.from === '' && m.raw.includes(`Final-Recipient: rfc822; ${rcpt}`));

describe('REQUIRETLS', () => {
  it('to a next hop that offers it over verified TLS: delivered, with REQUIRETLS passed on', async () => {
    await send('bob@good.test', true);
    const [m] = await sinks.good.waitFor(1);
    expect(m).toMatchObject({ to: ['bob@good.test'], secure: true, requireTls: true });
  });

  it('to a next hop that does not offer it: nothing sent, a 5.7.30 DSN that is itself REQUIRETLS and carries no body', async () => {
    const id = await send('carol@noext.test', true, 'the body that must not travel in the clear');
    await gw.waitFor((e) => e.event === 'bounced' && e.qid === id && e.code === '5.7.30', 10_000);
    await until(() => !!dsnFor('carol@noext.test'), 10_000, 'the DSN at the sender');
    const dsn = dsnFor('carol@noext.test')!;
    expect(dsn.raw).toMatch(/Status: 5\.7\.30/);
    expect(dsn.raw).toMatch(/REQUIRETLS support required/);
    expect(dsn.raw).not.toContain('the body that must not travel in the clear');
    expect(dsn.requireTls).toBe(true);
    expect(sinks.noext.messages).toEqual([]);
  });

  it('to a next hop whose certificate does not verify: nothing sent, a 5.7.30 DSN', async () => {
    const id = await send('dave@self.test', true);
    const b = await gw.waitFor((e) => e.event === 'bounced' && e.qid === id, 10_000);
    expect(b.code).toBe('5.7.30');
    expect(String(b.result)).toMatch(/certificate/);
    expect(sinks.self.messages).toEqual([]);
  });

  it('without REQUIRETLS the same hops take the message as their connectors allow', async () => {
    await send('erin@noext.test', false);
    const [m] = await sinks.noext.waitFor(1);
    expect(m).toMatchObject({ to: ['erin@noext.test'], requireTls: false });
  });

  it('an unreachable next hop only defers it, and queue show has the flag', async () => {
    const id = await send('frank@down.test', true);
    const d = await gw.waitFor((e) => e.event === 'deferred' && e.qid === id, 10_000);
    expect(d.code).toBe('4.4.316');
    const show = await runCli(['queue', 'show', id, '--config', file], dir);
    expect(JSON.parse(show.stdout)).toMatchObject({ requireTls: true });
  });
});
