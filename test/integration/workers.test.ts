// SMTP worker processes (gateway.workers, node:cluster): they share the listeners; the first
// process counts for them, so that limits are exact whichever worker a client lands on; metrics
// are summed; a reload reaches every worker before it is announced; a worker that dies is
// replaced; SIGTERM stops them all; kill -9 of the first process loses nothing acknowledged.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type TestPki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { RawSmtp } from '../helpers/raw.js';
import { children, until } from '../helpers/wait.js';

let dir: string;
let pki: TestPki;
let file: string;
let gw: RunningGateway;
let adminPort: number;

function policy(refuse = false) {
  return {
    gateway: testGateway(dir, pki, {
      workers: 2,
      queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] },
      // Exact counting across workers: no connections held back for listed clients here.
      limits: { maxConnectionsPerIp: 3, maxMessagesPerMinutePerIp: 4, maxConnections: 8, reservedConnections: 0 },
      admin: { address: '127.0.0.1', port: 0 },
    }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: refuse ? [{ name: 'Closed', connectorType: 'partner', senderDomains: ['example.org'], senderIPAddresses: ['192.0.2.1'], restrictDomainsToIPAddresses: true }] : [],
    outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'] }],
  };
}

async function message(from: string, n: number): Promise<string> {
  const { c, greeting } = await RawSmtp.connect(gw.port, { localAddress: from });
  try {
    if (!greeting.startsWith('220')) return greeting;
    await c.cmd('EHLO workers.example');
    const mail = await c.cmd('MAIL FROM:<a@example.org>');
    if (!mail.startsWith('250')) return mail;
    await c.cmd(`RCPT TO:<u${n}@contoso.com>`);
    return await c.data(`Subject: ${n}\r\nMessage-ID: <w${n}@example.org>\r\n\r\nbody\r\n.\r\n`);
  } finally {
    c.close();
  }
}

async function scrape(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
}
const sample = (text: string, re: RegExp): number => text.split('\n').filter((l) => re.test(l)).reduce((s, l) => s + Number(l.split(' ').pop()), 0);

beforeAll(async () => {
  dir = tmpDir('workers');
  pki = makePki(path.join(dir, 'pki'));
  file = writePolicy(dir, policy());
  gw = await startGateway(file);
  adminPort = (await gw.waitFor((e) => e.event === 'admin-listening')).port as number;
});
afterAll(async () => {
  await gw?.stop();
});

describe('SMTP worker processes', () => {
  it('two workers share the listener and both take sessions', async () => {
    expect(children(gw.proc.pid!)).toHaveLength(2);
    expect(gw.events('started')[0]!.workers).toBe(2);
    const seen = new Set<unknown>();
    for (let round = 0; round < 20 && seen.size < 2; round++) {
      // Three at once (the per-IP limit), from different addresses: the workers compete to accept.
      const opened = await Promise.all([1, 2, 3].map((k) => RawSmtp.connect(gw.port, { localAddress: `127.0.1.${k}` })));
      await new Promise((r) => setTimeout(r, 50));
      for (const { c } of opened) c.close();
      for (const e of gw.events('connect')) seen.add(e.worker);
    }
    expect([...seen].sort()).toEqual([1, 2]);
  });

  it('connections per IP, messages per minute and connections in all are counted across the workers', async () => {
    const held = await Promise.all([1, 2, 3].map(() => RawSmtp.connect(gw.port, { localAddress: '127.0.2.1' })));
    expect(held.map((h) => h.greeting.slice(0, 3))).toEqual(['220', '220', '220']);
    const fourth = await RawSmtp.connect(gw.port, { localAddress: '127.0.2.1' });
    expect(fourth.greeting).toMatch(/^451 4\.7\.500/);
    fourth.c.close();
    await new Promise((r) => setTimeout(r, 300)); // its close is counted
    // Eight in all: three held, five more from other addresses; the ninth is refused.
    const others = await Promise.all([2, 3, 4, 5, 6].map((k) => RawSmtp.connect(gw.port, { localAddress: `127.0.2.${k}` })));
    expect(others.map((o) => o.greeting.slice(0, 3))).toEqual(['220', '220', '220', '220', '220']);
    const ninth = await RawSmtp.connect(gw.port, { localAddress: '127.0.2.9' });
    expect(ninth.greeting).toMatch(/^421 .*Too many connected clients/); // ours (4.7.0), or smtp-server's when all eight are on one worker
    ninth.c.close();
    for (const h of [...held, ...others]) h.c.close();
    await new Promise((r) => setTimeout(r, 300));
    // Messages per minute: the fifth from one IP is refused, whichever worker takes it.
    const replies: string[] = [];
    for (let i = 0; i < 5; i++) replies.push(await message('127.0.2.20', i));
    expect(replies.slice(0, 4).every((r) => r.startsWith('250'))).toBe(true);
    expect(replies[4]).toMatch(/^451 4\.7\.500/);
  });

  it('metrics are the sum over the workers', async () => {
    const text = await scrape();
    expect(sample(text, /^gateway_sessions_total\{/)).toBe(gw.events('connect').length);
    expect(sample(text, /^gateway_messages_accepted_total\{/)).toBe(gw.events('queued').length);
    expect(sample(text, /^gateway_build_info\{/)).toBe(1);
    expect(sample(text, /^gateway_queue_messages /)).toBe(gw.events('queued').length);
  });

  it('a reload reaches every worker before it is announced', async () => {
    fs.writeFileSync(file, fs.readFileSync(writePolicy(dir, policy(true), 'next.yaml')));
    await gw.waitFor((e) => e.event === 'reloaded', 10_000);
    for (let i = 0; i < 6; i++) expect(await message(`127.0.3.${i + 1}`, 100 + i)).toMatch(/^550 5\.7\.51/);
    fs.writeFileSync(file, fs.readFileSync(writePolicy(dir, policy(false), 'back.yaml')));
    await until(() => gw.events('reloaded').length >= 2, 10_000, 'the second reload');
    expect(await message('127.0.3.10', 110)).toMatch(/^250/);
  });

  it('a worker that dies is replaced, and sessions go on', async () => {
    const [victim] = children(gw.proc.pid!);
    process.kill(victim!, 'SIGKILL');
    await gw.waitFor((e) => e.event === 'worker-exited', 5_000);
    await until(() => children(gw.proc.pid!).length === 2 && !children(gw.proc.pid!).includes(victim!), 10_000, 'a replacement worker');
    for (let i = 0; i < 3; i++) expect(await message(`127.0.4.${i + 1}`, 200 + i)).toMatch(/^250/);
  });

  it('kill -9 of the first process: the workers exit at once; nothing acknowledged is lost', async () => {
    const workers = children(gw.proc.pid!);
    const acked: string[] = [];
    let stop = false;
    const load = Promise.all(
      Array.from({ length: 4 }, async (_, k) => {
        for (let i = 0; !stop; i++) {
          const r = await message(`127.0.5.${k + 1}`, 1000 + k * 100 + i).catch(() => 'broken');
          if (r.startsWith('250')) acked.push(r.split(' ').pop()!);
          if (i >= 3) await new Promise((res) => setTimeout(res, 20)); // within the per-IP message rate
        }
      }),
    );
    await until(() => acked.length >= 8, 10_000, 'acknowledged messages');
    await gw.kill9();
    await until(() => workers.every((p) => !fs.existsSync(`/proc/${p}`)), 5_000, 'the workers to exit');
    stop = true;
    await load;
    gw = await startGateway(file);
    const list = (await runCli(['queue', 'list', '--config', file], dir)).stdout;
    for (const id of acked) expect(list).toContain(id);
  });

  it('SIGTERM stops every process', async () => {
    const workers = children(gw.proc.pid!);
    expect(workers).toHaveLength(2);
    await gw.stop();
    await until(() => workers.every((p) => !fs.existsSync(`/proc/${p}`)), 5_000, 'the workers to exit');
    expect(gw.events('stopped')).toHaveLength(1);
  });
});
