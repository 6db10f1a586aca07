// SPEC §12 with the real engines: three gateways sharing their per-IP limits on redis-server and
// one message trace in PostgreSQL (initdb, pg_ctl), each engine stopped and started again
// inside the tests for the outage cases.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type TestPki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { postgresEngine, redisEngine, type Engine } from '../helpers/engines.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/raw.js';
import { freePort, until } from '../helpers/wait.js';
import { startHaproxy } from '../helpers/haproxy.js';

let dir: string;
const TOKEN = 'cluster-trace-token-0123456789';
let pki: TestPki;
let redis: Engine;
let pgsql: Engine & { remove: () => Promise<void> };
let sink: Sink;
/** The next hop of dead.test: a server that drops every connection (counted), later a sink. */
let deadPort: number;
let drops = 0;
let dropper: net.Server | null = null;
const nodes: Array<{ name: string; file: string; gw: RunningGateway; admin: number }> = [];

async function startNode(name: string, workers: number): Promise<void> {
  const admin = await freePort();
  const ndir = path.join(dir, name);
  const file = writePolicy(dir, {
    gateway: testGateway(ndir, pki, {
      workers,
      // mx: clients straight to the node; lb: through HAProxy (PROXY v2 from 127.0.0.1 only).
      listeners: [
        { name: 'mx', address: '127.0.0.1', port: 0 },
        { name: 'lb', address: '127.0.0.1', port: 0, proxyProtocol: ['127.0.0.1/32'] },
      ],
      limits: { maxConnectionsPerIp: 4, maxMessagesPerMinutePerIp: 6 },
      queue: { directory: path.join(ndir, 'queue'), retryIntervals: ['3s'] },
      admin: { address: '127.0.0.1', port: admin, tokenFile: path.join(dir, 'admin.token') },
      cluster: { node: name, redis: redis.url, traceDatabase: pgsql.url },
    }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    // 127.0.0.1: the other nodes (what a drained node hands over comes from there).
    inboundConnectors: [{ name: 'Our servers', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.56', '127.0.0.1'] }],
    outboundConnectors: [
      { name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [`[127.0.0.1]:${sink.port}`] },
      { name: 'Dead partner', connectorType: 'partner', recipientDomains: ['dead.test'], smartHosts: [`[127.0.0.1]:${deadPort}`] },
    ],
  }, `${name}.yaml`);
  nodes.push({ name, file, gw: await startGateway(file), admin });
}

const node = (name: string) => nodes.find((n) => n.name === name)!;

async function open(name: string, ip: string): Promise<{ c: RawSmtp; greeting: string }> {
  return RawSmtp.connect(node(name).gw.port, { localAddress: ip });
}

async function sendOn(name: string, ip: string, to: string, subject: string, from = 'someone@example.test'): Promise<string> {
  const { c, greeting } = await open(name, ip);
  try {
    if (!greeting.startsWith('220')) return greeting;
    await c.cmd('EHLO client.test');
    const mail = await c.cmd(`MAIL FROM:<${from}>`);
    if (!mail.startsWith('250')) return mail;
    await c.cmd(`RCPT TO:<${to}>`);
    return await c.data(`Subject: ${subject}\r\n\r\nhello\r\n.\r\n`);
  } finally {
    c.close();
  }
}

async function metric(name: string, line: RegExp): Promise<string | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${node(name).admin}/metrics`)).text();
  return text.split('\n').find((l) => line.test(l));
}

beforeAll(async () => {
  dir = tmpDir('cluster');
  pki = makePki(path.join(dir, 'pki'));
  fs.writeFileSync(path.join(dir, 'admin.token'), `${TOKEN}\n`, { mode: 0o600 });
  redis = await redisEngine();
  pgsql = await postgresEngine();
  sink = await startSink({ noStartTls: true, host: '127.0.0.1' });
  deadPort = await freePort();
  dropper = net.createServer((s) => (drops++, s.destroy()));
  await new Promise<void>((r) => dropper!.listen(deadPort, '127.0.0.1', () => r()));
  await startNode('mx1', 0);
  await startNode('mx2', 1); // with a worker process: its counts go through the first process to Redis
  await startNode('mx3', 0);
}, 90_000);

afterAll(async () => {
  for (const n of nodes) await n.gw.stop().catch(() => {});
  await sink?.close();
  dropper?.close();
  await redis?.stop();
  await pgsql?.remove();
});

describe('limits across nodes (Redis)', () => {
  it('maxConnectionsPerIp: 4 holds for the cluster: 2 + 2 sessions on two nodes, the fifth on a third is refused', async () => {
    const held = [await open('mx1', '127.0.0.50'), await open('mx1', '127.0.0.50'), await open('mx2', '127.0.0.50'), await open('mx2', '127.0.0.50')];
    expect(held.map((h) => h.greeting.slice(0, 3))).toEqual(['220', '220', '220', '220']);
    const fifth = await open('mx3', '127.0.0.50');
    expect(fifth.greeting).toMatch(/^451 4\.7\.500 /);
    fifth.c.close();
    // One ends: its slot is free on any node.
    held.pop()!.c.close();
    let again: { c: RawSmtp; greeting: string } | null = null;
    for (let i = 0; i < 20; i++) {
      again = await open('mx3', '127.0.0.50');
      if (again.greeting.startsWith('220')) break;
      again.c.close();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(again!.greeting).toMatch(/^220 /);
    for (const h of [...held, again!]) h.c.close();
  });

  it('maxMessagesPerMinutePerIp: 6 for the cluster: 3 messages on one node and 3 on another, the seventh refused', async () => {
    for (let i = 0; i < 3; i++) expect(await sendOn('mx1', '127.0.0.51', 'user@contoso.com', `rate ${i}`)).toMatch(/^250 /);
    for (let i = 3; i < 6; i++) expect(await sendOn('mx3', '127.0.0.51', 'user@contoso.com', `rate ${i}`)).toMatch(/^250 /);
    expect(await sendOn('mx2', '127.0.0.51', 'user@contoso.com', 'rate 6')).toMatch(/^451 4\.7\.500 /);
  });

  it('a node killed with -9 holds no slots: 10 s after its heartbeat stops, the others count without it', async () => {
    await startNode('mx4', 0);
    const held = [await open('mx4', '127.0.0.52'), await open('mx4', '127.0.0.52'), await open('mx4', '127.0.0.52'), await open('mx4', '127.0.0.52')];
    expect(held.every((h) => h.greeting.startsWith('220'))).toBe(true);
    const refused = await open('mx1', '127.0.0.52');
    expect(refused.greeting).toMatch(/^451 /);
    refused.c.close();
    await node('mx4').gw.kill9();
    for (const h of held) h.c.close();
    const started = Date.now();
    let ok = false;
    while (!ok && Date.now() - started < 20_000) {
      const s = await open('mx1', '127.0.0.52');
      ok = s.greeting.startsWith('220');
      s.c.close();
      if (!ok) await new Promise((r) => setTimeout(r, 500));
    }
    expect(ok).toBe(true);
  }, 40_000);
});

describe('limits across nodes behind HAProxy (PROXY v2)', () => {
  it('maxConnectionsPerIp: 4 for the client whichever nodes round robin gives it: the fifth session is refused', async () => {
    const lb = await startHaproxy(dir, ['mx1', 'mx2', 'mx3'].map((n) => node(n).gw.ports.lb!));
    try {
      const viaLb = (): Promise<{ c: RawSmtp; greeting: string }> => RawSmtp.connect(lb.port, { localAddress: '127.0.0.59' });
      const held = [await viaLb(), await viaLb(), await viaLb(), await viaLb()];
      expect(held.map((h) => h.greeting.slice(0, 3))).toEqual(['220', '220', '220', '220']);
      const nodesUsed = (): number => ['mx1', 'mx2', 'mx3'].filter((n) => node(n).gw.events('connect').some((e) => e.ip === '127.0.0.59')).length;
      await until(() => nodesUsed() >= 2, 5_000, 'sessions spread over the nodes, each seeing the client IP');
      const fifth = await viaLb();
      expect(fifth.greeting).toMatch(/^451 4\.7\.500 /);
      for (const h of [...held, fifth]) h.c.close();
    } finally {
      lb.proc.kill('SIGTERM');
    }
  });
});

describe('dead destinations across nodes (Redis)', () => {
  it('found dead by one node: parked on the others without a connection; one probe revives it everywhere', async () => {
    const first = await sendOn('mx1', '127.0.0.56', 'a@dead.test', 'to the dead', 'app@contoso.com');
    expect(first).toMatch(/^250 /);
    await node('mx1').gw.logged('destination-dead', (e) => e.destination === 'connector:Dead partner', 10_000);
    await node('mx3').gw.logged('destination-dead', (e) => e.foundBy === 'mx1', 10_000);
    const second = await sendOn('mx3', '127.0.0.56', 'b@dead.test', 'also to the dead', 'app@contoso.com');
    const qid = second.split(' ').pop()!;
    await node('mx3').gw.logged('parked', (e) => e.qid === qid, 10_000);
    expect(node('mx3').gw.events('deferred').filter((e) => e.qid === qid)).toEqual([]); // parked without an attempt
    expect(drops).toBeGreaterThan(0);
    // Both nodes hold a message for it; the cluster probes once per interval (3 s), not each node.
    const windowStart = drops;
    await new Promise((r) => setTimeout(r, 9_500));
    expect(drops - windowStart).toBeLessThanOrEqual(4); // ≈ 3 intervals; two nodes on their own would make 6
    // The next hop comes back: the cluster's probe finds it, and both nodes deliver what they hold.
    await new Promise<void>((r) => dropper!.close(() => r()));
    dropper = null;
    const back = await startSink({ noStartTls: true, host: '127.0.0.1', port: deadPort });
    try {
      await back.waitFor(2, 20_000);
      expect(back.messages.flatMap((m) => m.to).sort()).toEqual(['a@dead.test', 'b@dead.test']);
      const alive = [...node('mx1').gw.events('destination-alive'), ...node('mx3').gw.events('destination-alive')];
      expect(alive.some((e) => e.foundBy)).toBe(true); // one node learned it from the other
    } finally {
      await back.close();
    }
  }, 50_000);
});

describe('one trace (PostgreSQL)', () => {
  it('a message accepted by one node is found by `trace` on another, with its node and timeline', async () => {
    const reply = await sendOn('mx2', '127.0.0.53', 'traced@contoso.com', 'one trace');
    expect(reply).toMatch(/^250 2\.6\.0 Queued as /);
    const qid = reply.split(' ').pop()!;
    await node('mx2').gw.logged('delivered', (e) => e.qid === qid);
    let out = '';
    for (let i = 0; i < 30 && !(out.includes(qid) && / delivered /.test(out)); i++) {
      out = (await runCli(['trace', '--config', node('mx3').file, '--recipient', 'traced@contoso.com'])).stdout;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(out).toMatch(new RegExp(`${qid}  mx2  delivered `));
    // /trace on a third node answers for the cluster too.
    const res = await fetch(`http://127.0.0.1:${node('mx1').admin}/trace?recipient=traced@contoso.com`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as Array<{ qid: string; node: string }>).find((m) => m.qid === qid)).toMatchObject({ node: 'mx2', status: 'delivered' });
    const timeline = (await runCli(['trace', '--config', node('mx1').file, '--queue-id', qid])).stdout;
    expect(timeline).toMatch(/\[mx2\] queued/);
    expect(timeline).toMatch(/\[mx2\] delivered traced@contoso\.com/);
  });
});

describe('engines down', () => {
  it('Redis unreachable: each node counts alone, logs it once, the gauge says 0, /readyz stays ready; back when Redis is', async () => {
    await redis.stop();
    for (let i = 0; i < 3; i++) expect(await sendOn('mx1', '127.0.0.54', 'user@contoso.com', `redis down ${i}`)).toMatch(/^250 /);
    await node('mx1').gw.logged('engine-down', (e) => e.engine === 'redis');
    expect(node('mx1').gw.events('engine-down').filter((e) => e.engine === 'redis')).toHaveLength(1);
    expect(await metric('mx1', /^gateway_cluster_engine_up\{engine="redis"\}/)).toMatch(/ 0$/);
    expect((await fetch(`http://127.0.0.1:${node('mx1').admin}/readyz`)).status).toBe(200);
    await redis.start();
    await node('mx1').gw.logged('engine-up', (e) => e.engine === 'redis', 15_000);
    expect(await metric('mx1', /^gateway_cluster_engine_up\{engine="redis"\}/)).toMatch(/ 1$/);
  }, 30_000);

  it('PostgreSQL unreachable: mail is accepted, the events wait (journaled) and are written in order when it returns', async () => {
    await pgsql.stop();
    const reply = await sendOn('mx3', '127.0.0.55', 'outage@contoso.com', 'pg down');
    expect(reply).toMatch(/^250 2\.6\.0 /);
    const qid = reply.split(' ').pop()!;
    await node('mx3').gw.logged('delivered', (e) => e.qid === qid);
    await node('mx3').gw.logged('engine-down', (e) => e.engine === 'postgresql');
    await pgsql.start();
    let timeline = '';
    for (let i = 0; i < 40 && !/delivered outage@/.test(timeline); i++) {
      await new Promise((r) => setTimeout(r, 500));
      timeline = (await runCli(['trace', '--config', node('mx1').file, '--queue-id', qid])).stdout;
    }
    const order = timeline.split('\n').filter((l) => /\[mx3\] /.test(l)).map((l) => /\[mx3\] (\S+)/.exec(l)![1]);
    expect(order.indexOf('queued')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('delivered')).toBeGreaterThan(order.indexOf('queued'));
    await node('mx3').gw.logged('engine-up', (e) => e.engine === 'postgresql');
  }, 40_000);
});

describe('drain to another node', () => {
  it("a drained node's messages are all delivered exactly once by the others, and it exits 0", async () => {
    // dead.test is down again: mx1 holds what it accepts for it.
    const subjects = ['drain one', 'drain two', 'drain three'];
    for (const s of subjects) expect(await sendOn('mx1', '127.0.0.56', `${s.replace(/ /g, '-')}@dead.test`, s, 'app@contoso.com')).toMatch(/^250 /);
    await until(() => node('mx1').gw.events('parked').length + node('mx1').gw.events('deferred').filter((e) => String(e.recipient).startsWith('drain-')).length >= 3, 15_000, 'mx1 holding them');
    const r = await runCli(['drain', '--to', `127.0.0.1:${node('mx3').gw.port}`, '--config', node('mx1').file]);
    expect(r.stdout).toMatch(/^3 message\(s\) handed over to 127\.0\.0\.1:\d+, 0 left$/m);
    expect(r.code).toBe(0);
    expect(await node('mx1').gw.exited).toBe(0);
    // The next hop comes back: mx3 delivers them, once each.
    const back = await startSink({ noStartTls: true, host: '127.0.0.1', port: deadPort });
    try {
      await back.waitFor(3, 25_000);
      await new Promise((res) => setTimeout(res, 1_000));
      expect(back.messages.flatMap((m) => m.to).sort()).toEqual(['drain-one@dead.test', 'drain-three@dead.test', 'drain-two@dead.test']);
    } finally {
      await back.close();
    }
  }, 60_000);
});
