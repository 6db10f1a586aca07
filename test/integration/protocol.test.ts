// What the gateway does not offer, it refuses (SPEC §3): MAIL/RCPT parameters it did not
// advertise (555 5.5.4), REQUIRETLS without TLS (530 5.7.10), NUL bytes in DATA (550 5.6.0).
// A real gateway, a raw socket client over STARTTLS and swaks.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type TestPki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { RawSmtp } from '../helpers/raw.js';
import { swaks } from '../helpers/swaks.js';
import { until } from '../helpers/wait.js';

let dir: string;
let pki: TestPki;
let gw: RunningGateway;
const queued = () => fs.readdirSync(path.join(dir, 'queue')).filter((n) => n.endsWith('.json'));

beforeAll(async () => {
  dir = tmpDir('protocol');
  pki = makePki(path.join(dir, 'pki'));
  const file = writePolicy(dir, {
    gateway: testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] } }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    outboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'] }],
  });
  gw = await startGateway(file);
});
afterAll(async () => gw?.stop());

async function tlsSession(): Promise<RawSmtp> {
  const { c } = await RawSmtp.connect(gw.port);
  await c.cmd('EHLO client.test');
  expect(await c.starttls()).toMatch(/^220/);
  await c.cmd('EHLO client.test');
  return c;
}

describe('parameters that were not advertised', () => {
  it('after STARTTLS: unknown MAIL and RCPT parameters get 555 5.5.4 naming them; the advertised ones pass', async () => {
    const c = await tlsSession();
    expect(await c.cmd('MAIL FROM:<a@example.org> FOO=1')).toBe('555 5.5.4 Unsupported parameter FOO');
    expect(await c.cmd('MAIL FROM:<a@example.org> AUTH=<>')).toBe('555 5.5.4 Unsupported parameter AUTH'); // AUTH is not offered
    expect(await c.cmd('MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=x1 REQUIRETLS')).toMatch(/^250 /);
    expect(await c.cmd('RCPT TO:<b@contoso.com> BAR=2')).toBe('555 5.5.4 Unsupported parameter BAR');
    expect(await c.cmd('RCPT TO:<b@contoso.com> NOTIFY=FAILURE ORCPT=rfc822;b@contoso.com')).toMatch(/^250 /);
    c.close();
    await until(() => gw.events('refusal').filter((e) => e.rule === 'parameter').length >= 3, 5_000, 'three parameter refusals logged');
  });
  it('without TLS: REQUIRETLS is not offered and gets 530 5.7.10 (RFC 8689); an unknown parameter 555', async () => {
    const r = await swaks(['--server', `127.0.0.1:${gw.port}`, '--from', 'a@example.org', '--to', 'b@contoso.com', '--quit-after', 'EHLO']);
    expect(r.transcript).not.toMatch(/REQUIRETLS/);
    const t = await swaks(['--server', `127.0.0.1:${gw.port}`, '--from', 'a@example.org', '--to', 'b@contoso.com', '--tls', '--quit-after', 'MAIL']);
    expect(t.transcript).toMatch(/<~ +250[ -]REQUIRETLS/); // offered after STARTTLS only
    const { c } = await RawSmtp.connect(gw.port);
    await c.cmd('EHLO client.test');
    expect(await c.cmd('MAIL FROM:<a@example.org> REQUIRETLS')).toBe('530 5.7.10 REQUIRETLS requires TLS');
    expect(await c.cmd('MAIL FROM:<a@example.org> XYZ')).toBe('555 5.5.4 Unsupported parameter XYZ');
    c.close();
  });
});

describe('NUL bytes', () => {
  it('"\\0." in the body (an SMTP smuggling probe) is refused 550 5.6.0 and nothing is queued', async () => {
    const before = queued().length;
    const c = await tlsSession();
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250 /);
    expect(await c.cmd('RCPT TO:<b@contoso.com>')).toMatch(/^250 /);
    const reply = await c.data('Subject: probe\r\n\r\nfirst\r\n\0.\r\nMAIL FROM:<evil@example.org>\r\n.\r\n');
    expect(reply).toBe('550 5.6.0 NUL characters not allowed');
    c.close();
    expect(queued().length).toBe(before);
  });
});
