// The message trace (SPEC §10) of a running gateway: `connector-gateway trace` and the admin
// HTTP's /trace answer "did the mail from X reach Y, through which connector, over TLS?".
import fs from 'node:fs';
import http from 'node:http';
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
const TOKEN = 'trace-token-0123456789abcdef';

/** A GET with the Host header we choose (fetch will not let a browser's forged Host be written). */
function get(port: number, pathAndQuery: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: pathAndQuery, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

function send(to: string, messageId: string): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw.port, localAddress: ONPREM, tls: { rejectUnauthorized: false } } as never);
  return t.sendMail({ from: 'app@contoso.com', to, subject: 'trace', text: 'x', messageId }).then((i) => i.response.split(' ').pop()!);
}

beforeAll(async () => {
  dir = tmpDir('trace');
  const pki = makePki(path.join(dir, 'pki'));
  sink = await startSink();
  fs.writeFileSync(path.join(dir, 'admin.token'), `${TOKEN}\n`);
  file = writePolicy(dir, {
    gateway: testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] }, admin: { address: '127.0.0.1', port: 0, tokenFile: path.join(dir, 'admin.token') } }),
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
  it('the admin HTTP serves the same search as JSON to the bearer of the token; bad words are refused', async () => {
    const port = gw.events('admin-listening')[0]!.port as number;
    const auth = { authorization: `Bearer ${TOKEN}` };
    const res = await fetch(`http://127.0.0.1:${port}/trace?recipient=bob@partner.test`, { headers: auth });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([expect.objectContaining({ qid: ids.ok, status: 'delivered', connector: 'OnPrem' })]);
    expect((await fetch(`http://127.0.0.1:${port}/trace?status=lost`, { headers: auth })).status).toBe(400);
    expect((await runCli(['trace', '--since', 'yesterdayish', '--config', file], dir)).code).toBe(2);
  });
  it('a message deleted by the operator is traced as deleted', async () => {
    expect((await runCli(['queue', 'delete', ids.down!, '--config', file], dir)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 600));
    const j = JSON.parse((await runCli(['trace', '--queue-id', ids.down!, '--json', '--config', file], dir)).stdout);
    expect(j.status).toBe('deleted');
    expect(j.recipients).toEqual([expect.objectContaining({ address: 'carol@down.test', status: 'deleted' })]); // not '(deferred)' (issue 21)
    expect((await runCli(['trace', '--queue-id', ids.down!, '--config', file], dir)).stdout).toContain('carol@down.test (deleted)');
    expect(j.timeline.map((e: { event: string }) => e.event)).toContain('deleted');
  });

  it('/trace without the token, with another token, or to a Host that is not ours is refused (issue 20, item 7)', async () => {
    const port = gw.events('admin-listening')[0]!.port as number;
    const none = await get(port, '/trace?recipient=bob@partner.test', {});
    expect(none.status).toBe(401);
    expect(none.body).not.toContain('bob@partner.test');
    expect((await get(port, '/trace', { authorization: 'Bearer wrong-token-0123456789abcd' })).status).toBe(401);
    // DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 sends its own Host.
    const rebound = await get(port, '/trace', { host: `evil.example:${port}`, authorization: `Bearer ${TOKEN}` });
    expect(rebound.status).toBe(421);
    expect((await get(port, '/trace', { host: `mx1.contoso.test:${port}`, authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await get(port, '/trace', { host: `localhost:${port}`, authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await get(port, '/metrics', {})).status).toBe(200); // counts, not addresses: open
  });
  it('the queue and the trace are the owner\'s alone, whatever the umask (0700 directories, 0600 files)', async () => {
    const waiting = await send('dave@down.test', '<trace-modes@contoso.com>');
    await gw.waitFor((e) => (e.event === 'deferred' || e.event === 'parked') && e.qid === waiting); // the dead Down destination parks it
    const mode = (p: string) => fs.statSync(p).mode & 0o777;
    const q = path.join(dir, 'queue');
    expect(mode(q)).toBe(0o700);
    expect(mode(path.join(q, '.trace'))).toBe(0o700);
    expect(mode(path.join(q, '.trace', 'trace.sqlite'))).toBe(0o600);
    const files = fs.readdirSync(q).filter((n) => n.endsWith('.eml') || n.endsWith('.json'));
    expect(files).toContain(`${waiting}.json`); // dave's message waits in the queue
    for (const f of files) expect(mode(path.join(q, f)), f).toBe(0o600);
  });
});

