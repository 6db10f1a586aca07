// The "under attack" scenario (issue 20, items 9–11): the on-premises server (127.0.0.10, an
// onPremises connector by IP) sends mail at a steady pace, first on a quiet gateway, then while
// each attack runs from other loopback addresses. Printed per attack: the legitimate client's
// success rate and p99 end of DATA → 250 beside the quiet run's, and the gateway's peak RSS
// (every process). Targets: 100 % accepted, p99 ≤ 2 × quiet, RSS ≤ 300 MB. Loopback only;
// every loop is bounded in count and in time.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { stringify } from 'yaml';
import { SmtpClient } from './smtp-client.js';

export interface AttackKit {
  root: string;
  work: string;
  cert: string;
  key: string;
  rssMb: (pid: number) => number;
  track: <T extends ChildProcess>(c: T) => T;
}

export interface AttackFigures {
  attack: string;
  legitSent: number;
  legitAccepted: number;
  legitP99Ms: number;
  peakRssMb: number;
  attackDetail: string;
}

const ONPREM = '127.0.0.10';
const SECONDS = 8;

function policy(kit: AttackKit, dir: string): string {
  const file = path.join(dir, 'gateway.yaml');
  fs.writeFileSync(
    file,
    stringify({
      gateway: {
        hostname: 'gateway.attack.test',
        listeners: [
          { name: 'mx', address: '127.0.0.1', port: 0 },
          { name: 'smtps', address: '127.0.0.1', port: 0, implicitTls: true },
        ],
        tls: { certificate: kit.cert, key: kit.key },
        queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] },
        limits: { maxMessageSize: '10MB', maxConnections: 1000, maxConnectionsPerIp: 20, maxMessagesPerMinutePerIp: 100000 },
        dns: { servers: ['127.0.0.1:9'] },
        log: { level: 'info' }, // its 'started' line gives the ports
        trace: { retention: 0 },
      },
      acceptedDomains: [{ domain: 'contoso.com' }],
      inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: [ONPREM] }],
      outboundConnectors: [{ name: 'To on-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[127.0.0.1]:9'] }],
      // The policy's own example, on a header anyone writes: RE2 keeps it linear.
      transportRules: [{ name: 'Confidential', priority: 0, conditions: { headerMatches: [{ name: 'X-Note', pattern: 'confidential.*(project|secret)' }] }, actions: { setHeaders: { 'X-Classified': 'yes' } } }],
    }),
  );
  return file;
}

async function startGateway(kit: AttackKit, file: string): Promise<{ proc: ChildProcess; ports: Record<string, number> }> {
  const proc = kit.track(spawn(process.execPath, [path.join(kit.root, 'dist/cli/main.js'), 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const ports: Record<string, number> = {};
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the gateway did not start')), 30_000);
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (!line.includes('"event":"started"')) return;
      for (const l of (JSON.parse(line) as { listeners: Array<{ name: string; port: number }> }).listeners) ports[l.name] = l.port;
      clearTimeout(timer);
      resolve();
    });
  });
  return { proc, ports };
}

/** The legitimate on-premises client: 4 sessions sending 2 KB messages back to back until `until`. */
async function legit(port: number, until: number): Promise<{ sent: number; accepted: number; latencies: number[] }> {
  const body = `From: <app@contoso.com>\r\nTo: <user@contoso.com>\r\nSubject: legit\r\n\r\n${'x'.repeat(2000)}\r\n.\r\n`;
  let sent = 0;
  let accepted = 0;
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (Date.now() < until) {
        let c: SmtpClient;
        try {
          c = await SmtpClient.connect(port, '127.0.0.1', ONPREM);
          await c.cmd('EHLO exchange.contoso.com');
        } catch {
          sent++; // a session refused is a message not accepted
          continue;
        }
        for (let m = 0; m < 10 && Date.now() < until; m++) {
          sent++;
          if (!(await c.cmd('MAIL FROM:<app@contoso.com>')).startsWith('250') || !(await c.cmd('RCPT TO:<user@contoso.com>')).startsWith('250') || !(await c.cmd('DATA')).startsWith('354')) break;
          const t0 = performance.now();
          c.write(body);
          const r = await c.reply().catch(() => '(none)');
          latencies.push(performance.now() - t0);
          if (r.startsWith('250')) accepted++;
        }
        await c.cmd('QUIT').catch(() => '');
        c.close();
      }
    }),
  );
  return { sent, accepted, latencies };
}

/** A raw connection from `from`, errors swallowed (the attacker does not care); `ended` once the gateway closed it. */
function raw(port: number, from: string): Promise<(net.Socket & { ended?: boolean }) | null> {
  return new Promise((resolve) => {
    const s: net.Socket & { ended?: boolean } = net.connect({ host: '127.0.0.1', port, localAddress: from });
    s.on('error', () => resolve(null));
    s.once('connect', () => resolve(s));
    s.once('end', () => (s.ended = true));
    s.once('close', () => (s.ended = true));
    s.resume(); // read (and drop) what the gateway says, as a client would
    s.setTimeout(60_000, () => s.destroy());
  });
}

/** Open `n` silent connections from `from(k)`, hold them until `until`, and report how many the gateway closed. */
async function holdOpen(port: number, n: number, from: (k: number) => string, until: number): Promise<string> {
  const socks = (await Promise.all(Array.from({ length: n }, (_, k) => raw(port, from(k))))).filter((s): s is net.Socket & { ended?: boolean } => !!s);
  await new Promise((r) => setTimeout(r, Math.max(0, until - Date.now())));
  const open = socks.filter((s) => !s.ended).length;
  socks.forEach((s) => s.destroy());
  return `${socks.length} connected, ${open} still open at the end`;
}

/** One attacker session: EHLO, MAIL, RCPT, DATA, then `feed` writes the content. */
async function attackerData(port: number, from: string, feed: (s: net.Socket) => Promise<void>): Promise<void> {
  let c: SmtpClient;
  try {
    c = await SmtpClient.connect(port, '127.0.0.1', from);
  } catch {
    return;
  }
  try {
    await c.cmd('EHLO attacker.example');
    await c.cmd('MAIL FROM:<x@attacker.example>');
    await c.cmd('RCPT TO:<user@contoso.com>');
    if ((await c.cmd('DATA')).startsWith('354')) {
      await feed((c as unknown as { socket: net.Socket }).socket);
      await Promise.race([c.reply(), new Promise((r) => setTimeout(r, 5000))]);
    }
  } catch {
    /* refused or closed: what the gateway should do */
  } finally {
    c.close();
  }
}

const write = (s: net.Socket, b: Buffer | string): Promise<void> => new Promise((r) => (s.write(b) ? r() : s.once('drain', () => r())));

/** `sessions` attackers from `from(i)`, each sending messages fed by `feed` until `until`; how many in all. */
async function flood(port: number, sessions: number, from: (i: number) => string, until: number, feed: (s: net.Socket) => Promise<void>): Promise<number> {
  let n = 0;
  await Promise.all(
    Array.from({ length: sessions }, async (_, i) => {
      while (Date.now() < until) {
        await attackerData(port, from(i), feed);
        n++;
      }
    }),
  );
  return n;
}

type Attack = { name: string; run: (ports: Record<string, number>, until: number) => Promise<string> };

const ATTACKS: Attack[] = [
  {
    name: 'ReDoS: 80 headers of 64 KB against a header rule',
    run: async (p, until) => {
      const header = Buffer.from(Array.from({ length: 80 }, () => `X-Note: confidential ${'a'.repeat(64 * 1024)}\r\n`).join(''));
      const n = await flood(p.mx!, 4, (i) => `127.0.1.${i + 1}`, until, (s) => write(s, Buffer.concat([header, Buffer.from('\r\nbody\r\n.\r\n')])));
      return `${n} messages of 5 MB of headers`;
    },
  },
  {
    name: 'oversized DATA: 30 MB against a 10 MB limit',
    run: async (p, until) => {
      const chunk = Buffer.alloc(1024 * 1024, 'a');
      const n = await flood(p.mx!, 2, (i) => `127.0.1.${10 + i}`, until, async (s) => {
        await write(s, 'Subject: big\r\n\r\n');
        for (let k = 0; k < 30 && !s.destroyed; k++) await write(s, chunk);
        await write(s, '\r\n.\r\n');
      });
      return `${n} messages`;
    },
  },
  {
    name: 'a header section that never ends (40 MB)',
    run: async (p, until) => {
      const lines = Buffer.from(`X-Filler: ${'h'.repeat(1000)}\r\n`.repeat(1024));
      const n = await flood(p.mx!, 2, (i) => `127.0.1.${20 + i}`, until, async (s) => {
        for (let k = 0; k < 40 && !s.destroyed; k++) await write(s, lines);
        await write(s, '.\r\n');
      });
      return `${n} messages`;
    },
  },
  {
    name: '2,000 idle connections from 100 addresses',
    run: (p, until) => holdOpen(p.mx!, 2000, (k) => `127.0.2.${1 + (k % 100)}`, until),
  },
  {
    name: '20 sessions sending one byte a second in DATA',
    run: async (p, until) => {
      let closed = 0;
      await Promise.all(Array.from({ length: 20 }, (_, i) =>
        attackerData(p.mx!, `127.0.1.${40 + i}`, async (s) => {
          while (Date.now() < until && !s.destroyed) {
            s.write('x');
            await new Promise((r) => setTimeout(r, 1000));
          }
          if (s.destroyed) closed++;
        }),
      ));
      return `${closed} closed by the gateway`;
    },
  },
  {
    name: '1,100 implicit-TLS connections that never send a ClientHello',
    run: (p, until) => holdOpen(p.smtps!, 1100, (k) => `127.0.3.${1 + (k % 100)}`, until),
  },
  {
    name: '5,000 refused RCPTs in one session',
    run: async (p) => {
      let answered = 0;
      let c: SmtpClient;
      try {
        c = await SmtpClient.connect(p.mx!, '127.0.0.1', '127.0.1.90');
      } catch {
        return 'refused at connect';
      }
      await c.cmd('EHLO attacker.example');
      await c.cmd('MAIL FROM:<x@attacker.example>');
      for (let i = 0; i < 5000 && !c.closed; i++) {
        const r = await c.cmd(`RCPT TO:<v${i}@victim.example>`).catch(() => '');
        if (r.startsWith('421')) break;
        if (r) answered++;
      }
      c.close();
      return `${answered} answered before 421`;
    },
  },
];

export async function attackScenario(kit: AttackKit): Promise<{ quiet: AttackFigures; attacks: AttackFigures[] }> {
  const dir = fs.mkdtempSync(path.join(kit.work, 'attack-'));
  const { proc, ports } = await startGateway(kit, policy(kit, dir));
  const pct99 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(0.99 * xs.length))] ?? NaN;
  const measure = async (name: string, attack?: Attack): Promise<AttackFigures> => {
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, kit.rssMb(proc.pid!))), 200);
    const until = Date.now() + SECONDS * 1000;
    const [l, detail] = await Promise.all([legit(ports.mx!, until), attack ? attack.run(ports, until) : Promise.resolve('')]);
    clearInterval(sampler);
    await new Promise((r) => setTimeout(r, 1500)); // the attack's sockets close before the next one
    return { attack: name, legitSent: l.sent, legitAccepted: l.accepted, legitP99Ms: pct99(l.latencies), peakRssMb: peak, attackDetail: detail };
  };
  const quiet = await measure('quiet');
  const attacks: AttackFigures[] = [];
  for (const a of ATTACKS) attacks.push(await measure(a.name, a));
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  return { quiet, attacks };
}

export function printAttacks(r: { quiet: AttackFigures; attacks: AttackFigures[] }, f: (x: number | undefined, d?: number) => string, met: (ok: boolean) => string): string[] {
  const q = r.quiet;
  return [
    '',
    `under attack: the on-premises client's messages (4 sessions, 2 KB) during each attack (${SECONDS} s), beside a quiet run`,
    '| attack | legit accepted | legit p99 (ms) | peak RSS (MB) | what the attack got |',
    '|---|---:|---:|---:|---|',
    `| quiet | ${q.legitAccepted}/${q.legitSent} | ${f(q.legitP99Ms, 1)} | ${f(q.peakRssMb)} | |`,
    ...r.attacks.map((a) => `| ${a.attack} | ${a.legitAccepted}/${a.legitSent} | ${f(a.legitP99Ms, 1)} | ${f(a.peakRssMb)} | ${a.attackDetail} |`),
    '',
    'targets (issue 20, under attack):',
    ...r.attacks.map(
      (a) =>
        `  ${a.attack}: 100 % accepted ${met(a.legitAccepted === a.legitSent && a.legitSent > 0)}; p99 <= 2 x quiet (${f(a.legitP99Ms / q.legitP99Ms, 2)} x) ${met(a.legitP99Ms <= 2 * q.legitP99Ms)}; RSS <= 300 MB (${f(a.peakRssMb)}) ${met(a.peakRssMb <= 300)}`,
    ),
  ];
}
