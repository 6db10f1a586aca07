// SPEC §5: 250 only after fsync; kill -9 loses nothing acknowledged; disk errors answer 451.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { makePki, type TestPki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { swaks, dataReply } from '../helpers/swaks.js';
import { RawSmtp } from '../helpers/raw.js';

let dir: string;
let pki: TestPki;
let file: string;
let queueDir: string;
let gw: RunningGateway | null = null;

beforeAll(() => {
  dir = tmpDir('durable');
  pki = makePki(path.join(dir, 'pki'));
  queueDir = path.join(dir, 'queue');
  file = writePolicy(dir, {
    gateway: testGateway(dir, pki),
    acceptedDomains: [{ domain: 'contoso.com' }],
    outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'] }],
  });
});

afterAll(async () => {
  await gw?.stop();
});

describe('durability', () => {
  it('kill -9 right after a 250: the message is in the queue after restart', async () => {
    gw = await startGateway(file);
    const r = await swaks(['--server', `127.0.0.1:${gw.port}`, '--from', 'a@example.org', '--to', 'user@contoso.com', '--body', 'durable body']);
    const reply = dataReply(r);
    expect(reply).toMatch(/^250 2\.6\.0 Queued as /);
    await gw.kill9();
    const id = reply.split(' ').pop()!;

    gw = await startGateway(file);
    const recovered = await gw.waitFor((e) => e.event === 'queue-recovered');
    expect(recovered.messages).toBeGreaterThanOrEqual(1);
    const list = await runCli(['queue', 'list', '--config', file], dir);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(id);
    expect(list.stdout).toContain('user@contoso.com');
    expect(fs.readFileSync(path.join(queueDir, `${id}.eml`), 'utf8')).toContain('durable body');
  });

  it('kill -9 in the middle of DATA: nothing acknowledged, the partial file is removed at restart', async () => {
    const { c } = await RawSmtp.connect(gw!.port);
    await c.cmd('EHLO x');
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<user@contoso.com>');
    expect(await c.cmd('DATA')).toMatch(/^354/);
    c.write('Subject: half\r\n\r\npartial line\r\n');
    await new Promise((r) => setTimeout(r, 200));
    const before = fs.readdirSync(queueDir);
    expect(before.filter((n) => n.endsWith('.eml')).length).toBe(before.filter((n) => n.endsWith('.json')).length + 1);
    await gw!.kill9();
    c.close();
    gw = await startGateway(file);
    const after = fs.readdirSync(queueDir);
    expect(after.filter((n) => n.endsWith('.eml')).length).toBe(after.filter((n) => n.endsWith('.json')).length);
    const recovered = await gw.waitFor((e) => e.event === 'queue-recovered');
    expect((recovered.removed as string[]).length).toBe(1);
  });

  it('an unwritable queue answers 451 4.3.0, never 250, and recovers when it is back', async () => {
    fs.renameSync(queueDir, queueDir + '.away');
    fs.writeFileSync(queueDir, 'not a directory');
    try {
      const r = await swaks(['--server', `127.0.0.1:${gw!.port}`, '--from', 'a@example.org', '--to', 'user@contoso.com']);
      expect(dataReply(r)).toMatch(/^451 4\.3\.0 /);
      expect(await gw!.logged('refusal', (e) => e.rule === 'spool')).toMatchObject({ rule: 'spool' });
    } finally {
      fs.rmSync(queueDir);
      fs.renameSync(queueDir + '.away', queueDir);
    }
    const r = await swaks(['--server', `127.0.0.1:${gw!.port}`, '--from', 'a@example.org', '--to', 'user@contoso.com']);
    expect(dataReply(r)).toMatch(/^250 2\.6\.0/);
  });
});

describe('seed example 4: all senders must come from the filtering service', () => {
  let g4: RunningGateway;
  beforeAll(async () => {
    const d = tmpDir('seed4');
    g4 = await startGateway(
      writePolicy(d, {
        gateway: testGateway(d, pki),
        acceptedDomains: [{ domain: 'contoso.com' }],
        inboundConnectors: [{ name: 'Filtering service', connectorType: 'partner', senderDomains: ['*'], senderIPAddresses: ['127.0.0.3'], restrictDomainsToIPAddresses: true }],
        outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'] }],
      }),
    );
  });
  afterAll(() => g4.stop());
  it('any sender from outside the range is refused 550 5.7.51, from inside accepted', async () => {
    for (const from of ['a@example.org', 'b@contoso.com']) {
      const r = await swaks(['--server', `127.0.0.1:${g4.port}`, '--local-interface', '127.0.0.6', '--from', from, '--to', 'user@contoso.com']);
      expect(r.exchanges.find((e) => e.command.startsWith('MAIL FROM'))!.reply).toMatch(/^550 5\.7\.51 .*Filtering service/);
    }
    const ok = await swaks(['--server', `127.0.0.1:${g4.port}`, '--local-interface', '127.0.0.3', '--from', 'a@example.org', '--to', 'user@contoso.com']);
    expect(dataReply(ok)).toMatch(/^250 2\.6\.0/);
  });
});
