// The queue commands act through the running daemon (SPEC §6): a message deleted while it is
// being delivered is never written back by the attempt; hold/release survive the attempt in
// flight and retry; retry does not rewrite envelopes; a
// second gateway on the same queue is refused. Without a daemon the commands act on the files.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { makePki, type TestPki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { until } from '../helpers/wait.js';

let dir: string;
let pki: TestPki;
let gw: RunningGateway;
let file: string;
let stall: net.Server;
const held: net.Socket[] = [];
let connections = 0;

/** A next hop that accepts the connection and says nothing for 3 s, then closes: an attempt in flight. */
async function stallingHop(): Promise<net.Server> {
  const s = net.createServer((socket) => {
    connections++;
    held.push(socket);
    socket.on('error', () => {});
    setTimeout(() => socket.destroy(), 3000);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return s;
}

function send(to: string): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw.port, localAddress: '127.0.0.11', tls: { rejectUnauthorized: false } } as never);
  return t.sendMail({ from: 'app@contoso.com', to, subject: 'control', text: 'x' }).then((i) => i.response.split(' ').pop()!);
}

beforeAll(async () => {
  dir = tmpDir('control');
  pki = makePki(path.join(dir, 'pki'));
  stall = await stallingHop();
  file = writePolicy(dir, {
    gateway: testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] } }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.11'] }],
    outboundConnectors: [{ name: 'Stalling', connectorType: 'partner', recipientDomains: ['stall.test'], smartHosts: [`[127.0.0.1]:${(stall.address() as net.AddressInfo).port}`] }],
  });
  gw = await startGateway(file);
});
afterAll(async () => {
  await gw?.stop();
  for (const s of held) s.destroy();
  stall?.close();
});

/** The stalling hop's failures make its destination dead: `queue retry` (postqueue -f) forgets that, so the next message is tried. */
async function forgetDeadDestinations(): Promise<void> {
  expect((await runCli(['queue', 'retry', '--config', file], dir)).code).toBe(0);
}

describe('queue commands through the daemon', () => {
  it("the daemon refuses an id that is not a queue id: '../victim' deletes nothing outside the queue", async () => {
    fs.writeFileSync(path.join(dir, 'victim.json'), '{}');
    fs.writeFileSync(path.join(dir, 'victim.eml'), 'x');
    const reply = await new Promise<string>((resolve, reject) => {
      const c = net.connect(path.join(dir, 'queue', '.control.sock'));
      let buf = '';
      c.on('data', (d) => (buf += d.toString()));
      c.on('end', () => resolve(buf));
      c.on('error', reject);
      c.write('{"op":"delete","id":"../victim"}\n');
    });
    expect(JSON.parse(reply)).toEqual({ ok: false, error: 'bad request' });
    expect(fs.existsSync(path.join(dir, 'victim.json'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'victim.eml'))).toBe(true);
  });

  it('delete during a delivery attempt: the message does not come back when the attempt ends', async () => {
    const id = await send('a@stall.test');
    await until(() => connections >= 1, 5_000, 'the attempt to connect');
    const del = await runCli(['queue', 'delete', id, '--config', file], dir);
    expect(del.code).toBe(0);
    expect(del.stdout).toContain(`deleted ${id}`);
    // The attempt ends (the hop closes after 3 s) and is recorded; the files are gone for good.
    await gw.waitFor((e) => e.event === 'deferred' && e.qid === id, 10_000);
    await until(() => !fs.existsSync(path.join(dir, 'queue', `${id}.json`)), 3_000, 'the envelope to be removed');
    await new Promise((r) => setTimeout(r, 500));
    expect(fs.existsSync(path.join(dir, 'queue', `${id}.json`))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'queue', `${id}.eml`))).toBe(false);
    expect((await runCli(['queue', 'list', '--config', file], dir)).stdout).not.toContain(id);
  });

  it('retry makes a waiting message due at once without rewriting its envelope; delete of a waiting one is immediate', async () => {
    await forgetDeadDestinations();
    const id = await send('b@stall.test');
    await gw.waitFor((e) => e.event === 'deferred' && e.qid === id, 10_000);
    const envFile = path.join(dir, 'queue', `${id}.json`);
    await until(() => fs.existsSync(envFile) && JSON.parse(fs.readFileSync(envFile, 'utf8')).recipients[0].attempts === 1, 3_000, 'the envelope after the first attempt');
    const before = fs.statSync(envFile).mtimeMs;
    const attempts = connections;
    const retry = await runCli(['queue', 'retry', id, '--config', file], dir);
    expect(retry.stdout).toContain('1 message(s) scheduled for immediate retry');
    await until(() => connections > attempts, 5_000, 'a new attempt after retry');
    expect(fs.statSync(envFile).mtimeMs).toBe(before); // the command wrote nothing
    // postqueue -i: the operator's extra try is not a step of the schedule (issue 21).
    await until(() => gw.events('deferred').filter((e) => e.qid === id).length === 2, 10_000, 'the deferral of the retry');
    expect(gw.events('deferred').filter((e) => e.qid === id).map((e) => e.attempts)).toEqual([1, 1]);
    expect(JSON.parse(fs.readFileSync(envFile, 'utf8')).recipients[0].attempts).toBe(1);
    const del = await runCli(['queue', 'delete', id, '--config', file], dir);
    expect(del.code).toBe(0);
    expect(fs.existsSync(envFile)).toBe(false);
    expect((await runCli(['queue', 'delete', id, '--config', file], dir)).code).toBe(1); // no such message any more
    expect((await runCli(['queue', 'retry', 'NOSUCHID0000', '--config', file], dir)).code).toBe(1);
  });

  it('hold --destination during an attempt holds what is left when it ends; retry leaves it; release makes it due at once', async () => {
    await forgetDeadDestinations();
    const before = connections;
    const id = await send('h@stall.test');
    await until(() => connections > before, 5_000, 'the attempt to connect');
    expect((await runCli(['queue', 'hold', '--destination', 'elsewhere.test', '--config', file], dir)).stdout).toContain('0 message(s) put on hold');
    const hold = await runCli(['queue', 'hold', '--destination', 'STALL.test', '--config', file], dir); // in any case, as domains are
    expect(hold.code).toBe(0);
    expect(hold.stdout).toContain('1 message(s) put on hold');
    await gw.waitFor((e) => e.event === 'deferred' && e.qid === id, 10_000);
    const envFile = path.join(dir, 'queue', `${id}.json`);
    await until(() => JSON.parse(fs.readFileSync(envFile, 'utf8')).held === true, 3_000, 'the hold in the envelope');
    expect((await runCli(['queue', 'list', '--config', file], dir)).stdout).toMatch(new RegExp(`${id}! .*\\(held\\)`));
    const attempts = connections;
    const retry = await runCli(['queue', 'retry', id, '--config', file], dir);
    expect(retry.code).toBe(1);
    expect(retry.stderr).toContain(`${id} is on hold`);
    await new Promise((r) => setTimeout(r, 500));
    expect(connections).toBe(attempts); // not attempted while held
    const release = await runCli(['queue', 'release', id, '--config', file], dir);
    expect(release.stdout).toContain('1 message(s) released');
    // Due at once — and its destination failed the last attempt, so it waits without a connection
    // until the operator's retry (or the destination's probe) tries it.
    await gw.waitFor((e) => e.event === 'parked' && e.qid === id, 5_000);
    expect(connections).toBe(attempts);
    expect(JSON.parse(fs.readFileSync(envFile, 'utf8')).held).toBeUndefined();
    expect((await runCli(['queue', 'retry', id, '--config', file], dir)).code).toBe(0);
    await until(() => connections > attempts, 5_000, 'an attempt after retry');
    expect((await runCli(['queue', 'release', id, '--config', file], dir)).code).toBe(1); // not on hold any more
    expect((await runCli(['queue', 'hold', '--config', file], dir)).code).toBe(2); // neither an id nor --all
    expect((await runCli(['queue', 'hold', id, '--all', '--config', file], dir)).code).toBe(2); // both
    // The operator's retry is an extra try: its deferral does not count as the second attempt.
    await until(() => gw.events('deferred').filter((e) => e.qid === id).length === 2, 10_000, 'the deferral of the retry');
    expect(gw.events('deferred').filter((e) => e.qid === id).map((e) => e.attempts)).toEqual([1, 1]);
    expect((await runCli(['queue', 'delete', id, '--config', file], dir)).code).toBe(0);
  });

  it('a second gateway on the same queue is refused before it touches the queue', async () => {
    const other = writePolicy(dir, { gateway: testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue') } }) }, 'other.yaml');
    await expect(startGateway(other)).rejects.toThrow(/another gateway is running on the queue/);
  });

  it('without a daemon the commands act on the files; a socket left by a killed daemon is replaced', async () => {
    await forgetDeadDestinations();
    const id = await send('c@stall.test');
    await gw.waitFor((e) => e.event === 'deferred' && e.qid === id, 10_000);
    await gw.kill9();
    expect(fs.existsSync(path.join(dir, 'queue', '.control.sock'))).toBe(true);
    const retry = await runCli(['queue', 'retry', id, '--config', file], dir);
    expect(retry.stdout).toContain('1 message(s) scheduled for immediate retry (no daemon is running: at its next start)');
    // hold and release without a daemon: written in the envelope, read at the next start.
    expect((await runCli(['queue', 'hold', '--destination', 'elsewhere.test', '--config', file], dir)).stdout).toContain('0 message(s) put on hold');
    expect((await runCli(['queue', 'hold', '--all', '--config', file], dir)).stdout).toContain('1 message(s) put on hold');
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'queue', `${id}.json`), 'utf8')).held).toBe(true);
    expect((await runCli(['queue', 'release', id, '--config', file], dir)).stdout).toContain('1 message(s) released');
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'queue', `${id}.json`), 'utf8')).held).toBeUndefined();
    const del = await runCli(['queue', 'delete', id, '--config', file], dir);
    expect(del.stdout).toContain(`deleted ${id}`);
    expect(fs.existsSync(path.join(dir, 'queue', `${id}.json`))).toBe(false);
    gw = await startGateway(file); // the stale socket does not stop a restart
    expect((await runCli(['queue', 'retry', '--config', file], dir)).stdout).toMatch(/message\(s\) scheduled for immediate retry\n/);
  });
});

describe("operators' habits (issue 21)", () => {
  it('queue list says why each recipient waits; queue delete --destination and --all (postsuper -d ALL)', async () => {
    await forgetDeadDestinations();
    const a = await send('w1@stall.test');
    await gw.waitFor((e) => e.event === 'deferred' && e.qid === a, 10_000);
    await until(() => JSON.parse(fs.readFileSync(path.join(dir, 'queue', `${a}.json`), 'utf8')).recipients[0].attempts === 1, 3_000, 'the envelope after the attempt');
    const list = (await runCli(['queue', 'list', '--config', file], dir)).stdout;
    expect(list).toMatch(new RegExp(`${a} .*1/1 pending, next attempt \\S+  w1@stall\\.test\\n +w1@stall\\.test: \\(4\\.\\d\\.\\d+ [^)]*\\), 1 attempt\\(s\\)`));
    const b = await send('w2@stall.test');
    const byDest = await runCli(['queue', 'delete', '--destination', 'STALL.test', '--config', file], dir);
    expect(byDest.code).toBe(0);
    expect(byDest.stdout).toMatch(/^[2-9]\d* message\(s\) deleted\n$/); // a and b (and any earlier stall.test message)
    const after = (await runCli(['queue', 'list', '--config', file], dir)).stdout;
    expect(after).not.toContain(a);
    expect(after).not.toContain(b);
    await send('w3@stall.test');
    const all = await runCli(['queue', 'delete', '--all', '--config', file], dir);
    expect(all.stdout).toMatch(/^[1-9]\d* message\(s\) deleted\n$/);
    expect((await runCli(['queue', 'list', '--config', file], dir)).stdout).toMatch(/^0 message\(s\) in /);
    expect((await runCli(['queue', 'delete', 'ABC', '--all', '--config', file], dir)).code).toBe(2);
  });
});
