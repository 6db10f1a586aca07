// The message trace (SPEC §10) of a running gateway: `connector-gateway trace` and the admin
// HTTP's /trace answer "did the mail from X reach Y, through which connector, over TLS?".
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { makePki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { startSink, type Sink } from '../helpers/sink.js';

const ONPREM = '127.0.0.70';
let dir: string;
let gw: RunningGateway;
let file: string;
let sink: Sink;
const ids: Record<string, string> = {};

function send(to: string, messageId: string): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw.port, localAddress: ONPREM, tls: { rejectUnauthorized: false } } as never);
  return t.sendMail({ from: 'app@contoso.com', to, subject: 'trace', text: 'x', messageId }).then((i) => i.response.split(' ').pop()!);
}

beforeAll(async () => {
  dir = tmpDir('trace');
  const pki = makePki(path.join(dir, 'pki'));
  sink = await startSink();
  file = writePolicy(dir, {
    gateway: testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] }, admin: { address: '127.0.0.1', port: 0 } }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: [ONPREM] }],
    outboundConnectors: [
      { name: 'To Partner', connectorType: 'partner', recipientDomains: ['partner.test'], smartHosts: [`[127.0.0.1]:${sink.port}`] },
      { name: 'Down', connectorType: 'partner', recipientDomains: ['down.test'], smartHosts: ['[127.0.0.1]:9'] },
    ],
  });
  gw = await startGateway(file);
  ids.ok = await send('bob@partner.test', '<trace-ok@contoso.com>');
  ids.down = await send('carol@down.test', '<trace-down@contoso.com>');
  await gw.waitFor((e) => e.event === 'delivered' && e.qid === ids.ok);
  await gw.waitFor((e) => e.event === 'deferred' && e.qid === ids.down);
  await new Promise((r) => setTimeout(r, 600)); // the store writes every 250 ms
});
afterAll(async () => {
  await gw?.stop();
  await sink?.close();
});

describe('message trace', () => {
  it('trace --sender: one line per message, with status, recipients, connector and TLS', async () => {
    const r = await runCli(['trace', '--sender', 'app@contoso.com', '--config', file], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${ids.ok}  delivered  <app@contoso.com> → bob@partner.test \\(delivered\\)  via OnPrem, TLSv1\\.3  <trace-ok@contoso.com>`));
    expect(r.stdout).toMatch(new RegExp(`${ids.down}  deferred .* carol@down.test \\(deferred\\)`));
    expect(r.stdout).toContain('2 message(s)');
  });
  it('trace --queue-id: the timeline; --recipient, --message-id and --status find it; --json for scripts', async () => {
    const t = await runCli(['trace', '--queue-id', ids.ok!, '--config', file], dir);
    expect(t.stdout).toMatch(/ queued /);
    expect(t.stdout).toMatch(/ delivered bob@partner\.test  connector=To Partner .*250/);
    const j = JSON.parse((await runCli(['trace', '--recipient', 'carol@down.test', '--json', '--config', file], dir)).stdout);
    expect(j).toHaveLength(1);
    expect(j[0]).toMatchObject({ qid: ids.down, status: 'deferred', recipients: [{ address: 'carol@down.test', status: 'deferred', detail: expect.stringMatching(/^4\.4\.316 /) }] });
    expect((await runCli(['trace', '--message-id', 'trace-ok@contoso.com', '--config', file], dir)).stdout).toContain(ids.ok!);
    expect((await runCli(['trace', '--status', 'deferred', '--since', '1h', '--config', file], dir)).stdout).not.toContain(ids.ok!);
  });
  it('the admin HTTP serves the same search as JSON; bad words are refused', async () => {
    const port = gw.events('admin-listening')[0]!.port as number;
    const res = await fetch(`http://127.0.0.1:${port}/trace?recipient=bob@partner.test`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([expect.objectContaining({ qid: ids.ok, status: 'delivered', connector: 'OnPrem' })]);
    expect((await fetch(`http://127.0.0.1:${port}/trace?status=lost`)).status).toBe(400);
    expect((await runCli(['trace', '--since', 'yesterdayish', '--config', file], dir)).code).toBe(2);
  });
  it('a message deleted by the operator is traced as deleted', async () => {
    expect((await runCli(['queue', 'delete', ids.down!, '--config', file], dir)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 600));
    const j = JSON.parse((await runCli(['trace', '--queue-id', ids.down!, '--json', '--config', file], dir)).stdout);
    expect(j.status).toBe('deleted');
    expect(j.timeline.map((e: { event: string }) => e.event)).toContain('deleted');
  });
});
