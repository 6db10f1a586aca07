// The adapters that reach into smtp-server's and nodemailer's private API
// (src/smtp/smtp-server-adapter.ts, src/delivery/nodemailer-adapter.ts). Each test exercises
// one thing relied on, over real sockets: an upgrade that changes it fails here, loudly.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import { closeOpenSessions, closeSession, defaultSecureContext, endPendingSocket, installReplyPatch, keepDefaultContextOnSni, openSessionCount, setSessionIdleTimeout, smtpError } from '../../src/smtp/smtp-server-adapter.js';
import { connectionFacts, offersExtension, peerCertificates, setRcptParameters, SMTPConnection, type Conn, type NodemailerError } from '../../src/delivery/nodemailer-adapter.js';
import { checkName } from '../../src/delivery/tls-policy.js';
import { classifyConnectionFailure } from '../../src/delivery/status.js';
import { replies } from '../../src/policy/replies.js';
import { issueCertificate, type Issued } from '../../src/tls/issue.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/raw.js';

let ca: Issued;
let leaf: Issued;
beforeAll(() => {
  ca = issueCertificate({ commonName: 'Adapter Test CA', isCA: true });
  leaf = issueCertificate({ commonName: 'sink.adapter.test', altNames: ['sink.adapter.test'], issuer: ca });
});

async function listen(server: SMTPServer): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.server.address() as net.AddressInfo).port;
}

describe('smtp-server adapter', () => {
  let server: SMTPServer;
  let port: number;
  const sessionIds: string[] = [];
  beforeAll(async () => {
    installReplyPatch({ tooBig: replies.tooBig(), requireTlsWithoutTls: replies.requireTlsWithoutTls() });
    server = new SMTPServer({
      authOptional: true,
      logger: false,
      disableReverseLookup: true,
      size: 2048,
      key: leaf.keyPem,
      cert: leaf.certPem,
      onMailFrom: (a, _s, cb) => (a.address === 'refused@x.test' ? cb(smtpError(replies.ipNotAllowed('Partner'))) : cb()),
      onConnect: (s, cb) => {
        sessionIds.push(s.id);
        cb();
      },
    });
    keepDefaultContextOnSni(server);
    port = await listen(server);
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('the reply patch keeps our enhanced code (no derived 5.1.1) and words the size and REQUIRETLS refusals as SPEC §3 does', async () => {
    const { c } = await RawSmtp.connect(port);
    await c.cmd('EHLO client.test');
    expect(await c.cmd('MAIL FROM:<refused@x.test>')).toBe('550 5.7.51 TenantInboundAttribution; sender IP not allowed by connector Partner');
    expect(await c.cmd('MAIL FROM:<a@x.test> SIZE=999999')).toBe('552 5.3.4 Message size exceeds fixed maximum message size');
    expect(await c.cmd('MAIL FROM:<a@x.test> REQUIRETLS')).toBe('530 5.7.10 REQUIRETLS requires TLS'); // plaintext session
    c.close();
  });

  it('_resolveSNI is replaced by "no other context", and the default context takes extra CAs', () => {
    const internal = server as unknown as { _resolveSNI: (name: string, cb: (err: Error | null, ctx?: unknown) => void) => void };
    expect(typeof internal._resolveSNI).toBe('function');
    let answer: unknown = 'not called';
    internal._resolveSNI('any.name', (_e, ctx) => (answer = ctx));
    expect(answer).toBeUndefined();
    const ctx = defaultSecureContext(server) as unknown as { context: { addCACert: (pem: string) => void } };
    expect(typeof ctx.context.addCACert).toBe('function');
  });

  it("one session's idle timeout, found by its id: smtp-server's own 421 when it fires", async () => {
    const { c } = await RawSmtp.connect(port);
    await c.cmd('EHLO client.test');
    expect(setSessionIdleTimeout(server, sessionIds.at(-1)!, 300)).toBe(true);
    expect(await c.reply(3000)).toMatch(/^421 /); // the default idle timeout is minutes
    expect(setSessionIdleTimeout(server, 'no-such-session', 300)).toBe(false);
    c.close();
  });

  it('one session closed with our 421, found by its id', async () => {
    const { c } = await RawSmtp.connect(port);
    await c.cmd('EHLO client.test');
    expect(closeSession(server, sessionIds.at(-1)!, replies.tooManyErrors())).toBe(true);
    expect(await c.reply()).toBe('421 4.7.0 Too many errors, closing connection');
    await new Promise((r) => setTimeout(r, 50));
    expect(c.closed).toBe(true);
  });

  it('an implicit-TLS socket that has not become a session is pending, and ending it ends its TLS wrap (no crash)', async () => {
    const secure = new SMTPServer({ secure: true, key: leaf.keyPem, cert: leaf.certPem, authOptional: true, logger: false, disableReverseLookup: true });
    const errors: Error[] = [];
    secure.on('error', (e) => errors.push(e)); // the failed handshake is reported, as the gateway logs it
    const raws: net.Socket[] = [];
    secure.server.prependListener('connection', (s: net.Socket) => raws.push(s));
    const p = await listen(secure);
    const silent = net.connect({ host: '127.0.0.1', port: p });
    silent.on('error', () => {});
    const closed = new Promise((r) => silent.once('close', r));
    await new Promise((r) => setTimeout(r, 100));
    silent.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello: the wrap is in mid-handshake
    await new Promise((r) => setTimeout(r, 100));
    expect(raws).toHaveLength(1);
    expect(endPendingSocket(secure, raws[0])).toBe(true);
    await closed;
    await new Promise((r) => setTimeout(r, 100));
    expect(endPendingSocket(secure, raws[0])).toBe(false); // no longer pending
    expect(errors.map((e) => e.message)).toEqual(['Socket closed while initiating TLS']);
    await new Promise<void>((r) => secure.close(() => r()));
  });

  it('open sessions are counted, and told 421 and closed at shutdown', async () => {
    const { c } = await RawSmtp.connect(port);
    await c.cmd('EHLO client.test');
    expect(openSessionCount(server)).toBe(1);
    closeOpenSessions(server, replies.shuttingDown());
    expect(await c.reply()).toBe('421 4.3.2 Service shutting down, try again later');
    await new Promise((r) => setTimeout(r, 50));
    expect(openSessionCount(server)).toBe(0);
  });
});

describe('nodemailer adapter', () => {
  let dsnSink: Sink;
  let plainSink: Sink;
  let selfSigned: Sink;
  beforeAll(async () => {
    dsnSink = await startSink({ cert: { cert: leaf.certPem + ca.certPem, key: leaf.keyPem } });
    plainSink = await startSink({ dsn: false, noStartTls: true });
    const self = issueCertificate({ commonName: 'self.adapter.test' });
    selfSigned = await startSink({ cert: { cert: self.certPem, key: self.keyPem } });
  });
  afterAll(async () => {
    await Promise.all([dsnSink.close(), plainSink.close(), selfSigned.close()]);
  });

  /** Connects; resolves with the connection, or with the facts and classification of its failure. */
  function connect(port: number, opts: Record<string, unknown>, tlsRequired: boolean): Promise<{ conn: Conn; failure?: ReturnType<typeof classifyConnectionFailure>; facts?: ReturnType<typeof connectionFacts> }> {
    return new Promise((resolve) => {
      const conn = new SMTPConnection({ host: '127.0.0.1', port, logger: false, ...opts });
      let connected = false;
      conn.once('error', (err: NodemailerError) => {
        const facts = connectionFacts(err, conn, tlsRequired, connected);
        resolve({ conn, facts, failure: classifyConnectionFailure(facts) });
      });
      conn.connect(() => {
        connected = true;
        resolve({ conn });
      });
    });
  }

  it('offersExtension reads what EHLO offered', async () => {
    const a = await connect(dsnSink.port, { tls: { rejectUnauthorized: false } }, false);
    const b = await connect(plainSink.port, {}, false);
    expect(offersExtension(a.conn, 'DSN')).toBe(true);
    expect(offersExtension(b.conn, 'DSN')).toBe(false);
    a.conn.quit();
    b.conn.quit();
  });

  it('peerCertificates returns the chain the server sent, server certificate first (for DANE)', async () => {
    const { conn } = await connect(dsnSink.port, { requireTLS: true, tls: { rejectUnauthorized: false } }, true);
    const chain = peerCertificates(conn);
    expect(chain.map((c) => c.subject)).toEqual(['CN=sink.adapter.test', 'CN=Adapter Test CA']);
    conn.quit();
  });

  it('setRcptParameters gives each RCPT its own parameters', async () => {
    const { conn } = await connect(dsnSink.port, { tls: { rejectUnauthorized: false } }, false);
    const params: Record<string, string> = { 'a@r.test': 'NOTIFY=NEVER', 'b@r.test': 'NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40r.test' };
    setRcptParameters(conn, (r) => params[r] ?? '');
    await new Promise<void>((resolve, reject) => conn.send({ from: 's@r.test', to: ['a@r.test', 'b@r.test'] }, 'Subject: x\r\n\r\nbody\r\n', (err) => (err ? reject(err) : resolve())));
    const [m] = await dsnSink.waitFor(1);
    expect(m!.rcptDsn['a@r.test']?.notify).toEqual(['NEVER']);
    expect(m!.rcptDsn['b@r.test']?.notify).toEqual(['SUCCESS', 'FAILURE']);
    expect(m!.rcptDsn['b@r.test']?.orcpt).toBe('rfc822;b@r.test');
    conn.quit();
  });

  it('a closed port: connection refused (4.4.316), from the system error code', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const { facts, failure } = await connect(port, {}, false);
    expect(facts).toMatchObject({ systemCode: 'ECONNREFUSED', stage: 'connect', certificate: null });
    expect(failure?.code).toBe('4.4.316');
  });

  it('a server that never greets: timed out (4.4.315)', async () => {
    const mute = net.createServer(() => {});
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    const { facts, failure } = await connect((mute.address() as net.AddressInfo).port, { greetingTimeout: 200 }, false);
    expect(facts?.timedOut).toBe(true);
    expect(failure?.code).toBe('4.4.315');
    mute.close();
  });

  it('a self-signed server certificate: the chain is refused with its X.509 reason (4.7.320)', async () => {
    const { facts, failure } = await connect(selfSigned.port, { requireTLS: true, tls: { rejectUnauthorized: true } }, true);
    expect(facts?.certificate).toEqual({ problem: 'chain', reason: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(facts?.stage).toBe('starttls');
    expect(failure?.code).toBe('4.7.320');
  });

  it('a certificate for another name: the name check is refused (4.7.320)', async () => {
    const pattern = { kind: 'exact' as const, name: 'other.adapter.test', text: 'other.adapter.test' };
    const { facts, failure } = await connect(dsnSink.port, { requireTLS: true, tls: { ca: [ca.certPem], rejectUnauthorized: true, checkServerIdentity: (_h: string, cert: import('node:tls').PeerCertificate) => checkName(pattern, cert) } }, true);
    expect(facts?.certificate?.problem).toBe('name');
    expect(failure?.code).toBe('4.7.320');
  });

  it('STARTTLS not offered while TLS is required: the refusal of STARTTLS (4.4.317)', async () => {
    const { facts, failure } = await connect(plainSink.port, { requireTLS: true }, true);
    expect(facts).toMatchObject({ stage: 'starttls', secure: false });
    expect(facts?.replyCode).toBeGreaterThanOrEqual(500);
    expect(failure?.code).toBe('4.4.317');
  });
});
