// SPEC §11's organization rules on the wire (swaks): Reject Direct Send at MAIL FROM, and the relay
// of an on-premises connector identified by IP only for our own senders.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { dataReply, replyTo, swaks } from '../helpers/swaks.js';

let gw: RunningGateway;

beforeAll(async () => {
  const dir = tmpDir('organization');
  const pki = makePki(path.join(dir, 'pki'));
  gw = await startGateway(
    writePolicy(dir, {
      gateway: testGateway(dir, pki, { rejectDirectSend: true, limits: { maxMessagesPerMinutePerIp: 100000 } }),
      acceptedDomains: [{ domain: 'contoso.com' }],
      inboundConnectors: [
        { name: 'OnPrem IP', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.10'] },
        { name: 'Apps', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.12'], relayAnySenderDomain: true },
      ],
      outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'] }],
    }),
  );
});
afterAll(async () => {
  await gw?.stop();
});

const send = (from: string, sender: string, to: string) => swaks(['--server', `127.0.0.1:${gw.port}`, '--local-interface', from, '--from', sender, '--to', to]);

describe('Reject Direct Send (gateway.rejectDirectSend)', () => {
  it('our domain as sender from the internet: 550 5.7.68 at MAIL FROM', async () => {
    const r = await send('127.0.0.7', 'ceo@contoso.com', 'user@contoso.com');
    expect(replyTo(r, 'MAIL FROM')).toBe('550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources');
    expect(gw.events('refusal').some((e) => e.rule === 'direct-send')).toBe(true);
  });
  it('the same sender from our own servers, and strangers from the internet, are accepted', async () => {
    expect(dataReply(await send('127.0.0.10', 'ceo@contoso.com', 'user@contoso.com'))).toMatch(/^250 2\.6\.0/);
    expect(dataReply(await send('127.0.0.7', 'someone@example.org', 'user@contoso.com'))).toMatch(/^250 2\.6\.0/);
  });
});

describe('the relay of an on-premises connector identified by IP', () => {
  it('relays for our senders and the null sender, not for a foreign MAIL FROM (550 5.7.64 at RCPT)', async () => {
    expect(dataReply(await send('127.0.0.10', 'app@contoso.com', 'someone@partner.example'))).toMatch(/^250 2\.6\.0/);
    const bounce = await send('127.0.0.10', '<>', 'someone@partner.example');
    expect(bounce.exchanges.find((x) => x.command.startsWith('MAIL FROM'))?.command).toBe('MAIL FROM:<>'); // swaks sends the null sender as it is
    expect(dataReply(bounce)).toMatch(/^250 2\.6\.0/);
    expect(replyTo(await send('127.0.0.10', 'spam@random.example', 'victim@gmail.example'), 'RCPT TO')).toBe('550 5.7.64 TenantAttribution; Relay Access Denied');
  });
  it('relayAnySenderDomain lifts it for the connector that says so', async () => {
    expect(dataReply(await send('127.0.0.12', 'noreply@saas.example', 'someone@partner.example'))).toMatch(/^250 2\.6\.0/);
  });
});
