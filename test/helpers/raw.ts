// A raw SMTP client over a real socket, for what polite clients will not send (bare LF,
// exact SIZE= values, pipelining tricks). Replies are read whole (multi-line aware).
import net from 'node:net';
import tls from 'node:tls';
import { ReplyReader } from '../../src/mail/reply-reader.js';

export class RawSmtp {
  private reader = new ReplyReader();

  private constructor(private socket: net.Socket | tls.TLSSocket) {
    this.reader.attach(socket);
  }

  get closed(): boolean {
    return this.reader.closed;
  }

  /** Wraps a socket that is already connected (e.g. after a PROXY header was written). */
  static async wrap(socket: net.Socket): Promise<{ c: RawSmtp; greeting: string }> {
    const c = new RawSmtp(socket);
    return { c, greeting: await c.reply() };
  }

  static async connect(port: number, opts: { localAddress?: string; implicitTls?: boolean } = {}): Promise<{ c: RawSmtp; greeting: string }> {
    const socket = opts.implicitTls
      ? tls.connect({ host: '127.0.0.1', port, localAddress: opts.localAddress, rejectUnauthorized: false })
      : net.connect({ host: '127.0.0.1', port, localAddress: opts.localAddress });
    return RawSmtp.wrap(socket);
  }

  /** The final line of the next complete reply. */
  async reply(timeoutMs = 10_000): Promise<string> {
    return (await this.reader.next(timeoutMs)).last;
  }

  /** The underlying socket (for tests that take over the connection). */
  get raw(): net.Socket {
    return this.socket;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async cmd(line: string): Promise<string> {
    this.write(line + '\r\n');
    return this.reply();
  }

  async starttls(opts: tls.ConnectionOptions = {}): Promise<string> {
    const r = await this.cmd('STARTTLS');
    if (!r.startsWith('220')) return r;
    this.reader.detach(this.socket);
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false, ...opts });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.reader.attach(secure);
    return r;
  }

  /** Sends DATA, the raw content (must end with the terminator you want), and returns the final reply. */
  async data(raw: string | Buffer): Promise<string> {
    const r = await this.cmd('DATA');
    if (!r.startsWith('354')) return r;
    this.write(raw);
    return this.reply();
  }

  close(): void {
    this.socket.destroy();
  }
}
