// Load generator (its own process, outside what is measured): N parallel sessions, each
// STARTTLS then M messages of S bytes; latency from the end of DATA to the 250.
// Modes: "send" (default) and "idle" (open N TLS sessions and hold them until SIGTERM).
import fs from 'node:fs';
import { SmtpClient } from './smtp-client.js';

interface Args {
  mode: 'send' | 'idle';
  port: number;
  sessions: number;
  messages: number;
  size: number;
  ca: string;
  to: string;
}

const a = JSON.parse(process.env.LOADGEN ?? '{}') as Args;
const ca = fs.readFileSync(a.ca, 'utf8');

function body(id: string): string {
  const head = `From: <load@bench.example>\r\nTo: <${a.to}>\r\nSubject: bench ${id}\r\nMessage-ID: <${id}@bench.example>\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz.\r\n';
  let b = head;
  while (b.length < a.size) b += line;
  return b + '.\r\n';
}

/** When each 250 came (ms since the epoch): the acceptance of the first and last tenths. */
const acceptedAt: number[] = [];

async function session(k: number, latencies: number[], errors: string[]): Promise<number> {
  let ok = 0;
  // Spread sources over 127.0.x.y so per-IP limits are those of real, distinct clients.
  const src = `127.0.${10 + Math.floor(k / 250)}.${1 + (k % 250)}`;
  let c: SmtpClient;
  try {
    c = await SmtpClient.connect(a.port, '127.0.0.1', src);
    await c.starttls(ca, `load${k}.bench.example`);
  } catch (e) {
    errors.push(`session ${k}: ${(e as Error).message}`);
    return 0;
  }
  for (let m = 0; m < a.messages; m++) {
    const id = `s${k}m${m}`;
    if (!(await c.cmd('MAIL FROM:<load@bench.example>')).startsWith('250')) {
      errors.push(`${id}: MAIL`);
      continue;
    }
    const rc = await c.cmd(`RCPT TO:<${a.to}>`);
    if (!rc.startsWith('250')) {
      errors.push(`${id}: RCPT ${rc}`);
      await c.cmd('RSET');
      continue;
    }
    if (!(await c.cmd('DATA')).startsWith('354')) {
      errors.push(`${id}: DATA`);
      continue;
    }
    const t0 = process.hrtime.bigint();
    c.write(body(id));
    const r = await c.reply();
    latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.startsWith('250')) {
      ok++;
      acceptedAt.push(Date.now());
    } else errors.push(`${id}: ${r}`);
  }
  await c.cmd('QUIT').catch(() => '');
  c.close();
  return ok;
}

async function idle(): Promise<void> {
  const clients: SmtpClient[] = [];
  let failed = 0;
  const batch = 100;
  for (let i = 0; i < a.sessions; i += batch) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(batch, a.sessions - i) }, async (_, j) => {
        const k = i + j;
        try {
          const c = await SmtpClient.connect(a.port, '127.0.0.1', `127.0.${10 + Math.floor(k / 250)}.${1 + (k % 250)}`);
          await c.starttls(ca, `idle${k}.bench.example`);
          return c;
        } catch {
          failed++;
          return null;
        }
      }),
    );
    for (const c of opened) if (c) clients.push(c);
  }
  process.stdout.write(JSON.stringify({ established: clients.length, failed }) + '\n');
  // Keep the sessions alive (NOOP well inside the idle timeout) until told to stop.
  const keep = setInterval(() => clients.forEach((c) => c.write('NOOP\r\n')), 20_000);
  process.on('SIGTERM', () => {
    clearInterval(keep);
    clients.forEach((c) => c.close());
    process.exit(0);
  });
}

async function main(): Promise<void> {
  if (a.mode === 'idle') return idle();
  const latencies: number[] = [];
  const errors: string[] = [];
  const start = Date.now();
  const counts = await Promise.all(Array.from({ length: a.sessions }, (_, k) => session(k, latencies, errors)));
  const end = Date.now();
  latencies.sort((x, y) => x - y);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  process.stdout.write(
    JSON.stringify({ accepted: counts.reduce((s, n) => s + n, 0), errors: errors.length, firstErrors: errors.slice(0, 5), start, end, p50: pct(50), p99: pct(99), ...tenths(start, end) }) + '\n',
  );
}

void main();

/** msgs/s over the first and the last tenth of the messages accepted. */
function tenths(start: number, end: number): { firstTenthPerSec: number; lastTenthPerSec: number } {
  const n = acceptedAt.length;
  const tenth = Math.max(1, Math.floor(n / 10));
  const firstEnd = acceptedAt[tenth - 1] ?? end;
  const lastStart = acceptedAt[n - tenth - 1] ?? start;
  return { firstTenthPerSec: tenth / (Math.max(1, firstEnd - start) / 1000), lastTenthPerSec: tenth / (Math.max(1, end - lastStart) / 1000) };
}
