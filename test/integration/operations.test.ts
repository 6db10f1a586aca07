// Issue 4: metrics, health, hot reload (policy and certificates), audit mode, throttling,
// PROXY v1/v2, SIGTERM, validate — against running daemons.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { stringify } from 'yaml';
import { issueCertificate } from '../../src/tls/issue.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { runCli, startGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { swaks, replyTo, dataReply } from '../helpers/swaks.js';
import { RawSmtp } from '../helpers/raw.js';
import { startSink, type Sink } from '../helpers/sink.js';

let dir: string;
let pki: TestPki;
let gw: RunningGateway;
let file: string;
let sink: Sink;
let adminPort: number;

function policy(extra: { contosoRequireTls?: boolean; certificate?: string; key?: string } = {}) {
  return {
    gateway: {
      hostname: 'mx1.contoso.test',
      listeners: [
        { name: 'mx', address: '127.0.0.1', port: 0 },
        { name: 'lb', address: '127.0.0.1', port: 0, proxyProtocol: ['127.0.0.1/32'] },
      ],
      tls: { certificate: extra.certificate ?? pki.gatewayCert, key: extra.key ?? pki.gatewayKey },
      queue: { directory: path.join(dir, 'queue') },
      limits: { maxConnectionsPerIp: 3, maxMessagesPerMinutePerIp: 4, maxConnections: 20 },
      admin: { address: '127.0.0.1', port: 0 },
      dns: { servers: ['127.0.0.1:9'] },
    },
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [
      { name: 'ContosoBank', connectorType: 'partner', senderDomains: ['contosobank.com'], requireTls: extra.contosoRequireTls ?? false },
      { name: 'Woodgrove IP', connectorType: 'partner', senderDomains: ['woodgrovebank.com'], senderIPAddresses: ['198.51.100.7', '2001:db8::7'], restrictDomainsToIPAddresses: true },
      { name: 'Audited', connectorType: 'partner', senderDomains: ['audited.example'], senderIPAddresses: ['127.0.0.2'], restrictDomainsToIPAddresses: true, mode: 'audit' },
      { name: 'Busy partner', connectorType: 'partner', senderIPAddresses: ['127.0.0.30'], maxMessagesPerMinute: 1000 },
    ],
    outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [`[127.0.0.1]:${sink.port}`] }],
  };
}

async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one sample, e.g. metric('gateway_refusals_total', {rule: 'claim-ip'}). */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{(.*)\})? ([0-9.eE+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) {
      total += Number(m[4]);
      seen = true;
    }
  }
  return seen ? total : NaN;
}

beforeAll(async () => {
  dir = tmpDir('ops');
  pki = makePki(path.join(dir, 'pki'));
  sink = await startSink();
  file = writePolicy(dir, policy());
  gw = await startGateway(file);
  adminPort = (await gw.waitFor((e) => e.event === 'admin-listening')).port as number;
});

afterAll(async () => {
  await gw?.stop();
  await sink?.close();
});

const mx = () => ['--server', `127.0.0.1:${gw.ports.mx}`];

describe('admin HTTP', () => {
  it('/healthz and /readyz answer 200; unknown paths 404', async () => {
    expect((await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).text()).toBe('ready\n');
    expect((await fetch(`http://127.0.0.1:${adminPort}/nope`)).status).toBe(404);
  });
  it('/metrics counts sessions, refusals by connector and rule, TLS versions, queue and deliveries', async () => {
    await swaks([...mx(), '--local-interface', '127.0.0.5', '--from', 'a@woodgrovebank.com', '--to', 'u@contoso.com']);
    const ok = await swaks([...mx(), '--tls', '--local-interface', '127.0.0.6', '--from', 'a@example.org', '--to', 'u@contoso.com']);
    expect(dataReply(ok)).toMatch(/^250 2\.6\.0/);
    await sink.waitFor(1);
    const text = await scrape();
    expect(metric(text, 'gateway_refusals_total', { connector: 'Woodgrove IP', rule: 'claim-ip', code: '550 5.7.51' })).toBeGreaterThanOrEqual(1);
    expect(metric(text, 'gateway_sessions_total', { listener: 'mx' })).toBeGreaterThanOrEqual(2);
    expect(metric(text, 'gateway_tls_handshakes_total', { version: 'TLSv1.3' })).toBeGreaterThanOrEqual(1);
    expect(metric(text, 'gateway_messages_accepted_total', { connector: 'none' })).toBeGreaterThanOrEqual(1);
    const t2 = await (async () => {
      for (let i = 0; i < 50; i++) {
        const t = await scrape();
        if (metric(t, 'gateway_deliveries_total', { connector: 'On-prem', result: 'delivered' }) >= 1 && metric(t, 'gateway_queue_messages') === 0) return t;
        await new Promise((r) => setTimeout(r, 100));
      }
      return scrape();
    })();
    expect(metric(t2, 'gateway_deliveries_total', { connector: 'On-prem', result: 'delivered' })).toBeGreaterThanOrEqual(1);
    expect(metric(t2, 'gateway_queue_messages')).toBe(0);
    expect(metric(t2, 'gateway_queue_oldest_age_seconds')).toBe(0);
    expect(metric(t2, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });
});

describe('audit mode', () => {
  it('logs and counts what would be refused, and refuses nothing', async () => {
    const r = await swaks([...mx(), '--local-interface', '127.0.0.7', '--from', 'x@audited.example', '--to', 'u@contoso.com']);
    expect(dataReply(r)).toMatch(/^250 2\.6\.0/);
    expect(gw.events('audit').some((e) => e.connector === 'Audited' && String(e.wouldReply).startsWith('550 5.7.51'))).toBe(true);
    expect(metric(await scrape(), 'gateway_audit_would_refuse_total', { connector: 'Audited', rule: 'claim-ip' })).toBe(1);
  });
});

describe('PROXY protocol', () => {
  async function viaProxy(header: Buffer | string, from: string): Promise<string> {
    const s = net.connect({ host: '127.0.0.1', port: gw.ports.lb });
    await new Promise((r) => s.once('connect', r));
    s.write(header);
    const { c, greeting } = await RawSmtp.wrap(s);
    expect(greeting).toMatch(/^220 /);
    await c.cmd('EHLO lb-client');
    const reply = await c.cmd(`MAIL FROM:<${from}>`);
    c.close();
    return reply;
  }
  function v2(src: string, v6 = false): Buffer {
    const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
    if (!v6) {
      const body = Buffer.alloc(12);
      Buffer.from(src.split('.').map(Number)).copy(body, 0);
      Buffer.from([127, 0, 0, 1]).copy(body, 4);
      body.writeUInt16BE(40000, 8);
      body.writeUInt16BE(25, 10);
      return Buffer.concat([sig, Buffer.from([0x21, 0x11, 0, 12]), body]);
    }
    const body = Buffer.alloc(36);
    const groups = ['2001', 'db8', '0', '0', '0', '0', '0', '7'];
    groups.forEach((g, i) => body.writeUInt16BE(parseInt(g, 16), i * 2));
    body.writeUInt16BE(40000, 32);
    body.writeUInt16BE(25, 34);
    return Buffer.concat([sig, Buffer.from([0x21, 0x21, 0, 36]), body]);
  }
  it('v1 from a trusted load balancer: the client IP in the header drives attribution', async () => {
    expect(await viaProxy('PROXY TCP4 198.51.100.7 127.0.0.1 40000 25\r\n', 'a@woodgrovebank.com')).toMatch(/^250/);
    expect(await viaProxy('PROXY TCP4 203.0.113.9 127.0.0.1 40000 25\r\n', 'a@woodgrovebank.com')).toMatch(/^550 5\.7\.51/);
    await gw.waitFor((e) => e.event === 'refusal' && e.ip === '203.0.113.9');
  });
  it('v2 (IPv4 and IPv6) from a trusted load balancer', async () => {
    expect(await viaProxy(v2('198.51.100.7'), 'a@woodgrovebank.com')).toMatch(/^250/);
    expect(await viaProxy(v2('203.0.113.9'), 'a@woodgrovebank.com')).toMatch(/^550 5\.7\.51/);
    expect(await viaProxy(v2('', true), 'a@woodgrovebank.com')).toMatch(/^250/);
  });
  it('an untrusted peer cannot spoof its address with a PROXY header', async () => {
    const { c, greeting } = await RawSmtp.connect(gw.ports.lb, { localAddress: '127.0.0.8' });
    expect(greeting).toMatch(/^220/);
    expect(await c.cmd('PROXY TCP4 198.51.100.7 127.0.0.1 40000 25')).toMatch(/^5\d\d /);
    await c.cmd('EHLO x');
    expect(await c.cmd('MAIL FROM:<a@woodgrovebank.com>')).toMatch(/^550 5\.7\.51/);
    c.close();
    // A malformed header from the trusted peer closes the connection instead of guessing.
    const s = net.connect({ host: '127.0.0.1', port: gw.ports.lb });
    s.write('HELLO there\r\n');
    const closed = await new Promise<boolean>((r) => {
      s.on('close', () => r(true));
      setTimeout(() => r(false), 3000);
    });
    expect(closed).toBe(true);
  });
});

describe('throttling', () => {
  it('more connections per IP than allowed: 451 4.7.500 at connect', async () => {
    const open: RawSmtp[] = [];
    for (let i = 0; i < 3; i++) {
      const { c, greeting } = await RawSmtp.connect(gw.ports.mx, { localAddress: '127.0.0.40' });
      expect(greeting).toMatch(/^220/);
      open.push(c);
    }
    const { c: fourth, greeting } = await RawSmtp.connect(gw.ports.mx, { localAddress: '127.0.0.40' });
    expect(greeting).toBe('451 4.7.500 Server busy, try again later');
    fourth.close();
    open.forEach((c) => c.close());
  });
  it('more messages per minute than allowed: 451 4.7.500 at MAIL FROM; a connector may raise the limit', async () => {
    const replies: string[] = [];
    const { c } = await RawSmtp.connect(gw.ports.mx, { localAddress: '127.0.0.41' });
    await c.cmd('EHLO x');
    for (let i = 0; i < 6; i++) {
      replies.push(await c.cmd('MAIL FROM:<a@example.org>'));
      await c.cmd('RSET');
    }
    c.close();
    expect(replies.slice(0, 4).every((r) => r.startsWith('250'))).toBe(true);
    expect(replies[4]).toBe('451 4.7.500 Server busy, try again later');
    const { c: busy } = await RawSmtp.connect(gw.ports.mx, { localAddress: '127.0.0.30' });
    await busy.cmd('EHLO x');
    for (let i = 0; i < 8; i++) {
      expect(await busy.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
      await busy.cmd('RSET');
    }
    busy.close();
  });
  it('connections beyond global capacity get 421', async () => {
    const open: RawSmtp[] = [];
    for (let i = 0; i < 20; i++) open.push((await RawSmtp.connect(gw.ports.mx, { localAddress: `127.0.1.${i + 1}` })).c);
    const { c, greeting } = await RawSmtp.connect(gw.ports.mx, { localAddress: '127.0.1.100' });
    expect(greeting).toMatch(/^421 /);
    c.close();
    open.forEach((x) => x.close());
    // The next tests need the capacity back: wait until the gateway has seen the closes.
    for (let i = 0; i < 100 && metric(await scrape(), 'gateway_sessions_active') > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(metric(await scrape(), 'gateway_sessions_active')).toBe(0);
  });
});

describe('hot reload', () => {
  it('a valid policy applies to new sessions under traffic, with no refused or dropped session; sessions in progress keep theirs', async () => {
    const inProgress = (await RawSmtp.connect(gw.ports.mx, { localAddress: '127.0.0.50' })).c;
    await inProgress.cmd('EHLO x');
    // Traffic from several addresses while the policy changes twice.
    const sends = Array.from({ length: 12 }, (_, i) =>
      swaks([...mx(), '--tls', '--local-interface', `127.0.2.${i + 1}`, '--from', 'a@contosobank.com', '--to', 'u@contoso.com']),
    );
    const reloadedBefore = gw.events('reloaded').length;
    fs.writeFileSync(file, stringify(policy({ contosoRequireTls: true })));
    gw.proc.kill('SIGHUP');
    const results = await Promise.all(sends);
    for (const r of results) expect(dataReply(r)).toMatch(/^250 2\.6\.0/);
    await gw.waitFor(() => gw.events('reloaded').length > reloadedBefore);
    // New sessions: contosobank.com now needs TLS.
    const plain = await swaks([...mx(), '--local-interface', '127.0.0.51', '--from', 'a@contosobank.com', '--to', 'u@contoso.com']);
    expect(replyTo(plain, 'MAIL FROM')).toMatch(/^530 5\.7\.0/);
    // The session that started before the reload finishes under the old policy.
    expect(await inProgress.cmd('MAIL FROM:<a@contosobank.com>')).toMatch(/^250/);
    inProgress.close();
  });
  it('an invalid policy (truncated file) is refused, logged with its errors; the old one keeps running', async () => {
    const good = fs.readFileSync(file, 'utf8');
    const refusedBefore = gw.events('reload-refused').length;
    fs.writeFileSync(file, good.slice(0, Math.floor(good.length / 2)) + '\n  bogusKey: [\n');
    gw.proc.kill('SIGHUP');
    const ev = await gw.waitFor(() => gw.events('reload-refused').length > refusedBefore);
    expect(JSON.stringify(ev)).toMatch(/gateway\.yaml:\d+:\d+: error/);
    const plain = await swaks([...mx(), '--local-interface', '127.0.0.52', '--from', 'a@contosobank.com', '--to', 'u@contoso.com']);
    expect(replyTo(plain, 'MAIL FROM')).toMatch(/^530 5\.7\.0/); // still the last good policy
    fs.writeFileSync(file, good);
    expect(metric(await scrape(), 'gateway_policy_reloads_total', { result: 'refused' })).toBeGreaterThanOrEqual(1);
  });
  it('an edit and then SIGHUP is one reload, not two; `connector-gateway reload` says how it went; the pid file names the daemon (issue 21)', async () => {
    const before = gw.events('reloaded').length;
    const unchangedBefore = gw.events('reload-unchanged').length;
    fs.writeFileSync(file, stringify(policy({ contosoRequireTls: false })));
    await gw.waitFor(() => gw.events('reloaded').length > before, 10_000); // the file watch
    gw.proc.kill('SIGHUP'); // the operator's habit, after the edit
    await gw.waitFor(() => gw.events('reload-unchanged').length > unchangedBefore, 10_000);
    expect(gw.events('reloaded').length).toBe(before + 1);
    const same = await runCli(['reload', '--config', file], dir);
    expect(same.code).toBe(0);
    expect(same.stdout).toMatch(/^unchanged/);
    fs.writeFileSync(file, stringify(policy({ contosoRequireTls: true })));
    const applied = await runCli(['reload', '--config', file], dir);
    expect(applied.stdout).toMatch(/^reloaded/);
    expect(applied.code).toBe(0);
    const good = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, good + '  bogusKey: [\n');
    const refused = await runCli(['reload', '--config', file], dir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/reload refused; the running policy stays in force:\n.*gateway\.yaml:\d+:\d+: error/);
    fs.writeFileSync(file, good);
    const pid = fs.readFileSync(path.join(dir, 'queue', '.gateway.pid'), 'utf8').trim();
    expect(Number(pid)).toBe(gw.proc.pid);
  });
  it('a file change alone (no signal) reloads too', async () => {
    const before = gw.events('reloaded').length;
    fs.writeFileSync(file, stringify(policy({ contosoRequireTls: false })));
    await gw.waitFor(() => gw.events('reloaded').length > before, 10_000);
    const plain = await swaks([...mx(), '--local-interface', '127.0.0.53', '--from', 'a@contosobank.com', '--to', 'u@contoso.com']);
    expect(dataReply(plain)).toMatch(/^250 2\.6\.0/);
  });
  it('certificates reload; a missing certificate file on reload keeps the old certificate', async () => {
    const subjectOf = () =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: gw.ports.mx, rejectUnauthorized: false });
        s.on('error', reject);
        // STARTTLS by hand.
        let stage = 0;
        const plain = net.connect({ host: '127.0.0.1', port: gw.ports.mx });
        s.destroy();
        plain.on('data', (d) => {
          const t = d.toString();
          if (stage === 0 && t.startsWith('220')) {
            stage = 1;
            plain.write('EHLO x\r\n');
          } else if (stage === 1 && /^250 /m.test(t)) {
            stage = 2;
            plain.write('STARTTLS\r\n');
          } else if (stage === 2 && t.startsWith('220')) {
            stage = 3;
            plain.removeAllListeners('data');
            const sec = tls.connect({ socket: plain, rejectUnauthorized: false }, () => {
              resolve(String(sec.getPeerCertificate().subject.CN));
              sec.destroy();
            });
          }
        });
      });
    expect(await subjectOf()).toBe('mx1.contoso.test');
    const fresh = issueCertificate({ commonName: 'mx2.contoso.test', issuer: pki.issuers.gatewayCa });
    fs.writeFileSync(path.join(dir, 'new.crt'), fresh.certPem);
    fs.writeFileSync(path.join(dir, 'new.key'), fresh.keyPem);
    let before = gw.events('reloaded').length;
    fs.writeFileSync(file, stringify(policy({ certificate: path.join(dir, 'new.crt'), key: path.join(dir, 'new.key') })));
    gw.proc.kill('SIGHUP');
    await gw.waitFor(() => gw.events('reloaded').length > before);
    expect(await subjectOf()).toBe('mx2.contoso.test');
    before = gw.events('reload-refused').length;
    fs.writeFileSync(file, stringify(policy({ certificate: path.join(dir, 'missing.crt'), key: path.join(dir, 'new.key') })));
    gw.proc.kill('SIGHUP');
    await gw.waitFor(() => gw.events('reload-refused').length > before);
    expect(await subjectOf()).toBe('mx2.contoso.test');
    fs.writeFileSync(file, stringify(policy()));
    gw.proc.kill('SIGHUP');
  });
});

describe('validate', () => {
  it('reports each step and passes against a good smart host; fails when TLS is required but not offered', async () => {
    const good = await runCli(['validate', 'On-prem', '--config', file, '--to', 'u@contoso.com'], dir);
    expect(good.stdout).toContain('PASS banner: 220 ');
    expect(good.stdout).toMatch(/PASS TLS: TLSv1\.[23]/);
    expect(good.stdout).toMatch(/PASS test message to u@contoso\.com: delivered/);
    expect(good.stdout).toContain('result: PASS');
    // A check the connector does not require is INFO, never PASS when it did not pass (issue 21).
    expect(good.stdout).not.toMatch(/PASS certificate chain: not verified/);
    // The sink's certificate is the test helper's own, trusted by no root; tlsSettings null (opportunistic).
    expect(good.stdout).toMatch(/INFO certificate chain: not verified \(.*\) \(not required by tlsSettings null\)/);
    expect(good.code).toBe(0);
    const plain = await startSink({ noStartTls: true });
    try {
      const d = tmpDir('validate');
      const p = policy();
      (p.outboundConnectors as object[]) = [{ name: 'Strict', connectorType: 'partner', recipientDomains: ['x.test'], smartHosts: [`[127.0.0.1]:${plain.port}`], tlsSettings: 'encryptionOnly' }];
      const f = writePolicy(d, p);
      const r = await runCli(['validate', 'Strict', '--config', f], d);
      expect(r.stdout).toContain('FAIL STARTTLS offered: no');
      expect(r.stdout).toContain('result: FAIL');
      expect(r.code).toBe(1);
    } finally {
      await plain.close();
    }
  });
});

describe('SIGTERM', () => {
  it('stops accepting, lets the session in progress finish, exits 0', async () => {
    const { c } = await RawSmtp.connect(gw.ports.mx, { localAddress: '127.0.0.60' });
    await c.cmd('EHLO x');
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<u@contoso.com>');
    expect(await c.cmd('DATA')).toMatch(/^354/);
    gw.proc.kill('SIGTERM');
    await gw.waitFor((e) => e.event === 'stopping');
    // The listeners close right after 'stopping' is logged (in worker processes, one IPC message
    // later): within a few seconds a new connection is refused.
    const attempt = (): Promise<boolean> =>
      new Promise<boolean>((r) => {
        const s = net.connect({ host: '127.0.0.1', port: gw.ports.mx });
        s.on('error', () => r(true));
        s.on('data', () => (s.destroy(), r(false)));
        setTimeout(() => (s.destroy(), r(true)), 1500);
      });
    let refused = false;
    for (let i = 0; i < 20 && !refused; i++) {
      refused = await attempt();
      if (!refused) await new Promise((r) => setTimeout(r, 100));
    }
    expect(refused).toBe(true);
    c.write('Subject: last one\r\n\r\nbody\r\n.\r\n');
    expect(await c.reply()).toMatch(/^250 2\.6\.0/);
    c.close();
    expect(await gw.exited).toBe(0);
  });
});
