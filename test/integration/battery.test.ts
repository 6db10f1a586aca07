// Issue 7: reliability and security battery against running daemons — open relay tricks,
// hostile input, TLS hygiene (testssl.sh), kill -9 under load, downstream outage, disk full.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { makePki, type TestPki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { RawSmtp } from '../helpers/raw.js';
import { freePort, until } from '../helpers/wait.js';
import { startSink, type Sink } from '../helpers/sink.js';

let pki: TestPki;
let root: string;



const baseGateway = (dir: string, extra: Record<string, unknown> = {}) =>
  testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1s'] }, ...extra });

beforeAll(() => {
  root = tmpDir('battery');
  pki = makePki(path.join(root, 'pki'));
});

describe('open relay and hostile input', () => {
  let gw: RunningGateway;
  let outside: Sink;
  let onprem: Sink;
  let adminPort: number;
  let dir: string;

  beforeAll(async () => {
    dir = tmpDir('hostile');
    outside = await startSink();
    onprem = await startSink();
    gw = await startGateway(
      writePolicy(dir, {
        gateway: {
          ...baseGateway(dir),
          listeners: [
            { name: 'mx', address: '127.0.0.1', port: 0 },
            { name: 'smtps', address: '127.0.0.1', port: 0, implicitTls: true },
          ],
          limits: { maxMessageSize: '256KB', maxRecipientsPerMessage: 100, maxConnectionsPerIp: 5, idleTimeout: '2s', maxMessagesPerMinutePerIp: 100000 },
          admin: { address: '127.0.0.1', port: 0 },
        },
        acceptedDomains: [{ domain: 'contoso.com' }],
        outboundConnectors: [
          { name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [`[127.0.0.1]:${onprem.port}`] },
          { name: 'Everything else', connectorType: 'partner', recipientDomains: ['*'], smartHosts: [`[127.0.0.1]:${outside.port}`] },
        ],
      }),
    );
    adminPort = (await gw.waitFor((e) => e.event === 'admin-listening')).port as number;
  });
  afterAll(async () => {
    await gw.stop();
    await outside.close();
    await onprem.close();
  });

  async function session(ip = '127.0.0.70'): Promise<RawSmtp> {
    const { c, greeting } = await RawSmtp.connect(gw.ports.mx, { localAddress: ip });
    expect(greeting).toMatch(/^220 /);
    expect(await c.cmd('EHLO attacker.example')).toMatch(/^250 /);
    return c;
  }
  const alive = async () => {
    const { c, greeting } = await RawSmtp.connect(gw.ports.mx, { localAddress: '127.0.0.99' });
    c.close();
    expect(greeting).toMatch(/^220 /);
    expect((await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status).toBe(200);
  };
  const rss = async () => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    return Number(/^process_resident_memory_bytes (\d+)/m.exec(text)![1]);
  };
  const queuedCount = () => gw.events('queued').length;

  it('classic relay tricks from an unattributed IP never reach a non-accepted domain', async () => {
    const tricks = [
      'user@evil.test',
      'user%evil.test@contoso.com',
      'evil.test!user@contoso.com',
      '"user@evil.test"@contoso.com',
      '"user%evil.test"@contoso.com',
      '@contoso.com:user@evil.test',
      'user@[127.0.0.1]',
      'user@[192.0.2.1]',
      'user@[IPv6:::1]',
      'user@evil.test.',
      'user@EVIL.Test',
      'user@contoso.com.evil.test',
      'user@evil.test%contoso.com',
      'user@contoso.com@evil.test',
      'user@sub.contoso.com',
      'user@contoso.co',
    ];
    const results: string[] = [];
    for (const from of ['attacker@evil.test', 'ceo@contoso.com', 'CEO@CONTOSO.COM', '']) {
      const c = await session();
      expect(await c.cmd(`MAIL FROM:<${from}>`)).toMatch(/^250/);
      for (const t of tricks) {
        const r = await c.cmd(`RCPT TO:<${t}>`);
        results.push(`${from} → ${t}: ${r}`);
        expect(r, `${from} → ${t}`).toMatch(/^5\d\d /);
      }
      // Legitimate forms of our own domain are still accepted.
      expect(await c.cmd('RCPT TO:<User@CONTOSO.com>')).toMatch(/^250/);
      expect(await c.data('Subject: relay probe\r\n\r\nprobe\r\n.\r\n')).toMatch(/^250 2\.6\.0/);
      c.close();
    }
    expect(results.filter((r) => r.includes(': 550 5.7.64')).length).toBeGreaterThanOrEqual(tricks.length * 3);
    await onprem.waitFor(4);
    await new Promise((r) => setTimeout(r, 500));
    expect(outside.messages).toEqual([]);
    expect(onprem.messages.every((m) => m.to.every((t) => /@contoso\.com\.?$/i.test(t)))).toBe(true);
  });

  it('garbage and binary commands: error replies or a closed connection; the daemon stays up', async () => {
    const c = await session('127.0.0.71');
    const replies: string[] = [];
    for (let i = 0; i < 12 && !c.closed; i++) {
      c.write(Buffer.concat([randomBytes(64).map((b) => (b === 10 || b === 13 ? 65 : b)), Buffer.from('\r\n')]));
      replies.push(await c.reply().catch(() => '(none)'));
    }
    expect(replies.every((r) => /^5\d\d /.test(r) || r === '(closed)' || /^421/.test(r))).toBe(true);
    c.close();
    await alive();
  });

  it('an over-long command line is refused or the connection closed', async () => {
    const c = await session('127.0.0.72');
    c.write(`MAIL FROM:<${'a'.repeat(200_000)}@evil.test>\r\n`);
    const r = await c.reply().catch(() => '(closed)');
    expect(r).toMatch(/^(5\d\d |421 |\(closed\))/);
    c.close();
    await alive();
  });

  it('thousands of pipelined RCPTs: 100 accepted, then 452 4.5.3 until the hard error limit (20), then 421 4.7.0 and the session ends', async () => {
    const c = await session('127.0.0.73');
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    let batch = '';
    for (let i = 0; i < 3000; i++) batch += `RCPT TO:<u${i}@contoso.com>\r\n`;
    c.write(batch);
    const replies: string[] = [];
    for (let i = 0; i < 3000 && !c.closed; i++) replies.push(await c.reply());
    expect(replies.filter((r) => r.startsWith('250')).length).toBe(100);
    expect(replies.slice(100, 120).every((r) => r === '452 4.5.3 Too many recipients')).toBe(true);
    expect(replies[120]).toBe('421 4.7.0 Too many errors, closing connection'); // not 2,900 answers
    expect(replies.slice(121).every((r) => r === '(closed)')).toBe(true);
    c.close();
    await alive();
  });

  it('a pipelined flood of commands is answered in order and memory stays bounded', async () => {
    const before = await rss();
    for (let k = 0; k < 4; k++) {
      const c = await session(`127.0.0.${80 + k}`);
      c.write('NOOP\r\n'.repeat(20_000) + 'QUIT\r\n');
      let n = 0;
      let last = '';
      while (!last.startsWith('221') && last !== '(closed)') {
        last = await c.reply();
        if (last.startsWith('250')) n++;
      }
      expect(n).toBeGreaterThan(100);
      c.close();
    }
    const c = await session('127.0.0.84');
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<u@contoso.com>');
    expect(await c.data('Subject: big\r\n\r\n' + ('y'.repeat(998) + '\r\n').repeat(1000) + '.\r\n')).toBe('552 5.3.4 Message size exceeds fixed maximum message size');
    c.close();
    await alive();
    // process_resident_memory_bytes is summed over the gateway's processes (the first and its SMTP workers).
    const processes = 1 + Number(gw.events('started')[0]!.workers ?? 0);
    const after = await rss();
    expect(after).toBeLessThan(processes * 250 * 1024 * 1024);
    expect(after - before).toBeLessThan(100 * 1024 * 1024);
  });

  it('slow-loris: idle sessions are closed after idleTimeout; a slow client cannot take more than its share', async () => {
    const slow: net.Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const s = net.connect({ host: '127.0.0.1', port: gw.ports.mx, localAddress: '127.0.0.90' });
      s.on('error', () => {});
      slow.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    const drip = setInterval(() => slow.forEach((s) => s.writable && s.write('N')), 400);
    try {
      const { c: sixth, greeting } = await RawSmtp.connect(gw.ports.mx, { localAddress: '127.0.0.90' });
      expect(greeting).toBe('451 4.7.500 Server busy, try again later');
      sixth.close();
      const start = Date.now();
      const c = await session('127.0.0.91'); // someone else is served at once
      expect(Date.now() - start).toBeLessThan(1500);
      c.close();
    } finally {
      clearInterval(drip);
    }
    const idle = net.connect({ host: '127.0.0.1', port: gw.ports.mx, localAddress: '127.0.0.92' });
    const closedAfter = await new Promise<number>((resolve) => {
      const t0 = Date.now();
      idle.on('close', () => resolve(Date.now() - t0));
      idle.resume(); // read, so that the server's close is seen
      idle.on('error', () => {});
      setTimeout(() => resolve(-1), 8000);
    });
    expect(closedAfter).toBeGreaterThan(1500);
    expect(closedAfter).toBeLessThan(6000);
    slow.forEach((s) => s.destroy());
  });

  it('TLS handshake garbage closes that connection only (STARTTLS and implicit TLS)', async () => {
    const c = await session('127.0.0.74');
    expect(await c.cmd('STARTTLS')).toMatch(/^220/);
    c.write(randomBytes(2048));
    await until(() => c.closed, 5000, 'the garbage connection to close');
    const s = net.connect({ host: '127.0.0.1', port: gw.ports.smtps });
    s.on('error', () => {});
    s.resume();
    s.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), randomBytes(4000)]));
    await new Promise<void>((r) => {
      s.on('close', () => r());
      setTimeout(r, 5000);
    });
    expect(s.destroyed || s.readyState === 'closed').toBe(true);
    await alive();
  });

  it('STARTTLS command injection: plaintext pipelined after STARTTLS is discarded', async () => {
    const c = await session('127.0.0.75');
    c.write('STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\nRCPT TO:<victim@contoso.com>\r\n');
    const r = await c.reply();
    if (r.startsWith('220')) {
      // Do the handshake on the raw socket, then see that no transaction was injected.
      const sock = c.raw;
      sock.removeAllListeners('data');
      sock.removeAllListeners('close');
      const sec = tls.connect({ socket: sock, rejectUnauthorized: false });
      await new Promise<void>((res, rej) => {
        sec.once('secureConnect', () => res());
        sec.once('error', rej);
      });
      const lines: string[] = [];
      sec.on('data', (d) => lines.push(...d.toString().split('\r\n').filter(Boolean)));
      sec.write('EHLO x\r\nRCPT TO:<victim@contoso.com>\r\n');
      await until(() => lines.some((l) => /^50\d /.test(l)) || sec.destroyed, 5000, 'a reply to RCPT');
      expect(lines.find((l) => /^\d{3} /.test(l) && !l.startsWith('250 '))).toMatch(/^503 /);
      sec.destroy();
    } else {
      expect(r).toMatch(/^(5\d\d |\(closed\))/);
    }
    await alive();
  });

  it('a client that leaves in the middle of DATA leaves nothing behind', async () => {
    const before = queuedCount();
    const c = await session('127.0.0.77');
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<u@contoso.com>');
    expect(await c.cmd('DATA')).toMatch(/^354/);
    c.write('Subject: half\r\n\r\n' + 'partial line\r\n'.repeat(1000));
    await new Promise((r) => setTimeout(r, 200));
    c.close();
    await new Promise((r) => setTimeout(r, 1000));
    const files = fs.readdirSync(path.join(dir, 'queue'));
    expect(files.filter((n) => n.endsWith('.eml')).length, 'no partial message file left').toBe(files.filter((n) => n.endsWith('.json')).length);
    expect(queuedCount()).toBe(before);
    expect(await gw.logged('data-aborted', (e) => e.ip === '127.0.0.77')).toMatchObject({ ip: '127.0.0.77' });
  });

  it('SMTP smuggling end-of-data variants are not ends of data; the message is refused as a whole', async () => {
    const variants = ['\n.\n', '\n.\r\n', '\r.\r', '\r\n.\n', '\r.\r\n'];
    const before = queuedCount();
    for (const v of variants) {
      const c = await session('127.0.0.76');
      await c.cmd('MAIL FROM:<a@example.org>');
      await c.cmd('RCPT TO:<u@contoso.com>');
      const smuggled = `Subject: smuggle\r\n\r\nbody${v}MAIL FROM:<evil@evil.test>\r\nRCPT TO:<victim@evil.test>\r\nDATA\r\nsmuggled\r\n.\r\n`;
      const r = await c.data(smuggled);
      expect(r, JSON.stringify(v)).toMatch(/^550 5\.6\.11 /);
      expect(await c.cmd('NOOP'), JSON.stringify(v)).toBe('250 2.0.0 OK');
      c.close();
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(queuedCount()).toBe(before);
    expect(outside.messages).toEqual([]);
  });
});

describe('TLS hygiene of the listeners (testssl.sh)', () => {
  let gw: RunningGateway;
  let dir: string;
  beforeAll(async () => {
    dir = tmpDir('testssl');
    gw = await startGateway(
      writePolicy(dir, {
        gateway: { ...baseGateway(dir), listeners: [{ name: 'mx', address: '127.0.0.1', port: 0 }, { name: 'smtps', address: '127.0.0.1', port: 0, implicitTls: true }] },
        acceptedDomains: [{ domain: 'contoso.com' }],
        outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'] }],
      }),
    );
  });
  afterAll(() => gw.stop());

  function testssl(args: string[], out: string): Promise<Array<{ id: string; severity: string; finding: string }>> {
    return new Promise((resolve, reject) => {
      execFile('testssl', ['--quiet', '--color', '0', '-p', '-s', '-U', '-S', '--add-ca', pki.gatewayCa, '--jsonfile-pretty', out, ...args], { timeout: 180_000 }, () => {
        try {
          const r = JSON.parse(fs.readFileSync(out, 'utf8')) as { scanResult: Array<Record<string, unknown>> };
          resolve(Object.values(r.scanResult[0]!).flat().filter((x): x is { id: string; severity: string; finding: string } => !!x && typeof x === 'object' && 'severity' in x));
        } catch (e) {
          reject(e);
        }
      });
    });
  }
  const BAD = new Set(['MEDIUM', 'HIGH', 'CRITICAL']);

  it('STARTTLS on the MX listener: no finding of severity medium or worse', { timeout: 180_000 }, async () => {
    const findings = await testssl(['--starttls', 'smtp', `127.0.0.1:${gw.ports.mx}`], path.join(dir, 'starttls.json'));
    expect(findings.length).toBeGreaterThan(30);
    expect(findings.filter((f) => BAD.has(f.severity)).map((f) => `${f.severity} ${f.id}: ${f.finding}`)).toEqual([]);
    const byId = Object.fromEntries(findings.map((f) => [f.id, f.finding]));
    for (const p of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) expect(byId[p], p).toMatch(/not offered/);
    expect(byId.TLS1_2).toMatch(/offered/);
  });
  it('the implicit-TLS listener: no finding of severity medium or worse', { timeout: 180_000 }, async () => {
    const findings = await testssl([`127.0.0.1:${gw.ports.smtps}`], path.join(dir, 'implicit.json'));
    expect(findings.length).toBeGreaterThan(30);
    expect(findings.filter((f) => BAD.has(f.severity)).map((f) => `${f.severity} ${f.id}: ${f.finding}`)).toEqual([]);
  });
});

describe('crash safety: kill -9 several times under load', () => {
  it('every message that got a 250 is delivered at least once; no refused one appears', { timeout: 120_000 }, async () => {
    const dir = tmpDir('crash');
    const sink = await startSink();
    const port = await freePort();
    const file = writePolicy(dir, {
      gateway: { ...baseGateway(dir), listeners: [{ name: 'mx', address: '127.0.0.1', port }], limits: { maxMessagesPerMinutePerIp: 100000 } },
      acceptedDomains: [{ domain: 'contoso.com' }],
      outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [`[127.0.0.1]:${sink.port}`] }],
    });
    let gw = await startGateway(file);
    const acked = new Set<string>();
    const refused = new Set<string>();
    let running = true;
    let seq = 0;

    async function worker(w: number): Promise<void> {
      let c: RawSmtp | null = null;
      while (running) {
        const id = `m${w}-${seq++}`;
        const bad = seq % 7 === 0; // a bare LF: must be refused
        try {
          if (!c || c.closed) {
            c = (await RawSmtp.connect(port, { localAddress: `127.0.3.${w + 1}` })).c;
            await c.cmd('EHLO load');
          }
          if (!(await c.cmd('MAIL FROM:<load@example.org>')).startsWith('250')) throw new Error('mail');
          if (!(await c.cmd('RCPT TO:<sink@contoso.com>')).startsWith('250')) throw new Error('rcpt');
          const body = bad ? `X-Test-Id: ${id}\r\nSubject: bad\r\n\r\nbare\nlf\r\n.\r\n` : `X-Test-Id: ${id}\r\nSubject: load\r\n\r\n${'z'.repeat(2000)}\r\n.\r\n`;
          const r = await c.data(body);
          if (r.startsWith('250')) acked.add(id);
          else if (r.startsWith('550')) refused.add(id);
          else throw new Error(r);
        } catch {
          c?.close();
          c = null;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      c?.close();
    }

    const workers = [0, 1, 2, 3].map(worker);
    for (let k = 0; k < 3; k++) {
      await new Promise((r) => setTimeout(r, 800));
      await gw.kill9();
      gw = await startGateway(file);
    }
    await new Promise((r) => setTimeout(r, 800));
    running = false;
    await Promise.all(workers);
    expect(acked.size).toBeGreaterThan(20);
    expect(refused.size).toBeGreaterThan(2);
    const seen = () => new Set(sink.messages.map((m) => /^X-Test-Id: (\S+)/m.exec(m.raw)?.[1]));
    await until(() => {
      const got = seen();
      return [...acked].every((id) => got.has(id));
    }, 60_000, 'every acknowledged message at the sink');
    const got = seen();
    for (const id of refused) expect(got.has(id), id).toBe(false);
    await gw.stop();
    await sink.close();
  });
});

describe('downstream outage', () => {
  it('queued mail waits, is never sent in plaintext to a TLS-required connector, and drains when the host is back', { timeout: 60_000 }, async () => {
    const dir = tmpDir('outage');
    const port = await freePort();
    const gw = await startGateway(
      writePolicy(dir, {
        gateway: baseGateway(dir),
        acceptedDomains: [{ domain: 'contoso.com' }],
        outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [`[127.0.0.1]:${port}`], tlsSettings: 'encryptionOnly' }],
      }),
    );
    try {
      for (let i = 0; i < 10; i++) {
        const { c } = await RawSmtp.connect(gw.port);
        await c.cmd('EHLO x');
        await c.cmd('MAIL FROM:<a@example.org>');
        await c.cmd(`RCPT TO:<u${i}@contoso.com>`);
        expect(await c.data(`Subject: outage ${i}\r\n\r\nbody\r\n.\r\n`)).toMatch(/^250 2\.6\.0/);
        c.close();
      }
      // The first attempt finds the host dead; the others wait for it without a connection each.
      await until(() => gw.events('deferred').filter((e) => e.code === '4.4.316').length + gw.events('parked').length >= 10, 10_000, 'connection-refused deferrals');
      expect(gw.events('destination-dead')).toHaveLength(1);
      // The host comes back without STARTTLS first: nothing may be sent to it.
      const plain = await startSink({ port, noStartTls: true });
      await until(() => gw.events('deferred').some((e) => e.code === '4.4.317'), 10_000, 'TLS-not-offered deferrals');
      await new Promise((r) => setTimeout(r, 1500));
      expect(plain.messages).toEqual([]);
      expect(plain.plaintextTransactions).toBe(0);
      await plain.close();
      const good = await startSink({ port, cert: { cert: fs.readFileSync(pki.gatewayCert, 'utf8'), key: fs.readFileSync(pki.gatewayKey, 'utf8') } });
      const msgs = await good.waitFor(10, 20_000);
      expect(msgs.every((m) => m.secure)).toBe(true);
      expect(new Set(msgs.flatMap((m) => m.to)).size).toBe(10);
      await until(() => fs.readdirSync(path.join(dir, 'queue')).filter((n) => n.endsWith('.json') || n.endsWith('.eml')).length === 0, 10_000, 'an empty queue');
      await good.close();
    } finally {
      await gw.stop();
    }
  });
});

describe('disk full', () => {
  const dir = tmpDir('diskfull');
  const queue = path.join(dir, 'queue');
  let gw: RunningGateway;
  beforeAll(async () => {
    fs.mkdirSync(queue);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', queue]);
    gw = await startGateway(
      writePolicy(dir, {
        gateway: baseGateway(dir),
        acceptedDomains: [{ domain: 'contoso.com' }],
        outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'] }],
      }),
    );
  });
  afterAll(async () => {
    await gw?.stop();
    execFileSync('umount', [queue]);
  });
  it('answers 451 4.3.0 when the queue file system is full, never 250, and recovers when space returns', async () => {
    const free = () => Number(execFileSync('df', ['--output=avail', '-B1', queue]).toString().split('\n')[1]);
    fs.writeFileSync(path.join(queue, 'filler'), Buffer.alloc(Math.max(0, free() - 16 * 1024)));
    const send = async (kb: number) => {
      const { c } = await RawSmtp.connect(gw.port);
      await c.cmd('EHLO x');
      await c.cmd('MAIL FROM:<a@example.org>');
      await c.cmd('RCPT TO:<u@contoso.com>');
      const r = await c.data(`Subject: full\r\n\r\n${('f'.repeat(1022) + '\r\n').repeat(kb)}.\r\n`);
      c.close();
      return r;
    };
    expect(await send(200)).toMatch(/^451 4\.3\.0 /);
    expect(await send(100)).toMatch(/^451 4\.3\.0 /);
    expect(fs.readdirSync(queue).filter((n) => n.endsWith('.eml') || n.endsWith('.json'))).toEqual([]);
    fs.rmSync(path.join(queue, 'filler'));
    expect(await send(100)).toMatch(/^250 2\.6\.0 /);
  });
});

