// A raw SMTP client over a real socket, for what polite clients will not send (bare LF,
// exact SIZE= values, pipelining tricks). Replies are read whole (multi-line aware).
import net from 'node:net';
import tls from 'node:tls';

export class RawSmtp {
  private buf = '';
  private waiting: ((line: string) => void) | null = null;
  private lines: string[] = [];
  closed = false;

  private constructor(private socket: net.Socket | tls.TLSSocket) {
    this.attach(socket);
  }

  private attach(s: net.Socket | tls.TLSSocket): void {
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      let nl: number;
      while ((nl = this.buf.indexOf('\r\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 2);
        this.lines.push(line);
      }
      this.flush();
    });
    s.on('close', () => {
      this.closed = true;
      this.flush();
    });
    s.on('error', () => {});
  }

  private flush(): void {
    if (!this.waiting) return;
    const idx = this.lines.findIndex((l) => /^\d{3} /.test(l) || l.length < 4);
    if (idx >= 0) {
      const reply = this.lines.splice(0, idx + 1);
      const w = this.waiting;
      this.waiting = null;
      w(reply[reply.length - 1]!);
    } else if (this.closed) {
      const w = this.waiting;
      this.waiting = null;
      w('(closed)');
    }
  }

  static async connect(port: number, opts: { localAddress?: string; implicitTls?: boolean } = {}): Promise<{ c: RawSmtp; greeting: string }> {
    const socket = opts.implicitTls
      ? tls.connect({ host: '127.0.0.1', port, localAddress: opts.localAddress, rejectUnauthorized: false })
      : net.connect({ host: '127.0.0.1', port, localAddress: opts.localAddress });
    const c = new RawSmtp(socket);
    const greeting = await c.reply();
    return { c, greeting };
  }

  /** Next complete reply (its last line). */
  reply(timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no reply in time')), timeoutMs);
      this.waiting = (l) => {
        clearTimeout(t);
        resolve(l);
      };
      this.flush();
    });
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
    const plain = this.socket;
    plain.removeAllListeners('data');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false, ...opts });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
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
