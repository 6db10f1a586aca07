// RFC 3461 DSN: NOTIFY, ORCPT, RET and ENVID are kept with the message, passed on to next hops
// that offer DSN, and decide which reports the gateway itself sends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { makePki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { freePort, until } from '../helpers/wait.js';
import { startSink, type Sink, type SunkMessage } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/raw.js';

let gw: RunningGateway;
let home: Sink; // contoso.com: where DSNs to our senders arrive
let withDsn: Sink; // dsn.test: offers DSN
let noDsn: Sink; // plain.test: does not
const rejectNobody = (a: string): [number, string] | null => (a.startsWith('nobody@') ? [550, '5.1.1 User unknown'] : null);

beforeAll(async () => {
  const dir = tmpDir('dsn');
  const pki = makePki(path.join(dir, 'pki'));
  home = await startSink();
  withDsn = await startSink({ rcpt: rejectNobody });
  noDsn = await startSink({ rcpt: rejectNobody, dsn: false });
  const dead = await freePort();
  const to = (name: string, domains: string[], port: number) => ({ name, connectorType: 'partner', recipientDomains: domains, smartHosts: [`[127.0.0.1]:${port}`], tlsSettings: null });
  gw = await startGateway(
    writePolicy(dir, {
      gateway: testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: ['300ms'], messageExpiration: '2500ms', delayNotification: '800ms' } }),
      acceptedDomains: [{ domain: 'contoso.com' }, { domain: 'corp.test' }],
      inboundConnectors: [{ name: 'OnPrem IP', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.10'] }],
      outboundConnectors: [
        { ...to('Home', ['contoso.com'], home.port), connectorType: 'onPremises' },
        to('With DSN', ['dsn.test'], withDsn.port),
        to('Without DSN', ['plain.test', 'corp.test'], noDsn.port),
        to('Dead', ['dead.test'], dead),
      ],
    }),
  );
});

afterAll(async () => {
  await gw?.stop();
  for (const s of [home, withDsn, noDsn]) await s?.close();
});

/** Sends one message from on-premises (or `from` another address) with raw MAIL/RCPT lines (DSN parameters included). */
async function send(mail: string, rcpts: string[], subject: string, from = '127.0.0.10'): Promise<string> {
  const { c } = await RawSmtp.connect(gw.port, { localAddress: from });
  const ehlo = await c.cmd('EHLO onprem.contoso.com');
  expect(ehlo).toMatch(/^250 /);
  expect(await c.cmd(`MAIL FROM:${mail}`)).toMatch(/^250 /);
  for (const r of rcpts) expect(await c.cmd(`RCPT TO:${r}`), r).toMatch(/^250 /);
  const reply = await c.data(`From: app@contoso.com\r\nTo: someone\r\nSubject: ${subject}\r\n\r\nBody of ${subject}.\r\n.\r\n`);
  c.close();
  expect(reply).toMatch(/^250 2\.6\.0/);
  return reply;
}

const dsnsAbout = (subject: string) => home.messages.filter((m) => m.from === '' && m.raw.includes(`: ${subject}`));
const waitDsns = async (subject: string, n: number) => {
  await until(() => dsnsAbout(subject).length >= n, 10_000);
  return dsnsAbout(subject);
};
const field = (m: SunkMessage, name: string) => [...m.raw.matchAll(new RegExp(`^${name}: (.*)$`, 'gmi'))].map((x) => x[1]!.trim());

describe('DSN (RFC 3461)', () => {
  it('NOTIFY, ORCPT, RET and ENVID are passed on to a next hop that offers DSN', async () => {
    await send('<app@contoso.com> RET=HDRS ENVID=env+2Bid-1', ['<ann@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;ann@old.example', '<bo@dsn.test> NOTIFY=NEVER'], 'pass-on');
    const [m] = await withDsn.waitFor(1);
    expect(m!.dsn).toEqual({ ret: 'HDRS', envid: 'env+id-1' }); // decoded by the sink, as the gateway decoded and re-encoded it
    expect(m!.rcptDsn['ann@dsn.test']).toEqual({ notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;ann@old.example' });
    expect(m!.rcptDsn['bo@dsn.test']).toEqual({ notify: ['NEVER'] });
    // that hop reports delivery itself: no "relayed" notice from the gateway
    await new Promise((r) => setTimeout(r, 500));
    expect(dsnsAbout('pass-on')).toEqual([]);
  });

  it('NOTIFY=SUCCESS to a next hop without DSN: the gateway says "relayed"', async () => {
    await send('<app@contoso.com> ENVID=E2', ['<cy@plain.test> NOTIFY=SUCCESS ORCPT=rfc822;cy@old.example', '<di@plain.test>'], 'relayed');
    const [d] = await waitDsns('relayed', 1);
    expect(field(d!, 'Action')).toEqual(['relayed']);
    expect(field(d!, 'Final-Recipient')).toEqual(['rfc822; cy@plain.test']);
    expect(field(d!, 'Original-Recipient')).toEqual(['rfc822;cy@old.example']);
    expect(field(d!, 'Original-Envelope-Id')).toEqual(['E2']);
    expect(noDsn.messages.some((m) => m.raw.includes('Subject: relayed'))).toBe(true);
  });

  it('a permanent failure: a DSN for NOTIFY=FAILURE (and for no NOTIFY), none for NOTIFY=NEVER; RET=FULL returns the message', async () => {
    await send('<app@contoso.com> RET=FULL', ['<nobody@plain.test> NOTIFY=NEVER'], 'never');
    await send('<app@contoso.com> RET=FULL ENVID=E3', ['<nobody@dsn.test> NOTIFY=FAILURE ORCPT=rfc822;nobody@old.example'], 'full');
    await send('<app@contoso.com>', ['<nobody@plain.test>'], 'default');
    const [full] = await waitDsns('full', 1);
    expect(field(full!, 'Action')).toEqual(['failed']);
    expect(field(full!, 'Status')).toEqual(['5.1.1']);
    expect(field(full!, 'Original-Recipient')).toEqual(['rfc822;nobody@old.example']);
    expect(full!.raw).toMatch(/Content-Type: message\/rfc822\r\n\r\nReceived: [\s\S]*\r\nFrom: app@contoso\.com[\s\S]*Body of full\./);
    const [def] = await waitDsns('default', 1);
    expect(def!.raw).toMatch(/Content-Type: text\/rfc822-headers/);
    expect(def!.raw).not.toMatch(/Body of default\./);
    await until(() => gw.events('dsn-suppressed').some((e) => (e.recipients as string[] | undefined)?.includes('nobody@plain.test')), 5_000);
    expect(dsnsAbout('never')).toEqual([]);
  });

  it('a recipient that cannot be reached: NOTIFY=DELAY gets the delay notice only, NOTIFY=NEVER nothing, the default both', async () => {
    await send('<app@contoso.com>', ['<d1@dead.test> NOTIFY=DELAY'], 'delay-only');
    await send('<app@contoso.com>', ['<d2@dead.test> NOTIFY=NEVER'], 'silent');
    await send('<app@contoso.com>', ['<d3@dead.test>'], 'both');
    const both = await waitDsns('both', 2);
    expect(both.map((m) => field(m, 'Action')[0]).sort()).toEqual(['delayed', 'failed']);
    const expired = (rcpt: string) => gw.events('bounced').some((e) => e.recipient === rcpt && e.result === 'expired');
    await until(() => expired('d1@dead.test') && expired('d2@dead.test'), 10_000);
    await new Promise((r) => setTimeout(r, 1000)); // a DSN queued at expiry would have reached home by now
    expect(dsnsAbout('delay-only').map((m) => field(m, 'Action')[0])).toEqual(['delayed']);
    expect(dsnsAbout('silent')).toEqual([]);
  });

  it('from a session no connector identifies, a DSN returns headers only and NOTIFY=SUCCESS is not honoured (no reflection, issue 20 item 6)', async () => {
    // An attacker writes the victim's address as MAIL FROM, asks for the full message back, and
    // for a success notice from a recipient whose next hop offers no DSN.
    await send('<victim@contoso.com> RET=FULL', ['<nobody@corp.test> NOTIFY=SUCCESS,FAILURE', '<someone@corp.test> NOTIFY=SUCCESS'], 'reflect', '127.0.0.1');
    const [failed] = await waitDsns('reflect', 1);
    expect(field(failed!, 'Action')).toEqual(['failed']);
    expect(failed!.raw).toMatch(/Content-Type: text\/rfc822-headers/);
    expect(failed!.raw).not.toMatch(/Body of reflect\./); // the attacker's content never reaches the victim
    await until(() => noDsn.messages.some((m) => m.raw.includes('Subject: reflect')), 5_000);
    await new Promise((r) => setTimeout(r, 800)); // a 'relayed' notice would have been queued by now
    expect(dsnsAbout('reflect').map((m) => field(m, 'Action')[0])).toEqual(['failed']);
  });
});

