// The base layer (imports nothing of ours). Reads SMTP replies from a socket: lines are collected until a final "NNN " line completes a
// reply. Used by the probes of delivery/dialogue.ts, the benchmark's load generator and the
// tests' raw client.
import type { Socket } from 'node:net';

export interface SmtpReply {
  /** The final line ("250 2.0.0 OK"), or "(closed)" when the connection ended first. */
  last: string;
  lines: string[];
}

export class ReplyReader {
  private buf = '';
  private lines: string[] = [];
  private waiter: ((r: SmtpReply) => void) | null = null;
  private onData = (d: Buffer) => this.feed(d);
  private onClose = () => {
    this.closed = true;
    this.flush();
  };
  closed = false;

  attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', () => {});
  }

  /** Stops reading from a socket (before a TLS upgrade hands it to TLS). */
  detach(socket: Socket): void {
    socket.removeListener('data', this.onData);
    socket.removeListener('close', this.onClose);
  }

  private feed(d: Buffer): void {
    this.buf += d.toString('latin1');
    let i: number;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      this.lines.push(this.buf.slice(0, i));
      this.buf = this.buf.slice(i + 2);
    }
    this.flush();
  }

  private flush(): void {
    if (!this.waiter) return;
    // A reply ends with "NNN " (or a line too short to be a continuation, which a broken peer may send).
    const end = this.lines.findIndex((l) => /^\d{3} /.test(l) || l.length < 4);
    let reply: SmtpReply | null = null;
    if (end >= 0) {
      const lines = this.lines.splice(0, end + 1);
      reply = { last: lines[lines.length - 1]!, lines };
    } else if (this.closed) reply = { last: '(closed)', lines: [] };
    if (reply) {
      const w = this.waiter;
      this.waiter = null;
      w(reply);
    }
  }

  /** The next complete reply; rejects after timeoutMs. */
  next(timeoutMs = 30_000): Promise<SmtpReply> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = null;
        reject(new Error('no reply in time'));
      }, timeoutMs);
      this.waiter = (r) => {
        clearTimeout(t);
        resolve(r);
      };
      this.flush();
    });
  }
}
