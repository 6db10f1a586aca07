// A hand-driven SMTP client session, one command at a time: for the probes that need more
// control than nodemailer gives — `validate` (reports each step) and the recipient callout
// (stops after RCPT). Timers are the caller's: arm them before awaiting `connected()`.
import net from 'node:net';
import tls from 'node:tls';
import { ReplyReader, type SmtpReply } from '../mail/reply-reader.js';
import type { NextHop } from './resolve.js';

export class SmtpDialogue {
  /** The TCP connection. */
  readonly raw: net.Socket;
  /** Where commands go: the TCP connection, or the TLS socket after `starttls`. */
  socket: net.Socket;
  private readonly reader = new ReplyReader();

  constructor(
    hop: NextHop,
    private readonly replyTimeoutMs: number,
  ) {
    this.raw = net.connect({ host: hop.address, port: hop.port });
    this.raw.on('error', () => {}); // failures surface as rejections of connected() and ask()
    this.socket = this.raw;
  }

  connected(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.raw.once('connect', () => {
        this.reader.attach(this.raw);
        resolve();
      });
      this.raw.once('error', reject);
    });
  }

  /** Sends a command (none: reads the greeting) and returns the whole reply. */
  ask(line: string | null): Promise<SmtpReply> {
    if (line !== null) this.socket.write(`${line}\r\n`);
    return this.reader.next(this.replyTimeoutMs);
  }

  /** After a 220 to STARTTLS: TLS over the connection, resolved once the handshake is done. */
  async starttls(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
    this.reader.detach(this.raw);
    const secure = tls.connect({ ...options, socket: this.raw });
    secure.on('error', () => {});
    this.socket = secure;
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.reader.attach(secure);
    return secure;
  }

  /** Says QUIT and ends our side; `destroy()` closes the connection whatever the peer does. */
  quit(): void {
    this.socket.end('QUIT\r\n');
  }

  destroy(): void {
    this.socket.destroy();
    this.raw.destroy();
  }
}
