// A minimal SMTP client for the load generator: STARTTLS, then transactions, replies read whole.
import net from 'node:net';
import tls from 'node:tls';

export class SmtpClient {
  private buf = '';
  private lines: string[] = [];
  private waiter: ((reply: string) => void) | null = null;
  private socket: net.Socket;
  closed = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.attach(socket);
  }

  private attach(s: net.Socket): void {
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      let i: number;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 2);
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
    if (!this.waiter) return;
    const end = this.lines.findIndex((l) => /^\d{3} /.test(l));
    if (end >= 0) {
      const reply = this.lines.splice(0, end + 1).pop()!;
      const w = this.waiter;
      this.waiter = null;
      w(reply);
    } else if (this.closed) {
      const w = this.waiter;
      this.waiter = null;
      w('(closed)');
    }
  }

  reply(): Promise<string> {
    return new Promise((resolve) => {
      this.waiter = resolve;
      this.flush();
    });
  }

  async cmd(line: string): Promise<string> {
    this.socket.write(line + '\r\n');
    return this.reply();
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<SmtpClient> {
    const s = net.connect({ port, host, localAddress });
    await new Promise<void>((res, rej) => {
      s.once('connect', () => res());
      s.once('error', rej);
    });
    const c = new SmtpClient(s);
    const greeting = await c.reply();
    if (!greeting.startsWith('220')) throw new Error(`greeting: ${greeting}`);
    return c;
  }

  async starttls(ca: string | undefined, ehloName: string): Promise<void> {
    const e = await this.cmd(`EHLO ${ehloName}`);
    if (!e.startsWith('250')) throw new Error(`EHLO: ${e}`);
    const r = await this.cmd('STARTTLS');
    if (!r.startsWith('220')) throw new Error(`STARTTLS: ${r}`);
    this.socket.removeAllListeners('data');
    const sec = tls.connect({ socket: this.socket, ca, rejectUnauthorized: !!ca, servername: 'localhost' });
    await new Promise<void>((res, rej) => {
      sec.once('secureConnect', () => res());
      sec.once('error', rej);
    });
    this.socket = sec;
    this.attach(sec);
    const e2 = await this.cmd(`EHLO ${ehloName}`);
    if (!e2.startsWith('250')) throw new Error(`EHLO after TLS: ${e2}`);
  }

  close(): void {
    this.socket.destroy();
  }
}
