// The queue over an outage (SPEC §5): mail for one destination keeps arriving while its next
// hop is down, the gateway is restarted in the middle, then the next hop comes back. The
// gateway tries the dead next hop once per retry interval (plus its probe), not once per
// message; after a restart it listens before the queue is read; when the hop is back every
// accepted message arrives exactly once. (Rates and times are the benchmark's: `npm run bench
// -- --scenario backlog`.)
import net from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { makePki, type TestPki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { freePort, until } from '../helpers/wait.js';

const HALF = 600;
const INTERVAL_S = 2;
let dir: string;
let pki: TestPki;
let file: string;
let port: number;
let gw: RunningGateway | null = null;
let sink: Sink | null = null;
let down: net.Server | null = null;
let downConnections = 0;
const accepted = new Set<string>();

/** The next hop while it is down: takes the TCP connection and drops it at once, counting. */
async function downHop(): Promise<net.Server> {
  const s = net.createServer((socket) => {
    downConnections++;
    socket.on('error', () => {});
    socket.destroy();
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.3', () => r()));
  return s;
}

async function sendBatch(from: number, count: number): Promise<void> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw!.port, localAddress: '127.0.0.11', pool: true, maxConnections: 8, maxMessages: Infinity, tls: { rejectUnauthorized: false } } as never);
  try {
    await Promise.all(
      Array.from({ length: count }, async (_, k) => {
        const messageId = `<backlog-${from + k}@contoso.com>`;
        await t.sendMail({ from: 'app@contoso.com', to: `user${k % 7}@fabrikam.test`, subject: `backlog ${from + k}`, text: 'x'.repeat(2000), messageId });
        accepted.add(messageId);
      }),
    );
  } finally {
    t.close();
  }
}

/** The dead-destination gauges of /metrics. */
async function metrics(): Promise<{ dead: number; parked: number }> {
  const port = (await gw!.waitFor((e) => e.event === 'admin-listening')).port as number;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  return { dead: value('gateway_destinations_dead'), parked: value('gateway_queue_parked_messages') };
}

beforeAll(async () => {
  dir = tmpDir('backlog');
  pki = makePki(path.join(dir, 'pki'));
  port = await freePort();
  file = writePolicy(dir, {
    gateway: testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: [`${INTERVAL_S}s`] }, limits: { maxMessagesPerMinutePerIp: 100_000 }, admin: { address: '127.0.0.1', port: 0 } }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.11'] }],
    outboundConnectors: [{ name: 'Fabrikam', connectorType: 'partner', recipientDomains: ['fabrikam.test'], smartHosts: [`[127.0.0.3]:${port}`] }],
  });
  down = await downHop();
  gw = await startGateway(file);
});
afterAll(async () => {
  await gw?.stop();
  down?.close();
  await sink?.close();
});

describe('a backlog over an outage of the next hop', () => {
  it('while the hop is down: mail is accepted and the hop is tried once per retry interval, not once per message', async () => {
    const t0 = Date.now();
    await sendBatch(0, HALF);
    expect(accepted.size).toBe(HALF);
    await gw!.waitFor((e) => e.event === 'destination-dead', 5_000);
    await new Promise((r) => setTimeout(r, INTERVAL_S * 1000 + 500)); // at least one probe
    const seconds = (Date.now() - t0) / 1000;
    // The first attempt, then one probe per interval (+1 for the interval under way).
    expect(downConnections).toBeGreaterThanOrEqual(2);
    expect(downConnections).toBeLessThanOrEqual(2 + Math.ceil(seconds / INTERVAL_S));
    expect(gw!.events('parked').length).toBeGreaterThan(HALF / 2);
    expect(gw!.events('destination-still-dead').length).toBeGreaterThanOrEqual(1);
    const m = await metrics();
    expect(m.dead).toBe(1);
    expect(m.parked).toBeGreaterThan(HALF / 2);
  });

  it('a restart listens before the queue is read, and the new mail joins the backlog', async () => {
    await gw!.stop();
    const before = downConnections;
    const t0 = Date.now();
    gw = await startGateway(file);
    const logs = gw.logs.map((e) => e.event);
    const loaded = await gw.waitFor((e) => e.event === 'queue-loaded', 20_000);
    expect(loaded.messages).toBe(HALF);
    // 'started' (listening) is logged before the queue has been read.
    expect(logs.indexOf('started')).toBeGreaterThanOrEqual(0);
    expect(gw.logs.findIndex((e) => e.event === 'started')).toBeLessThan(gw.logs.findIndex((e) => e.event === 'queue-loaded'));
    await sendBatch(HALF, HALF);
    expect(accepted.size).toBe(2 * HALF);
    await gw.waitFor((e) => e.event === 'destination-dead', 5_000);
    const seconds = (Date.now() - t0) / 1000;
    // After the restart the destination is unknown: one attempt at a time until it is found dead.
    expect(downConnections - before).toBeLessThanOrEqual(2 + Math.ceil(seconds / INTERVAL_S));
  });

  it('when the hop is back the probe finds it and every accepted message arrives exactly once', async () => {
    await new Promise<void>((r) => down!.close(() => r()));
    down = null;
    sink = await startSink({ host: '127.0.0.3', port, noStartTls: true });
    await gw!.waitFor((e) => e.event === 'destination-alive', (INTERVAL_S + 5) * 1000);
    await sink.waitFor(2 * HALF, 60_000);
    await until(() => fs.readdirSync(path.join(dir, 'queue')).filter((n) => n.endsWith('.json')).length === 0, 10_000, 'the queue to empty');
    await new Promise((r) => setTimeout(r, 500));
    const ids = sink.messages.map((m) => /^Message-ID:\s*(\S+)/im.exec(m.raw)?.[1]);
    expect(ids.length).toBe(2 * HALF);
    expect(new Set(ids)).toEqual(accepted);
    expect(await metrics()).toEqual({ dead: 0, parked: 0 });
  });
});

describe('a dead next hop that is slow to fail', () => {
  // It takes each connection and drops it only after 1.5 s: a probe is in flight for that long
  // while mail keeps arriving. One probe at a time, one per retry interval — not one per arrival.
  let gw2: RunningGateway | null = null;
  let slow: net.Server | null = null;
  let slowConnections = 0;
  afterAll(async () => {
    await gw2?.stop();
    slow?.close();
  });

  it('mail arriving during a probe waits for it; it starts no probe of its own', async () => {
    const d = tmpDir('slowhop');
    const slowPort = await freePort();
    slow = net.createServer((socket) => {
      slowConnections++;
      socket.on('error', () => {});
      setTimeout(() => socket.destroy(), 1500);
    });
    await new Promise<void>((r) => slow!.listen(slowPort, '127.0.0.3', () => r()));
    gw2 = await startGateway(
      writePolicy(d, {
        gateway: testGateway(d, pki, { queue: { directory: path.join(d, 'queue'), retryIntervals: [`${INTERVAL_S}s`] }, limits: { maxMessagesPerMinutePerIp: 100_000 } }),
        acceptedDomains: [{ domain: 'contoso.com' }],
        inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.11'] }],
        outboundConnectors: [{ name: 'Fabrikam', connectorType: 'partner', recipientDomains: ['fabrikam.test'], smartHosts: [`[127.0.0.3]:${slowPort}`] }],
      }),
    );
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw2.port, localAddress: '127.0.0.11', pool: true, maxConnections: 1, tls: { rejectUnauthorized: false } } as never);
    try {
      const t0 = Date.now();
      await t.sendMail({ from: 'app@contoso.com', to: 'first@fabrikam.test', subject: 'slow', text: 'x' });
      await gw2.waitFor((e) => e.event === 'destination-dead', 5_000);
      // Ten messages a second for five seconds: several probes' flights long.
      for (let i = 0; i < 50; i++) {
        await t.sendMail({ from: 'app@contoso.com', to: `u${i}@fabrikam.test`, subject: `slow ${i}`, text: 'x' });
        await new Promise((r) => setTimeout(r, 100));
      }
      const seconds = (Date.now() - t0) / 1000;
      expect(gw2.events('parked').length).toBeGreaterThanOrEqual(40);
      // The first attempt, then one probe per interval (+1 for the interval under way).
      expect(slowConnections).toBeLessThanOrEqual(2 + Math.ceil(seconds / INTERVAL_S));
    } finally {
      t.close();
    }
  });
});
