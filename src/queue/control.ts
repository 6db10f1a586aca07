// The queue's control channel (SPEC §6): `connector-gateway queue retry|delete|hold|release` act through the
// running daemon, so that no command races a delivery attempt (a message deleted while it is
// being delivered must not be written back by the attempt). The daemon listens on a unix
// socket in the queue directory — only who may enter that directory may use it — and answers
// one JSON request per connection with one JSON reply. When no daemon answers, the commands act
// on the files directly (nothing else is touching them then).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { isQueueId } from './spool.js';

export const CONTROL_SOCKET = '.control.sock';

export type ControlRequest =
  | { op: 'retry'; id: string | null }
  | { op: 'hold' | 'release'; id: string | null; destination: string | null }
  | { op: 'delete'; id: string }
  | { op: 'tls-report'; now: boolean }
  | { op: 'reload' }
  | { op: 'drain'; to: string };
export type ControlReply = { ok: true; count: number; lines?: string[] } | { ok: false; error: string };

export interface ControlHandler {
  retry(id: string | null): Promise<number>;
  /** Puts the message (null: every one) on hold; returns how many are held. */
  hold(id: string | null, destination: string | null): Promise<number>;
  /** Releases the held message (null: every one); returns how many. */
  release(id: string | null, destination: string | null): Promise<number>;
  /** true when the message existed (deleted now, or as soon as its attempt in flight ends). */
  delete(id: string): Promise<boolean>;
  /** Sends TLS reports (today so far with `now`, else yesterday's); one line per rua. */
  tlsReport?(now: boolean): Promise<string[]>;
  /** Reloads the policy file (`connector-gateway reload`): the errors when it is refused. */
  reload?(): Promise<{ applied: boolean; lines: string[] }>;
  /** Drains the node to the peer HOST:PORT (SPEC §12): how many messages are left, and a line for each. */
  drain?(to: string): Promise<{ left: number; lines: string[] }>;
}

export function controlSocketPath(queueDir: string): string {
  return path.join(queueDir, CONTROL_SOCKET);
}

/**
 * A request as the daemon accepts it. Every id is a queue id (the spool's own form: it becomes a
 * file name, so `../victim` must never reach the spool) — checked here, in the daemon, whatever
 * the client checked.
 */
export function parseRequest(line: string): ControlRequest | null {
  try {
    const r = JSON.parse(line) as { op?: unknown; id?: unknown };
    const id = r.id === null ? null : typeof r.id === 'string' && isQueueId(r.id) ? r.id : undefined;
    if (r.op === 'reload') return { op: 'reload' };
    const to = (r as { to?: unknown }).to;
    if (r.op === 'drain') return typeof to === 'string' && to.length <= 300 ? { op: 'drain', to } : null;
    if (id === undefined && r.op !== 'tls-report') return null;
    if (r.op === 'retry' && id !== undefined) return { op: 'retry', id };
    const destination = (r as { destination?: unknown }).destination ?? null;
    if ((r.op === 'hold' || r.op === 'release') && id !== undefined && (destination === null || typeof destination === 'string')) return { op: r.op, id, destination };
    if (r.op === 'delete' && typeof id === 'string') return { op: 'delete', id };
    if (r.op === 'tls-report' && typeof (r as { now?: unknown }).now === 'boolean') return { op: 'tls-report', now: (r as { now: boolean }).now };
  } catch {
    /* not JSON */
  }
  return null;
}

async function answer(handler: ControlHandler, req: ControlRequest): Promise<ControlReply> {
  if (req.op === 'delete') {
    const found = await handler.delete(req.id);
    return found ? { ok: true, count: 1 } : { ok: false, error: `no message ${req.id}` };
  }
  if (req.op === 'tls-report') {
    if (!handler.tlsReport) return { ok: false, error: 'TLS reporting is off (gateway.outbound.tlsReporting: false)' };
    const lines = await handler.tlsReport(req.now);
    return { ok: true, count: lines.length, lines };
  }
  if (req.op === 'reload') {
    if (!handler.reload) return { ok: false, error: 'this daemon cannot reload through the control channel' };
    const r = await handler.reload();
    return r.applied ? { ok: true, count: 1, lines: r.lines } : { ok: false, error: r.lines.join('\n') };
  }
  if (req.op === 'drain') {
    if (!handler.drain) return { ok: false, error: 'this daemon cannot drain' };
    const r = await handler.drain(req.to);
    return { ok: true, count: r.left, lines: r.lines };
  }
  if (req.op === 'retry') return { ok: true, count: await handler.retry(req.id) };
  return { ok: true, count: await handler[req.op](req.id, req.destination) }; // hold, release
}

/**
 * Starts the channel. A socket file left by a daemon that died is replaced; one that a live
 * daemon answers on means two daemons would share the queue, which is refused.
 */
export async function startControl(queueDir: string, handler: ControlHandler): Promise<net.Server> {
  const file = controlSocketPath(queueDir);
  fs.mkdirSync(queueDir, { recursive: true });
  if (fs.existsSync(file)) {
    if (await isAnswering(file)) throw new Error(`another gateway is running on the queue ${queueDir} (${file} answers)`);
    fs.rmSync(file, { force: true });
  }
  const server = net.createServer((socket) => {
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d: string) => {
      buf += d;
      if (buf.length > 4096) return socket.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const req = parseRequest(buf.slice(0, nl));
      const reply: Promise<ControlReply> = req ? answer(handler, req) : Promise.resolve({ ok: false, error: 'bad request' });
      reply.then(
        (r) => socket.end(JSON.stringify(r) + '\n'),
        (e: Error) => socket.end(JSON.stringify({ ok: false, error: e.message }) + '\n'),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => {
      server.off('error', reject);
      resolve();
    });
  });
  fs.chmodSync(file, 0o600);
  return server;
}

function isAnswering(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(file);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Sends a request to the daemon on this queue; null when none answers (act on the files then). */
export function askDaemon(queueDir: string, req: ControlRequest, timeoutMs = 30_000): Promise<ControlReply | null> {
  const file = controlSocketPath(queueDir);
  if (!fs.existsSync(file)) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const s = net.connect(file);
    let buf = '';
    let connected = false;
    s.setEncoding('utf8');
    s.setTimeout(timeoutMs, () => s.destroy(new Error(`the daemon did not answer within ${timeoutMs} ms`)));
    s.once('connect', () => {
      connected = true;
      s.write(JSON.stringify(req) + '\n');
    });
    s.on('data', (d: string) => (buf += d));
    s.once('error', (e: NodeJS.ErrnoException) => {
      // A socket file without a daemon behind it: a daemon that died; no one else touches the files.
      if (!connected && (e.code === 'ECONNREFUSED' || e.code === 'ENOENT')) resolve(null);
      else reject(e);
    });
    s.once('close', () => {
      if (!connected) return;
      try {
        resolve(JSON.parse(buf) as ControlReply);
      } catch {
        reject(new Error(`the daemon's answer was not understood: ${buf.slice(0, 200)}`));
      }
    });
  });
}
