// DANE (RFC 7672, SPEC §8) against real DNSSEC: zones signed with ldns-signzone, served by nsd,
// validated by unbound; the gateway's MX deliveries to sinks on port 25 of loopback addresses.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { issueCertificate, type Issued } from '../../src/tls/issue.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { startDnssec, type Dnssec } from '../helpers/dnssec.js';
import { until } from '../helpers/wait.js';

const ONPREM = '127.0.0.50';
let dir: string;
let pki: TestPki;
let gw: RunningGateway;
let file: string;
let dns: Dnssec;
const sinks: Record<string, Sink> = {};

const spki256 = (c: Issued) => crypto.createHash('sha256').update(new crypto.X509Certificate(c.certPem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
const cert256 = (c: Issued) => crypto.createHash('sha256').update(new crypto.X509Certificate(c.certPem).raw).digest('hex');

function send(to: string): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw.port, localAddress: ONPREM, tls: { rejectUnauthorized: false } } as never);
  return t.sendMail({ from: 'app@contoso.com', to, subject: 'dane', text: 'over DANE' }).then((i) => i.response.split(' ').pop()!);
}
const outcome = (id: string) => gw.waitFor((e) => (e.event === 'delivered' || e.event === 'deferred' || e.event === 'bounced') && e.qid === id, 15_000);

beforeAll(async () => {
  dir = tmpDir('dane');
  pki = makePki(path.join(dir, 'pki'));
  // Self-signed, for a name nobody asked for: only DANE-EE can vouch for it.
  const selfWrong = issueCertificate({ commonName: 'wrong-name.example' });
  const ca = issueCertificate({ commonName: 'DANE test TA', isCA: true });
  const taLeaf = issueCertificate({ commonName: 'mx4.secure.test', altNames: ['mx4.secure.test'], issuer: ca });
  const other = issueCertificate({ commonName: 'other.example' });
  const pem = (c: Issued, chain: Issued[] = []) => ({ cert: c.certPem + chain.map((x) => x.certPem).join(''), key: c.keyPem });
  sinks.ee = await startSink({ host: '127.0.0.41', port: 25, cert: pem(selfWrong) });
  sinks.mismatch = await startSink({ host: '127.0.0.42', port: 25, cert: pem(selfWrong) });
  sinks.plain = await startSink({ host: '127.0.0.43', port: 25, noStartTls: true });
  sinks.ta = await startSink({ host: '127.0.0.44', port: 25, cert: pem(taLeaf, [ca]) });
  sinks.unsigned = await startSink({ host: '127.0.0.45', port: 25, cert: pem(other) });
  sinks.unusable = await startSink({ host: '127.0.0.46', port: 25, cert: pem(other) });
  dns = await startDnssec(path.join(dir, 'dns'), [
    {
      name: 'secure.test',
      kind: 'secure',
      records: [
        'ee IN MX 10 mx1', 'mx1 IN A 127.0.0.41', `_25._tcp.mx1 IN TLSA 3 1 1 ${spki256(selfWrong)}`,
        'mismatch IN MX 10 mx2', 'mx2 IN A 127.0.0.42', `_25._tcp.mx2 IN TLSA 3 1 1 ${spki256(other)}`,
        'nostarttls IN MX 10 mx3', 'mx3 IN A 127.0.0.43', `_25._tcp.mx3 IN TLSA 3 1 1 ${spki256(other)}`,
        'ta IN MX 10 mx4', 'mx4 IN A 127.0.0.44', `_25._tcp.mx4 IN TLSA 2 0 1 ${cert256(ca)}`,
        'unusable IN MX 10 mx6', 'mx6 IN A 127.0.0.46', `_25._tcp.mx6 IN TLSA 1 1 1 ${spki256(other)}`,
      ],
    },
    { name: 'bogus.test', kind: 'bogus', records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.45'] },
    { name: 'unsigned.test', kind: 'unsigned', records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.45', 'mandatory IN MX 10 mx'] },
  ]);
  file = writePolicy(dir, {
    gateway: { ...testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] }, admin: { address: '127.0.0.1', port: 0 } }), dns: { servers: [dns.server] } },
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: [ONPREM] }],
    outboundConnectors: [{ name: 'Mandatory DANE', connectorType: 'partner', recipientDomains: ['mandatory.unsigned.test'], useMXRecord: true, smtpDaneMode: 'mandatory' }],
  });
  gw = await startGateway(file);
}, 120_000);
afterAll(async () => {
  await gw?.stop();
  await dns?.stop();
  await Promise.all(Object.values(sinks).map((s) => s.close()));
});

describe('DANE for MX delivery', () => {
  it('the gateway says DANE is in effect with a loopback validating resolver', () => {
    expect(gw.events('outbound-security')[0]).toMatchObject({ dane: true, mode: 'opportunistic' });
  });
  it('TLSA 3 1 1 matching a self-signed certificate with a wrong name: delivered over TLS', async () => {
    const id = await send('a@ee.secure.test');
    expect(await outcome(id)).toMatchObject({ event: 'delivered' });
    expect(sinks.ee!.messages[0]).toMatchObject({ to: ['a@ee.secure.test'], secure: true });
  });
  it('TLSA that does not match: deferred 4.7.323, nothing sent', async () => {
    const id = await send('b@mismatch.secure.test');
    expect(await outcome(id)).toMatchObject({ event: 'deferred', code: '4.7.323' });
    expect(sinks.mismatch!.messages).toEqual([]);
  });
  it('secure TLSA and a server without STARTTLS: deferred 4.7.321, never plaintext', async () => {
    const id = await send('c@nostarttls.secure.test');
    expect(await outcome(id)).toMatchObject({ event: 'deferred', code: '4.7.321' });
    expect(sinks.plain!.messages).toEqual([]);
    expect(sinks.plain!.plaintextTransactions).toBe(0);
  });
  it('DANE-TA 2 0 1: the chain to the named trust anchor and the MX name are checked; delivered', async () => {
    const id = await send('d@ta.secure.test');
    expect(await outcome(id)).toMatchObject({ event: 'delivered' });
  });
  it('only unusable TLSA usages (PKIX 1 1 1): TLS required without authentication; delivered over TLS', async () => {
    const id = await send('e@unusable.secure.test');
    expect(await outcome(id)).toMatchObject({ event: 'delivered' });
    expect(sinks.unusable!.messages[0]?.secure).toBe(true);
  });
  it('a zone whose signatures are bogus: deferred 4.7.324', async () => {
    const id = await send('f@bogus.test');
    expect(await outcome(id)).toMatchObject({ event: 'deferred', code: '4.7.324' });
  });
  it('an unsigned zone: ordinary opportunistic delivery', async () => {
    const id = await send('g@unsigned.test');
    expect(await outcome(id)).toMatchObject({ event: 'delivered' });
  });
  it('smtpDaneMode: mandatory with an unsigned zone: deferred 4.7.324, nothing sent', async () => {
    const before = sinks.unsigned!.messages.length;
    const id = await send('h@mandatory.unsigned.test');
    expect(await outcome(id)).toMatchObject({ event: 'deferred', code: '4.7.324' });
    expect(sinks.unsigned!.messages.length).toBe(before);
  });
  it('logs and metrics say what secured each MX delivery', async () => {
    expect(gw.events('delivered').find((e) => e.recipient === 'a@ee.secure.test')?.security).toBe('dane');
    expect(gw.events('delivered').find((e) => e.recipient === 'e@unusable.secure.test')?.security).toBe('dane-encrypt');
    expect(gw.events('delivered').find((e) => e.recipient === 'g@unsigned.test')?.security).toBe('dane-none');
    const port = gw.events('admin-listening')[0]!.port as number;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/gateway_mx_deliveries_total\{policy="dane",result="delivered"\} [1-9]/);
    expect(text).toMatch(/gateway_mx_deliveries_total\{policy="dane",result="deferred"\} [1-9]/);
  });
  it('validate reports what DANE finds for an MX connector', async () => {
    const r = await runCli(['validate', 'Mandatory DANE', '--to', 'x@mandatory.unsigned.test', '--config', file], dir);
    expect(r.stdout).toContain('security: DANE (smtpDaneMode mandatory)');
    expect(r.stdout).toContain('plan: deferred 4.7.324 dnssec-invalid');
  });
  it('each negotiation under DANE is recorded for TLS reports (RFC 8460)', async () => {
    const day = new Date().toISOString().slice(0, 10);
    const file = path.join(dir, 'queue', '.tlsrpt', `${day}.jsonl`);
    await until(() => fs.existsSync(file), 5_000, 'the results log');
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toContainEqual(expect.objectContaining({ domain: 'ee.secure.test', policyType: 'tlsa', mxHost: 'mx1.secure.test', receivingIp: '127.0.0.41', result: 'success' }));
    expect(lines).toContainEqual(expect.objectContaining({ domain: 'mismatch.secure.test', policyType: 'tlsa', result: 'tlsa-invalid' }));
    expect(lines).toContainEqual(expect.objectContaining({ domain: 'nostarttls.secure.test', result: 'starttls-not-supported' }));
  });
  it('explain says which policy applies', async () => {
    const r = await runCli(['explain', '--ip', ONPREM, '--from', 'app@contoso.com', '--to', 'x@ee.secure.test', '--to', 'y@mandatory.unsigned.test', '--config', file], dir);
    expect(r.stdout).toContain('security: DANE (smtpDaneMode opportunistic)');
    expect(r.stdout).toContain('security: DANE (smtpDaneMode mandatory)');
  });
});
