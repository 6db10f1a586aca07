// A minimal SMTP client for the load generator: STARTTLS, then transactions, replies read whole.
import net from 'node:net';
import tls from 'node:tls';
import { ReplyReader } from '../src/mail/reply-reader.js';

export class SmtpClient {
  private reader = new ReplyReader();
  private socket: net.Socket;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.reader.attach(socket);
  }

  get closed(): boolean {
    return this.reader.closed;
  }

  async reply(): Promise<string> {
    return (await this.reader.next(120_000)).last;
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
    this.reader.detach(this.socket);
    const sec = tls.connect({ socket: this.socket, ca, rejectUnauthorized: !!ca, servername: 'localhost' });
    await new Promise<void>((res, rej) => {
      sec.once('secureConnect', () => res());
      sec.once('error', rej);
    });
    this.socket = sec;
    this.reader.attach(sec);
    const e2 = await this.cmd(`EHLO ${ehloName}`);
    if (!e2.startsWith('250')) throw new Error(`EHLO after TLS: ${e2}`);
  }

  close(): void {
    this.socket.destroy();
  }
}
