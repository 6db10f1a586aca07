// MTA-STS (RFC 8461, SPEC §8) with real parts: the _mta-sts TXT records from nsd through unbound,
// the policy from an HTTPS server on port 443 of a loopback address with a certificate of a test
// CA (trusted by the gateway through NODE_EXTRA_CA_CERTS), MX sinks on port 25.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { issueCertificate, type Issued } from '../../src/tls/issue.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { startDnssec, type Dnssec } from '../helpers/dnssec.js';
import { until } from '../helpers/wait.js';

const ONPREM = '127.0.0.60';
const HTTPS_IP = '127.0.0.61';
let dir: string;
let pki: TestPki;
let gw: RunningGateway;
let file: string;
let dns: Dnssec;
let web: https.Server | null = null;
let env: Record<string, string>;
const sinks: Record<string, Sink> = {};
const policies: Record<string, string> = {
  'good.sts.test': 'version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n',
  'unlisted.sts.test': 'version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n',
  'wrongcert.sts.test': 'version: STSv1\nmode: enforce\nmx: wrong.sts.test\nmax_age: 86400\n',
  'testing.sts.test': 'version: STSv1\nmode: testing\nmx: *.sts.test\nmax_age: 86400\n',
  'bad.sts.test': 'version: STSv1\nmode: bogus\nmx: mx.sts.test\nmax_age: 86400\n',
  'huge.sts.test': 'version: STSv1\nmode: enforce\nmax_age: 86400\n' + 'mx: mx.sts.test\n'.repeat(6000),
};
const records = (goodId: string) => [
  ...['good', 'unlisted', 'wrongcert', 'testing', 'bad', 'huge', 'junk'].map((d) => `mta-sts.${d} IN A ${HTTPS_IP}`),
  `_mta-sts.good 1 IN TXT "v=STSv1; id=${goodId}"`,
  ...['unlisted', 'wrongcert', 'testing', 'bad', 'huge'].map((d) => `_mta-sts.${d} IN TXT "v=STSv1; id=1"`),
  '_mta-sts.junk IN TXT "v=STSv1; id=@@@"',
  'good IN MX 10 mx', 'bad IN MX 10 mx', 'huge IN MX 10 mx', 'junk IN MX 10 mx',
  'unlisted IN MX 10 unlisted', 'wrongcert IN MX 10 wrong', 'testing IN MX 10 wrong',
  'mx IN A 127.0.0.62', 'wrong IN A 127.0.0.63', 'unlisted IN A 127.0.0.64',
  // RFC 8460: where the reports go.
  `_smtp._tls.good IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.sts.test,https://mta-sts.good.sts.test/tlsrpt"`,
  '_smtp._tls.wrongcert IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.sts.test"',
  'reports IN MX 10 mx',
];
const posted: Buffer[] = [];

async function startWeb(cert: Issued, ca: Issued): Promise<void> {
  web = https.createServer({ cert: cert.certPem + ca.certPem, key: cert.keyPem }, (req, res) => {
    if (req.method === 'POST' && req.url === '/tlsrpt') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posted.push(Buffer.concat(chunks));
        res.writeHead(201).end();
      });
      return;
    }
    const domain = (req.headers.host ?? '').replace(/^mta-sts\./, '').replace(/:\d+$/, '');
    const body = policies[domain];
    if (req.url !== '/.well-known/mta-sts.txt' || body === undefined) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
  });
  await new Promise<void>((r) => web!.listen(443, HTTPS_IP, () => r()));
}

function send(to: string, headers: Record<string, string> = {}): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw.port, localAddress: ONPREM, tls: { rejectUnauthorized: false } } as never);
  return t.sendMail({ from: 'app@contoso.com', to, subject: 'sts', text: 'x', headers }).then((i) => i.response.split(' ').pop()!);
}
const outcome = (id: string) => gw.waitFor((e) => (e.event === 'delivered' || e.event === 'deferred') && e.qid === id, 20_000);

let ca: Issued;
let webCert: Issued;
beforeAll(async () => {
  dir = tmpDir('mta-sts');
  pki = makePki(path.join(dir, 'pki'));
  ca = issueCertificate({ commonName: 'MTA-STS test CA', isCA: true });
  fs.writeFileSync(path.join(dir, 'sts-ca.pem'), ca.certPem);
  env = { NODE_EXTRA_CA_CERTS: path.join(dir, 'sts-ca.pem') };
  webCert = issueCertificate({ commonName: 'mta-sts.good.sts.test', altNames: Object.keys({ ...policies, 'junk.sts.test': '' }).map((d) => `mta-sts.${d}`), issuer: ca });
  await startWeb(webCert, ca);
  const leaf = (name: string) => issueCertificate({ commonName: name, altNames: [name], issuer: ca });
  const pem = (c: Issued) => ({ cert: c.certPem + ca.certPem, key: c.keyPem });
  sinks.mx = await startSink({ host: '127.0.0.62', port: 25, cert: pem(leaf('mx.sts.test')) });
  sinks.wrong = await startSink({ host: '127.0.0.63', port: 25, cert: pem(leaf('other.example')) });
  sinks.unlisted = await startSink({ host: '127.0.0.64', port: 25, cert: pem(leaf('unlisted.sts.test')) });
  dns = await startDnssec(path.join(dir, 'dns'), [{ name: 'sts.test', kind: 'unsigned', records: records('1') }]);
  file = writePolicy(dir, {
    gateway: { ...testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] } }), dns: { servers: [dns.server] } },
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: [ONPREM] }],
  });
  gw = await startGateway(file, env);
}, 120_000);
afterAll(async () => {
  await gw?.stop();
  await dns?.stop();
  web?.close();
  await Promise.all(Object.values(sinks).map((s) => s.close()));
});

describe('MTA-STS', () => {
  it('enforce: delivered over TLS to a listed MX whose certificate is valid for its name', async () => {
    const id = await send('a@good.sts.test');
    expect(await outcome(id)).toMatchObject({ event: 'delivered', security: 'mta-sts-enforce' });
    expect(sinks.mx!.messages[0]).toMatchObject({ secure: true });
    expect(gw.events('mta-sts').find((e) => e.domain === 'good.sts.test')).toMatchObject({ result: 'fetched', id: '1', mode: 'enforce' });
  });
  it('enforce: an MX the policy does not list is never contacted (4.7.325)', async () => {
    const id = await send('b@unlisted.sts.test');
    expect(await outcome(id)).toMatchObject({ event: 'deferred', code: '4.7.325' });
    expect(sinks.unlisted!.connections).toBe(0);
  });
  it('enforce: a certificate for another name is refused (4.7.325), nothing sent', async () => {
    const id = await send('c@wrongcert.sts.test');
    expect(await outcome(id)).toMatchObject({ event: 'deferred', code: '4.7.325' });
    expect(sinks.wrong!.messages).toEqual([]);
  });
  it('testing: delivered, and the failure enforce would have made is reported', async () => {
    const id = await send('d@testing.sts.test');
    expect(await outcome(id)).toMatchObject({ event: 'delivered', security: 'mta-sts-testing' });
    expect(gw.events('tls-policy-failure').find((e) => e.mx === 'wrong.sts.test')).toMatchObject({ policy: 'mta-sts', mode: 'testing', result: 'certificate-host-mismatch' });
  });
  it('a malformed policy, an oversized one, a TXT record with junk: logged, and ordinary delivery', async () => {
    for (const [to, result] of [['e@bad.sts.test', 'invalid-policy'], ['f@huge.sts.test', 'fetch-failed'], ['g@junk.sts.test', 'invalid-record']] as const) {
      const id = await send(to);
      expect(await outcome(id), to).toMatchObject({ event: 'delivered', security: 'dane-none' });
      expect(gw.events('mta-sts').some((e) => e.domain === to.split('@')[1] && e.result === result), `${to}: ${result}`).toBe(true);
    }
  });
  it('TLS-Required: No: the sender asked that the policy not stop delivery', async () => {
    const id = await send('h@unlisted.sts.test', { 'TLS-Required': 'No' });
    expect(await outcome(id)).toMatchObject({ event: 'delivered' });
    await gw.waitFor((e) => e.event === 'removed' && e.qid === id); // done: a kill -9 now cannot deliver it again
    expect(sinks.unlisted!.messages.map((m) => m.to[0])).toEqual(['h@unlisted.sts.test']);
  });
  it('the cached policy survives kill -9 and the HTTPS server being down', async () => {
    expect(fs.existsSync(path.join(dir, 'queue', '.mta-sts', 'unlisted.sts.test.json'))).toBe(true);
    await gw.kill9();
    web?.close();
    web = null;
    gw = await startGateway(file, env);
    const id = await send('i@unlisted.sts.test');
    expect(await outcome(id)).toMatchObject({ event: 'deferred', code: '4.7.325' });
    expect(sinks.unlisted!.messages.length).toBe(1); // only the TLS-Required: No one
    await startWeb(webCert, ca);
  });
  it('a new TXT id makes the gateway fetch the policy again', async () => {
    policies['good.sts.test'] = 'version: STSv1\nmode: testing\nmx: mx.sts.test\nmax_age: 600\n';
    await dns.update('sts.test', records('2'));
    const refetched = () => gw.events('mta-sts').some((e) => e.domain === 'good.sts.test' && e.id === '2' && e.result === 'fetched');
    for (let i = 0; i < 3 && !refetched(); i++) {
      await outcome(await send(`j${i}@good.sts.test`)); // each delivery looks at the TXT id
      if (!refetched()) await new Promise((r) => setTimeout(r, 1000)); // unbound may still hold the old answer for its TTL
    }
    await until(refetched, 5_000, 'the refetch');
    const cached = JSON.parse(fs.readFileSync(path.join(dir, 'queue', '.mta-sts', 'good.sts.test.json'), 'utf8'));
    expect(cached).toMatchObject({ id: '2', policy: { mode: 'testing', maxAge: 600 } });
  });
  it('tls-report send --now: the report mail and the HTTPS POST carry RFC 8460 JSON with the sessions caused here', async () => {
    const r = await runCli(['tls-report', 'send', '--now', '--config', file], dir);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/sent good\.sts\.test → mailto:tlsrpt@reports\.sts\.test: queued as /);
    expect(r.stdout).toMatch(/sent good\.sts\.test → https:\/\/mta-sts\.good\.sts\.test\/tlsrpt: HTTP 201/);
    await until(() => sinks.mx!.messages.filter((m) => m.to.includes('tlsrpt@reports.sts.test')).length >= 2, 15_000, 'two report mails');
    const reports = sinks.mx!.messages.filter((m) => m.to.includes('tlsrpt@reports.sts.test')).map((m) => {
      expect(m.raw).toMatch(/^Content-Type: multipart\/report; report-type="tlsrpt"/m);
      expect(m.raw).toMatch(/^TLS-Report-Domain: /m);
      const b64 = /Content-Type: application\/tlsrpt\+gzip[^]*?\r?\n\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n--/.exec(m.raw)![1]!.replace(/\s/g, '');
      return JSON.parse(zlib.gunzipSync(Buffer.from(b64, 'base64')).toString()) as Record<string, unknown>;
    });
    const byDomain = (d: string) => reports.find((x) => (x.policies as Array<{ policy: Record<string, unknown> }>)[0]!.policy['policy-domain'] === d) as Record<string, any>;
    const good = byDomain('good.sts.test');
    expect(good).toMatchObject({ 'organization-name': 'mx1.contoso.test', 'contact-info': 'postmaster@mx1.contoso.test', 'date-range': { 'start-datetime': expect.stringMatching(/T00:00:00Z$/) } });
    expect(good.policies[0].policy).toMatchObject({ 'policy-type': 'sts', 'policy-string': expect.arrayContaining(['version: STSv1']), 'mx-host': ['mx.sts.test'] });
    expect(good.policies[0].summary['total-successful-session-count']).toBeGreaterThanOrEqual(1);
    const wrong = byDomain('wrongcert.sts.test');
    expect(wrong.policies[0].summary).toEqual({ 'total-successful-session-count': 0, 'total-failure-session-count': 1 });
    expect(wrong.policies[0]['failure-details'][0]).toMatchObject({ 'result-type': 'certificate-host-mismatch', 'receiving-mx-hostname': 'wrong.sts.test', 'receiving-ip': '127.0.0.63', 'failed-session-count': 1 });
    expect(posted.length).toBe(1);
    expect(JSON.parse(zlib.gunzipSync(posted[0]!).toString()).policies[0].policy['policy-domain']).toBe('good.sts.test');
  });
  it('explain tells where MTA-STS applies', async () => {
    const r = await runCli(['explain', '--ip', ONPREM, '--from', 'app@contoso.com', '--to', 'x@good.sts.test', '--config', file], dir);
    expect(r.stdout).toMatch(/MTA-STS/);
  });
});
