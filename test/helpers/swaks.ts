// swaks, the real SMTP test client, and a reader for its transcript.
import { spawn } from 'node:child_process';

export interface SwaksResult {
  code: number | null;
  transcript: string;
  /** [client command, final server reply line] pairs in order. */
  exchanges: Array<{ command: string; reply: string }>;
}

export function swaks(args: string[], timeoutMs = 20_000): Promise<SwaksResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('swaks', ['--timeout', '10', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`swaks timed out:\n${out}`));
    }, timeoutMs);
    p.on('error', (e) => reject(e));
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, transcript: out, exchanges: parse(out) });
    });
  });
}

function parse(transcript: string): Array<{ command: string; reply: string }> {
  const out: Array<{ command: string; reply: string }> = [];
  let command = '(connect)';
  let reply = '';
  for (const raw of transcript.split('\n')) {
    const m = /^\s*(->|~>|<-|<~|<\*\*|<~\*)\s(.*)$/.exec(raw);
    if (!m) continue;
    const [, dir, text] = m;
    if (dir === '->' || dir === '~>') {
      if (reply) out.push({ command, reply });
      command = text!.trim();
      reply = '';
    } else {
      reply = text!.trim();
    }
  }
  if (reply) out.push({ command, reply });
  return out;
}

/** The final reply line to the first command starting with `prefix` (e.g. "MAIL FROM", "RCPT TO", "."). */
export function replyTo(r: SwaksResult, prefix: string): string {
  const x = r.exchanges.find((e) => e.command.toUpperCase().startsWith(prefix.toUpperCase()));
  if (!x) throw new Error(`no "${prefix}" in transcript:\n${r.transcript}`);
  return x.reply;
}

/** Reply to the end of DATA: the line after the message body was sent. */
export function dataReply(r: SwaksResult): string {
  const i = r.exchanges.findIndex((e) => e.command.toUpperCase() === 'DATA');
  if (i < 0) throw new Error(`no DATA in transcript:\n${r.transcript}`);
  const after = r.exchanges[i + 1];
  if (!after) throw new Error(`no reply after DATA:\n${r.transcript}`);
  return after.reply;
}
