// SPEC §4/§5 at-least-once through a worker kill at any instant (issue 20, item 1): an SMTP
// worker process hands each committed message to the first process *before* it answers 250, so
// a worker killed right after its 250 leaves nothing that only a restart would find. Each
// message is acknowledged, the worker is killed with SIGKILL the moment the 250 arrives, and
// every acknowledged message must reach the next hop — with no restart — and be in the trace.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { RawSmtp } from '../helpers/raw.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { children, freePort, until } from '../helpers/wait.js';

let dir: string;
let file: string;
let gw: RunningGateway;
let sink: Sink;

beforeAll(async () => {
  dir = tmpDir('handover');
  const pki = makePki(path.join(dir, 'pki'));
  sink = await startSink();
  file = writePolicy(dir, {
    // A fixed port: with port 0, a replacement of the only worker would listen on another one.
    gateway: testGateway(dir, pki, { workers: 1, listeners: [{ name: 'mx', address: '127.0.0.1', port: await freePort() }], queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] } }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    outboundConnectors: [{ name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [`[127.0.0.1]:${sink.port}`] }],
  });
  gw = await startGateway(file);
});
afterAll(async () => {
  await gw?.stop();
  await sink?.close();
});

/** A session with the worker that listens now (a replacement takes a moment to listen). */
async function greeted(): Promise<RawSmtp> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { c, greeting } = await RawSmtp.connect(gw.port).catch(() => ({ c: null, greeting: '' }));
    if (c && greeting.startsWith('220')) return c;
    c?.close();
    if (Date.now() > deadline) throw new Error(`no greeting: ${greeting}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a worker killed right after its 250', () => {
  it('every acknowledged message is delivered without a restart, and traced', async () => {
    const ROUNDS = 20;
    const acknowledged: Array<{ qid: string; messageId: string }> = [];
    for (let n = 0; n < ROUNDS; n++) {
      await until(() => children(gw.proc.pid!).length === 1, 15_000, 'one worker');
      const [worker] = children(gw.proc.pid!);
      const c = await greeted();
      await c.cmd('EHLO killer.example');
      expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
      expect(await c.cmd(`RCPT TO:<u${n}@contoso.com>`)).toMatch(/^250/);
      expect(await c.cmd('DATA')).toMatch(/^354/);
      c.raw.write(`Subject: ${n}\r\nMessage-ID: <k${n}@example.org>\r\n\r\nbody ${n}\r\n.\r\n`);
      const reply = await c.reply();
      process.kill(worker!, 'SIGKILL'); // the moment the 250 is read
      c.close();
      const qid = /^250 2\.6\.0 Queued as (\S+)/.exec(reply)?.[1];
      expect(qid, reply).toBeDefined();
      acknowledged.push({ qid: qid!, messageId: `k${n}@example.org` });
      await until(() => !children(gw.proc.pid!).includes(worker!), 10_000, 'the worker to be gone');
    }
    // No restart: the first process delivers what the killed workers acknowledged.
    await sink.waitFor(ROUNDS, 30_000);
    const sunk = new Set(sink.messages.map((m) => /Message-ID: <([^>]+)>/i.exec(m.raw)?.[1]));
    expect(acknowledged.filter((a) => !sunk.has(a.messageId))).toEqual([]);
    expect(gw.events('worker-exited').length).toBeGreaterThanOrEqual(ROUNDS);
    // The trace knows each one from its 'queued' event on (the worker's lines reach it first).
    for (const a of acknowledged) {
      const r = await runCli(['trace', '--queue-id', a.qid, '--json', '--config', file], dir);
      expect(r.code, r.stderr).toBe(0);
      const found = JSON.parse(r.stdout) as { qid: string; messageId: string | null; timeline: Array<{ event: string }> };
      expect(found, a.qid).toMatchObject({ qid: a.qid, messageId: a.messageId });
      expect(found.timeline.map((e) => e.event)).toContain('queued');
    }
  }, 120_000);
});
