// SPEC §12 `connector-gateway drain`: a node hands every queued message to a peer over SMTP, each
// removed only after the peer's 250, its envelope intact (DSN parameters); what the peer does not
// take stays, and the next drain sends only that — then the node exits 0.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/raw.js';
import { freePort } from '../helpers/wait.js';

let dir: string;
let file: string;
let gw: RunningGateway;
let dropper: net.Server;
let peer: Sink;
let refuseLater = true;

async function queue(mailFrom: string, rcpts: string[], subject: string): Promise<string> {
  const { c } = await RawSmtp.connect(gw.port, { localAddress: '127.0.0.57' });
  try {
    await c.cmd('EHLO client.test');
    expect(await c.cmd(`MAIL FROM:${mailFrom}`)).toMatch(/^250/);
    for (const r of rcpts) expect(await c.cmd(`RCPT TO:${r}`)).toMatch(/^250/);
    return await c.data(`Subject: ${subject}\r\nMessage-ID: <${subject.replace(/ /g, '.')}@test>\r\n\r\nbody\r\n.\r\n`);
  } finally {
    c.close();
  }
}

beforeAll(async () => {
  dir = tmpDir('drain');
  const pki = makePki(path.join(dir, 'pki'));
  const deadPort = await freePort();
  dropper = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => dropper.listen(deadPort, '127.0.0.1', () => r()));
  peer = await startSink({ noStartTls: true, host: '127.0.0.1', rcpt: (a) => (refuseLater && a.startsWith('later@') ? [451, '4.3.0 not now'] : null) });
  file = writePolicy(dir, {
    gateway: testGateway(dir, pki, { workers: 1 }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    // Our own server (proven by IP): its DSN requests are honoured in full, and handed on so.
    inboundConnectors: [{ name: 'Our app server', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.57'] }],
    outboundConnectors: [{ name: 'On-prem (down)', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [`[127.0.0.1]:${deadPort}`] }],
  });
  gw = await startGateway(file);
  expect(await queue('<alice@example.test> RET=HDRS ENVID=env-1', ['<a@contoso.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@contoso.com'], 'first one')).toMatch(/^250 /);
  expect(await queue('<bob@example.test>', ['<b@contoso.com>', '<later@contoso.com>'], 'second one')).toMatch(/^250 /);
  expect(await queue('<carol@example.test>', ['<c@contoso.com>'], 'third one')).toMatch(/^250 /);
  await gw.logged('parked', () => true, 15_000).catch(() => gw.logged('deferred', () => true));
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  dropper?.close();
  await peer?.close();
});

describe('drain', () => {
  it('hands every message over with its envelope; what the peer refused stays, and the node keeps it', async () => {
    const r = await runCli(['drain', '--to', `127.0.0.1:${peer.port}`, '--config', file]);
    expect(r.stdout).toMatch(/^2 message\(s\) handed over to 127\.0\.0\.1:\d+, 1 left$/m);
    expect(r.stdout).toMatch(/: not handed over \(later@contoso\.com\): 4\.3\.0 /);
    expect(r.code).toBe(1);
    expect(peer.messages.flatMap((m) => m.to).sort()).toEqual(['a@contoso.com', 'b@contoso.com', 'c@contoso.com']);
    const first = peer.messages.find((m) => m.to.includes('a@contoso.com'))!;
    expect(first.dsn).toEqual({ ret: 'HDRS', envid: 'env-1' });
    expect(first.rcptDsn['a@contoso.com']).toMatchObject({ notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;a@contoso.com' });
    expect(first.from).toBe('alice@example.test');
    // Not listening any more: a new client is refused.
    const refused = await new Promise<boolean>((res) => {
      const s = net.connect({ host: '127.0.0.1', port: gw.port });
      s.on('error', () => res(true));
      s.on('data', () => (s.destroy(), res(false)));
    });
    expect(refused).toBe(true);
  });

  it('the next drain sends only what is left, then the node exits 0 with an empty queue', async () => {
    refuseLater = false;
    const r = await runCli(['drain', '--to', `127.0.0.1:${peer.port}`, '--config', file]);
    expect(r.stdout).toMatch(/^1 message\(s\) handed over to 127\.0\.0\.1:\d+, 0 left$/m);
    expect(r.code).toBe(0);
    expect(peer.messages.flatMap((m) => m.to).sort()).toEqual(['a@contoso.com', 'b@contoso.com', 'c@contoso.com', 'later@contoso.com']); // b@ once
    expect(await gw.exited).toBe(0);
    expect(fs.readdirSync(path.join(dir, 'queue')).filter((n) => /\.(json|eml)$/.test(n))).toEqual([]);
    expect(gw.events('drained').length).toBe(4);
  });
});
