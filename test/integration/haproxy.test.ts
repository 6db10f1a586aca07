// Scale-out behind a real load balancer (deploy/kubernetes' design): HAProxy (the Debian
// package) in front of three gateway processes, each with its own queue, speaking PROXY v2 to
// them. Each replica sees the real client IP (a connector that trusts one client IP accepts
// it and refuses its neighbour, though every connection comes from HAProxy's address); a
// replica killed with SIGKILL under load loses nothing: what it acknowledged is delivered when
// it comes back on its queue (as a StatefulSet pod restarts on its volume). The next hop is
// down during the load, so everything a replica acknowledged is only on its disk when it dies.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { makePki, type TestPki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { freePort, until } from '../helpers/wait.js';
import { startHaproxy } from '../helpers/haproxy.js';

const REPLICAS = 3;
const MESSAGES = 240;
let dir: string;
let pki: TestPki;
let sink: Sink | null = null;
let sinkPort: number;
let haproxy: ChildProcess | null = null;
let lbPort: number;
const files: string[] = [];
const gws: Array<RunningGateway | null> = [];

function policyFor(i: number): string {
  const d = path.join(dir, `replica${i}`);
  fs.mkdirSync(d, { recursive: true });
  return writePolicy(d, {
    gateway: testGateway(d, pki, {
      listeners: [{ name: 'lb', address: '127.0.0.1', port: 0, proxyProtocol: ['127.0.0.1/32'] }],
      queue: { directory: path.join(d, 'queue'), retryIntervals: ['1s'] },
      limits: { maxMessagesPerMinutePerIp: 100_000 },
    }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.21'] }],
    outboundConnectors: [{ name: 'Fabrikam', connectorType: 'partner', recipientDomains: ['fabrikam.test'], smartHosts: [`[127.0.0.3]:${sinkPort}`] }],
  });
}

async function startBalancer(ports: number[]): Promise<void> {
  const lb = await startHaproxy(dir, ports);
  lbPort = lb.port;
  haproxy = lb.proc;
}

/** One message over its own connection (so that round robin spreads them), retried as an MTA would when the session breaks. */
async function send(i: number, from = '127.0.0.21'): Promise<'accepted' | 'refused'> {
  for (let attempt = 0; ; attempt++) {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: lbPort, localAddress: from, tls: { rejectUnauthorized: false }, connectionTimeout: 5_000, greetingTimeout: 5_000, socketTimeout: 10_000 } as never);
    try {
      await t.sendMail({ from: 'app@contoso.com', to: `user${i}@fabrikam.test`, subject: `lb ${i}`, text: 'through the balancer', messageId: `<lb-${i}@contoso.com>` });
      return 'accepted';
    } catch (e) {
      const code = (e as { responseCode?: number }).responseCode;
      if (code && code >= 500) return 'refused';
      if (attempt >= 8) throw e;
      await new Promise((r) => setTimeout(r, 250));
    } finally {
      t.close();
    }
  }
}

beforeAll(async () => {
  dir = tmpDir('haproxy');
  pki = makePki(path.join(dir, 'pki'));
  sinkPort = await freePort();
  for (let i = 0; i < REPLICAS; i++) {
    files.push(policyFor(i));
    gws.push(await startGateway(files[i]!));
  }
  await startBalancer(gws.map((g) => g!.port));
}, 60_000);
afterAll(async () => {
  haproxy?.kill('SIGTERM');
  for (const g of gws) await g?.stop();
  await sink?.close();
});

describe('three gateways behind HAProxy (PROXY v2)', () => {
  it('each replica sees the real client IP: the trusted one is relayed, its neighbour refused', async () => {
    expect(await send(1000, '127.0.0.22')).toBe('refused');
    for (let i = 0; i < 6; i++) expect(await send(2000 + i)).toBe('accepted');
    for (const g of gws) {
      const ips = new Set(g!.events('connect').map((e) => e.ip));
      expect(ips.has('127.0.0.21')).toBe(true); // round robin reached every replica, with the client's address
      expect(ips.has('127.0.0.1')).toBe(false); // never HAProxy's own (its health checks carry a PROXY LOCAL header)
    }
  });

  it('a replica killed with SIGKILL under load loses nothing it acknowledged', { timeout: 120_000 }, async () => {
    const accepted = new Set<string>();
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < MESSAGES; i = next++) if ((await send(i)) === 'accepted') accepted.add(`<lb-${i}@contoso.com>`);
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    await until(() => accepted.size >= MESSAGES / 3, 60_000, 'a third of the load');
    const victim = gws[1]!;
    await victim.kill9();
    gws[1] = null;
    await load;
    expect(accepted.size).toBe(MESSAGES); // the clients' retries went to the other replicas
    const victimQueued = victim.events('queued').length;
    expect(victimQueued).toBeGreaterThan(0);
    // The killed replica comes back on its own queue; the next hop comes back; all is delivered.
    gws[1] = await startGateway(files[1]!);
    const s = (sink = await startSink({ host: '127.0.0.3', port: sinkPort, noStartTls: true }));
    const want = [...accepted];
    await until(() => {
      const got = new Set(s.messages.map((m) => /^Message-ID:\s*(\S+)/im.exec(m.raw)?.[1]));
      return want.every((id) => got.has(id));
    }, 60_000, 'every acknowledged message at the sink');
    for (let i = 0; i < REPLICAS; i++) {
      await until(() => fs.readdirSync(path.join(dir, `replica${i}`, 'queue')).filter((n) => n.endsWith('.json')).length === 0, 15_000, `replica ${i}'s queue to empty`);
    }
  });
});
