// Downstream SMTP servers for the tests: real smtp-server listeners with their own certificates.
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type net from 'node:net';

export interface SunkMessage {
  from: string;
  to: string[];
  secure: boolean;
  raw: string;
  tlsName: string | null;
  bodyType: string;
  smtpUtf8: boolean;
  /** RFC 3461 parameters as received: MAIL FROM's RET/ENVID, each RCPT's NOTIFY/ORCPT. */
  dsn: { ret: string | null; envid: string | null } | null;
  rcptDsn: Record<string, { notify?: string[]; orcpt?: string } | undefined>;
  /** MAIL FROM carried REQUIRETLS (RFC 8689). */
  requireTls: boolean;
}

export interface Sink {
  port: number;
  host: string;
  messages: SunkMessage[];
  /** Sessions that issued MAIL FROM without TLS. */
  plaintextTransactions: number;
  /** TCP connections accepted. */
  connections: number;
  close: () => Promise<void>;
  waitFor: (n: number, timeoutMs?: number) => Promise<SunkMessage[]>;
}

export interface SinkOptions {
  cert?: { cert: string; key: string }; // PEM text
  noStartTls?: boolean;
  host?: string;
  port?: number;
  /** false: do not offer DSN (RFC 3461). */
  dsn?: boolean;
  /** Offer REQUIRETLS (RFC 8689) after STARTTLS. */
  requireTls?: boolean;
  /** Reply for a recipient: null = accept, else [code, text]. */
  rcpt?: (address: string, session: SMTPServerSession) => [number, string] | null;
}

export async function startSink(o: SinkOptions = {}): Promise<Sink> {
  const messages: SunkMessage[] = [];
  let plaintext = 0;
  let connections = 0;
  const waiters: Array<() => void> = [];
  const options: SMTPServerOptions = {
    secure: false,
    authOptional: true,
    disabledCommands: o.noStartTls ? ['AUTH', 'STARTTLS'] : ['AUTH'],
    hideSTARTTLS: !!o.noStartTls,
    hideDSN: o.dsn === false,
    hideREQUIRETLS: !o.requireTls,
    logger: false,
    disableReverseLookup: true,
    closeTimeout: 200, // the gateway keeps idle connections cached; do not wait for them
    ...(o.cert ? { key: o.cert.key, cert: o.cert.cert } : {}),
    onConnect(_session, cb) {
      connections++;
      cb();
    },
    onMailFrom(_a, session, cb) {
      if (!session.secure) plaintext++;
      cb();
    },
    onRcptTo(address, session, cb) {
      const r = o.rcpt?.(address.address, session);
      if (r) return cb(Object.assign(new Error(r[1]), { responseCode: r[0] }));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          secure: !!session.secure,
          raw: Buffer.concat(chunks).toString('utf8'),
          tlsName: session.servername ?? null,
          bodyType: session.envelope.bodyType ?? '7bit',
          smtpUtf8: !!session.envelope.smtpUtf8,
          dsn: (session.envelope as { dsn?: { ret: string | null; envid: string | null } }).dsn ?? null,
          rcptDsn: Object.fromEntries(session.envelope.rcptTo.map((r) => [r.address, (r as { dsn?: { notify?: string[]; orcpt?: string } }).dsn])),
          requireTls: !!session.envelope.requireTLS,
        });
        waiters.splice(0).forEach((w) => w());
        cb(null, 'OK sunk');
      });
    },
  };
  const server = new SMTPServer(options);
  server.on('error', () => {}); // client sockets reset by the gateway
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(o.port ?? 0, host, () => resolve());
  });
  const port = (server.server.address() as net.AddressInfo).port;
  const sink: Sink = {
    port,
    host,
    messages,
    get plaintextTransactions() {
      return plaintext;
    },
    get connections() {
      return connections;
    },
    close: () => new Promise((r) => server.close(() => r())),
    waitFor: async (n, timeoutMs = 15_000) => {
      const until = Date.now() + timeoutMs;
      while (messages.length < n) {
        if (Date.now() > until) throw new Error(`sink on ${port}: ${messages.length}/${n} messages after ${timeoutMs} ms`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, 200);
          waiters.push(() => (clearTimeout(t), r()));
        });
      }
      return messages;
    },
  };
  return sink;
}
