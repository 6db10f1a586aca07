// The backlog scenario (issue 13): the next hop is down while N messages arrive, the MTA is
// restarted with them waiting, then the next hop comes back and the queue is flushed. The same
// steps for the gateway and for Postfix; what is measured:
//   acceptance of the first and of the last tenth (does it slow as the queue grows?),
//   restart → the first new message's 250 (from the start command, the process's start included),
//   RSS with N waiting (after the restart, the queue read),
//   connections to the dead next hop (once per retry interval, or once per message?),
//   drain (msgs/s from the flush to the sink's last message), and whether every accepted
//   Message-ID reached the sink exactly once.
import fs from 'node:fs';
import net from 'node:net';
import { SmtpClient } from './smtp-client.js';

export interface BacklogTarget {
  name: string;
  port: number;
  /** Starts it; resolves when it listens. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Resolves when it has read its queue after a start (the gateway logs queue-loaded). */
  loaded(): Promise<void>;
  /** `queue retry` / `postqueue -f`. */
  flush(): Promise<void>;
  rssMb(): number;
}

export interface LoadResult {
  accepted: number;
  errors: number;
  start: number;
  end: number;
  firstTenthPerSec: number;
  lastTenthPerSec: number;
}

export interface SinkDone {
  done: number;
  count: number;
  unique: number;
  duplicates: number;
}

export interface BacklogKit {
  /** The CA file the MTAs' certificates are signed by. */
  ca: string;
  sinkPort: number;
  /** Sends `total` messages (4 KB) over `sessions` STARTTLS sessions. */
  load(port: number, total: number): Promise<LoadResult>;
  /** Starts the real sink; `done` resolves when it has `expect` messages. */
  sink(expect: number): Promise<{ done: Promise<SinkDone>; stop(): void }>;
}

export interface BacklogFigures {
  messages: number;
  accepted: number;
  firstTenthPerSec: number;
  lastTenthPerSec: number;
  restartToFirst250Ms: number;
  rssWaitingMb: number;
  deadHopConnections: number;
  deadHopSeconds: number;
  drainPerSec: number;
  delivered: number;
  unique: number;
  duplicates: number;
}

/** The next hop while it is down: takes each TCP connection and drops it, counting. */
async function deadHop(port: number): Promise<{ connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const s = net.createServer((socket) => {
    n++;
    socket.on('error', () => {});
    socket.destroy();
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', () => r()));
  return { connections: () => n, close: () => new Promise<void>((r) => s.close(() => r())) };
}

/** Tries one message every 20 ms until it gets a 250; the time from `t0`. */
async function firstAccepted(port: number, caFile: string, t0: number, limitMs = 600_000): Promise<number> {
  const ca = fs.readFileSync(caFile, 'utf8');
  for (;;) {
    if (Date.now() - t0 > limitMs) throw new Error(`no 250 within ${limitMs} ms of the restart`);
    let c: SmtpClient | null = null;
    try {
      c = await SmtpClient.connect(port, '127.0.0.1', '127.0.9.9');
      await c.starttls(ca, 'restart.bench.example');
      if ((await c.cmd('MAIL FROM:<load@bench.example>')).startsWith('250') && (await c.cmd('RCPT TO:<rcpt@bench.test>')).startsWith('250') && (await c.cmd('DATA')).startsWith('354')) {
        c.write('From: <load@bench.example>\r\nSubject: after the restart\r\nMessage-ID: <restart@bench.example>\r\n\r\nfirst\r\n.\r\n');
        if ((await c.reply()).startsWith('250')) return Date.now() - t0;
      }
    } catch {
      /* not listening yet */
    } finally {
      c?.close();
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function backlogScenario(target: BacklogTarget, kit: BacklogKit, n: number): Promise<BacklogFigures> {
  const dead = await deadHop(kit.sinkPort);
  const deadSince = Date.now();
  await target.start();
  const load = await kit.load(target.port, n);

  // Restart with the backlog waiting; the first new message, and memory once the queue is read.
  await target.stop();
  const t0 = Date.now();
  const starting = target.start();
  const restartToFirst250Ms = await firstAccepted(target.port, kit.ca, t0);
  await starting;
  await target.loaded();
  let rss = target.rssMb();
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 200));
    rss = Math.max(rss, target.rssMb());
  }

  // The next hop comes back; the queue is flushed.
  const deadHopConnections = dead.connections();
  const deadHopSeconds = (Date.now() - deadSince) / 1000;
  await dead.close();
  const expect = load.accepted + 1; // and the message sent after the restart
  const sink = await kit.sink(expect);
  const tFlush = Date.now();
  await target.flush();
  const done = await sink.done;
  sink.stop();
  await target.stop();
  return {
    messages: n,
    accepted: load.accepted,
    firstTenthPerSec: load.firstTenthPerSec,
    lastTenthPerSec: load.lastTenthPerSec,
    restartToFirst250Ms,
    rssWaitingMb: rss,
    deadHopConnections,
    deadHopSeconds,
    drainPerSec: expect / ((done.done - tFlush) / 1000),
    delivered: done.count,
    unique: done.unique,
    duplicates: done.duplicates,
  };
}
