// Slot exhaustion (issue 20, item 11), over real sockets against a gateway with small limits:
// capacity kept for the servers a connector lists, Postfix's stress mode and hard error limit,
// a minimum DATA rate, and implicit-TLS sockets counted per IP and timed from accept.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { RawSmtp } from '../helpers/raw.js';
import { until } from '../helpers/wait.js';

let gw: RunningGateway;
let dir: string;
const ONPREM = '127.0.0.10';

beforeAll(async () => {
  dir = tmpDir('exhaustion');
  const pki = makePki(path.join(dir, 'pki'));
  gw = await startGateway(
    writePolicy(dir, {
      gateway: testGateway(dir, pki, {
        listeners: [
          { name: 'mx', address: '127.0.0.1', port: 0 },
          { name: 'smtps', address: '127.0.0.1', port: 0, implicitTls: true },
        ],
        limits: { maxConnections: 8, reservedConnections: 2, maxConnectionsPerIp: 4, hardErrorLimit: 3, idleTimeout: '4s', minDataRate: '1KB', tlsHandshakeTimeout: '1s', maxMessagesPerMinutePerIp: 100000 },
      }),
      acceptedDomains: [{ domain: 'contoso.com' }],
      inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: [ONPREM] }],
      outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'] }],
    }),
  );
});
afterAll(async () => {
  await gw?.stop();
});

const open = (from: string) => RawSmtp.connect(gw.ports.mx!, { localAddress: from });
const closeAll = async (cs: RawSmtp[]) => {
  for (const c of cs) c.close();
  await new Promise((r) => setTimeout(r, 300)); // the gateway sees them go
};

describe('connections kept for the servers a connector lists', () => {
  it('with the internet holding all but the reserved slots, the next internet client gets 421 4.7.0 and on-premises gets in', async () => {
    const held: RawSmtp[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const { c, greeting } = await open(`127.0.0.${21 + i}`);
        expect(greeting, `client ${i}`).toMatch(/^220 /);
        held.push(c);
      }
      const { c: late, greeting: refused } = await open('127.0.0.27');
      held.push(late);
      expect(refused).toBe('421 4.7.0 Too many connected clients, try again in a moment');
      const { c: onprem, greeting } = await open(ONPREM);
      held.push(onprem);
      expect(greeting).toMatch(/^220 /);
    } finally {
      await closeAll(held);
    }
  });

  it('a client refused at connect is uncounted at once, though it never closes its half of the socket', async () => {
    const held: RawSmtp[] = [];
    try {
      for (let i = 0; i < 6; i++) held.push((await open(`127.0.0.${50 + i}`)).c);
      for (let i = 0; i < 3; i++) {
        const { c, greeting } = await open(`127.0.0.${60 + i}`); // refused, and kept open by the client
        expect(greeting).toMatch(/^421 4\.7\.0 /);
        held.push(c);
      }
      held.shift()!.close(); // one real session ends: a slot is free again
      await new Promise((r) => setTimeout(r, 300));
      const { c, greeting } = await open('127.0.0.63');
      held.push(c);
      expect(greeting).toMatch(/^220 /);
    } finally {
      await closeAll(held);
    }
  });
});

describe('errors end a session (smtpd_hard_error_limit)', () => {
  it('the third refused command is followed by 421 4.7.0 and the connection closes', async () => {
    const { c } = await open('127.0.0.30');
    await c.cmd('EHLO errors.example');
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<x1@elsewhere.example>')).toMatch(/^550 5\.7\.64/);
    expect(await c.cmd('RCPT TO:<x2@elsewhere.example>')).toMatch(/^550 5\.7\.64/);
    expect(await c.cmd('RCPT TO:<x3@elsewhere.example>')).toMatch(/^550 5\.7\.64/);
    expect(await c.reply()).toBe('421 4.7.0 Too many errors, closing connection');
    await until(() => c.closed, 2000, 'the connection to close');
    expect(await gw.logged('refusal', (e) => e.rule === 'error-limit')).toMatchObject({ rule: 'error-limit' });
  });
  it('under stress (half the connections open) one refused command ends the session', async () => {
    const held: RawSmtp[] = [];
    try {
      for (let i = 0; i < 4; i++) held.push((await open(`127.0.0.${31 + i}`)).c);
      const { c } = await open('127.0.0.35');
      held.push(c);
      await c.cmd('EHLO stressed.example');
      expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
      expect(await c.cmd('RCPT TO:<x@elsewhere.example>')).toMatch(/^550 5\.7\.64/);
      expect(await c.reply()).toBe('421 4.7.0 Too many errors, closing connection');
      expect(gw.events('stress').length).toBeGreaterThan(0);
    } finally {
      await closeAll(held);
    }
  });
});

describe('a minimum DATA rate', () => {
  it('a byte every half second in DATA is closed with 421 4.4.2 once past the grace (the idle timeout, 4 s)', async () => {
    const { c } = await open('127.0.0.36');
    await c.cmd('EHLO slow.example');
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<user@contoso.com>')).toMatch(/^250/);
    expect(await c.cmd('DATA')).toMatch(/^354/);
    const drip = setInterval(() => !c.closed && c.raw.write('x'), 500); // idle-proof: never silent for 4 s
    try {
      expect(await c.reply(15_000)).toBe('421 4.4.2 Data transfer too slow, closing connection');
    } finally {
      clearInterval(drip);
      c.close();
    }
    await gw.waitFor((e) => e.event === 'refusal' && e.rule === 'data-rate', 3000);
    // Its DATA handler ended too: the half-written message is gone from the spool, not left open.
    await gw.waitFor((e) => e.event === 'data-aborted', 3000);
    await until(() => fs.readdirSync(path.join(dir, 'queue')).filter((n) => n.endsWith('.eml')).length === 0, 3000, 'the spool file of the slow message to go');
  });
});

describe('implicit TLS: sockets counted per IP and timed from accept', () => {
  it('silent connections beyond maxConnectionsPerIp close at once, the others after tlsHandshakeTimeout; other clients get in meanwhile', async () => {
    const silent: net.Socket[] = [];
    const closedAt: number[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 7; i++) {
      const s = net.connect({ host: '127.0.0.1', port: gw.ports.smtps!, localAddress: '127.0.0.40' });
      s.on('error', () => {});
      s.on('close', () => closedAt.push(Date.now() - t0));
      silent.push(s);
    }
    await until(() => closedAt.length >= 3, 2000, 'the connections beyond the per-IP limit to close');
    expect(closedAt.slice(0, 3).every((ms) => ms < 800)).toBe(true);
    const { c, greeting } = await RawSmtp.connect(gw.ports.smtps!, { implicitTls: true, localAddress: '127.0.0.41' });
    expect(greeting).toMatch(/^220 /);
    c.close();
    await until(() => closedAt.length === 7, 5000, 'the silent connections to reach their handshake deadline');
    expect(Math.max(...closedAt)).toBeGreaterThanOrEqual(900);
    for (const s of silent) s.destroy();
    expect(gw.events('worker-exited')).toEqual([]); // nothing of this takes the listener down
  });
});
