// Whom the gateway trusts for client certificates, and what it asks for. The listener trusts
// the system roots plus clientCertificateAuthorities, but lists only the latter in its
// CertificateRequest (src/tls/context.ts: listing ~140 roots cost ~20 KB a session).
// "System roots" are stood in for by --use-openssl-ca with SSL_CERT_FILE = a test "public" CA,
// so the root half of the trust is exercised with certificates made here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { makePki, type TestPki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { swaks, dataReply, replyTo } from '../helpers/swaks.js';
import { issueCertificate } from '../../src/tls/issue.js';
import { contextTrustingRoots } from '../../src/tls/context.js';

let dir: string;
let pki: TestPki;
let publicCa: string;
let publicClient: { cert: string; key: string };
const gateways: RunningGateway[] = [];

beforeAll(() => {
  dir = tmpDir('trust');
  pki = makePki(path.join(dir, 'pki'));
  const root = issueCertificate({ commonName: 'Test Public Root', isCA: true });
  publicCa = path.join(dir, 'public-root.crt');
  fs.writeFileSync(publicCa, root.certPem);
  const c = issueCertificate({ commonName: 'mail.fabrikam.com', issuer: root });
  publicClient = { cert: path.join(dir, 'public-client.crt'), key: path.join(dir, 'public-client.key') };
  fs.writeFileSync(publicClient.cert, c.certPem);
  fs.writeFileSync(publicClient.key, c.keyPem);
});

afterAll(async () => {
  for (const g of gateways) await g.stop();
});

async function gatewayWith(name: string, clientCas: string | undefined): Promise<RunningGateway> {
  const d = path.join(dir, name);
  fs.mkdirSync(d);
  const file = writePolicy(d, {
    gateway: testGateway(d, pki, { tls: { certificate: pki.gatewayCert, key: pki.gatewayKey, ...(clientCas ? { clientCertificateAuthorities: clientCas } : {}) } }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [{ name: 'Fabrikam cert', connectorType: 'partner', senderDomains: ['fabrikam.com'], requireTls: true, restrictDomainsToCertificate: true, tlsSenderCertificateName: 'mail.fabrikam.com' }],
    outboundConnectors: [{ name: 'To on-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'], tlsSettings: null }],
  });
  const g = await startGateway(file, { SSL_CERT_FILE: publicCa, SSL_CERT_DIR: path.join(dir, 'no-such-dir') }, ['--use-openssl-ca']);
  gateways.push(g);
  return g;
}

const send = (g: RunningGateway, c: { cert: string; key: string }) =>
  swaks(['--server', `127.0.0.1:${g.port}`, '--tls', '--tls-cert', c.cert, '--tls-key', c.key, '--from', 'a@fabrikam.com', '--to', 'user@contoso.com']);

/** The CA names the listener puts in its CertificateRequest, as openssl s_client prints them. */
function requestedCaNames(port: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('openssl', ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${port}`, '-servername', 'mx1.contoso.test'], { timeout: 15_000 }, (err, stdout) => {
      const m = /Acceptable client certificate CA names\n([\s\S]*?)\n(?:Requested Signature|Client Certificate Types|Shared Requested|Peer signing|---)/.exec(stdout);
      if (!m && err) return reject(err);
      if (!stdout.includes('SSL handshake has read')) return reject(new Error(`no handshake:\n${stdout}`));
      resolve(m ? m[1]!.split('\n').filter(Boolean) : []);
    }).stdin?.end();
  });
}

describe('client certificates: system roots trusted, only the configured CAs listed', () => {
  it('with clientCertificateAuthorities: a partner CA and a "public" root certificate are both accepted, a rogue one refused', async () => {
    const g = await gatewayWith('with-cas', pki.partnerCa);
    expect(dataReply(await send(g, pki.client.fabrikam))).toMatch(/^250 2\.6\.0/);
    expect(dataReply(await send(g, publicClient))).toMatch(/^250 2\.6\.0/);
    expect(replyTo(await send(g, pki.client.untrusted), 'MAIL FROM')).toMatch(/^550 5\.7\.51/);
  });

  it('the CertificateRequest names the configured CA only, not every root', async () => {
    const g = gateways[0]!;
    expect(await requestedCaNames(g.port)).toEqual(['CN = Test Partner CA']);
  });

  it('without clientCertificateAuthorities: the root is trusted, the partner CA is not, and no CA names are sent', async () => {
    const g = await gatewayWith('roots-only', undefined);
    expect(dataReply(await send(g, publicClient))).toMatch(/^250 2\.6\.0/);
    expect(replyTo(await send(g, pki.client.fabrikam), 'MAIL FROM')).toMatch(/^550 5\.7\.51/);
    expect(await requestedCaNames(g.port)).toEqual([]);
  });
});

describe('contextTrustingRoots', () => {
  it('trusts the added CA without changing what other contexts trust', async () => {
    const server = tls.createServer({ key: fs.readFileSync(pki.gatewayKey), cert: fs.readFileSync(pki.gatewayCert) }, (s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const authorized = (ctx: tls.SecureContext) =>
      new Promise<boolean>((resolve, reject) => {
        const s = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', secureContext: ctx, rejectUnauthorized: false }, () => {
          resolve(s.authorized);
          s.destroy();
        });
        s.on('error', reject);
      });
    try {
      const before = contextTrustingRoots({}, []);
      const withCa = contextTrustingRoots({}, [fs.readFileSync(pki.gatewayCa, 'utf8')]);
      const after = contextTrustingRoots({}, []);
      expect(await authorized(withCa)).toBe(true);
      expect(await authorized(before)).toBe(false);
      expect(await authorized(after)).toBe(false);
    } finally {
      server.close();
    }
  });
});
