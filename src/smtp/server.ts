// The SMTP listener: smtp-server wiring. Each hook gathers facts (IP, TLS, certificate names,
// sender), asks the pure policy engine, and performs its decision. No policy logic lives here.
import fs from 'node:fs';
import tls from 'node:tls';
import net from 'node:net';
import { constants as cryptoConstants } from 'node:crypto';
import { Resolver } from 'node:dns';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { evaluateRecipient, evaluateSender, type InboundRule, type Refusal, type SenderDecision } from '../policy/inbound.js';
import { replies, type Reply } from '../policy/replies.js';
import type { ListenerSettings, Policy } from '../policy/types.js';
import { certificateNames } from '../tls/names.js';
import { addTrustedCas } from '../tls/context.js';
import type { Logger } from '../observe/log.js';
import type { DsnNotify, Envelope, QueuedRecipient, Spool } from '../queue/spool.js';
import { MessageScanner, traceHeaders } from './message.js';
import { readProxyHeader } from './proxy.js';
import { smallestContainingRange, parseIp } from '../policy/match.js';
import type { Metrics } from '../observe/metrics.js';
import type { RecipientVerifier } from '../delivery/verify.js';

// smtp-server derives an enhanced status code from the reply code alone (550 → 5.1.1), which
// would contradict the codes of SPEC §3. Our replies carry their own code in the text; for those
// we suppress the derived one, and give the size refusal the wording of SPEC §3.
const ENHANCED_IN_TEXT = /^[245]\.\d{1,3}\.\d{1,3} /;
{
  const proto = SMTPConnection.prototype as unknown as { send: (code: number, data: unknown, context?: unknown) => void; __gwPatched?: boolean };
  if (!proto.__gwPatched) {
    const original = proto.send;
    proto.send = function (this: unknown, code: number, data: unknown, context?: unknown) {
      if (code === 552 && context === 'MESSAGE_TOO_BIG') {
        const r = replies.tooBig();
        return original.call(this, code, `${r.enhanced} ${r.text}`, false);
      }
      if (typeof data === 'string' && ENHANCED_IN_TEXT.test(data)) return original.call(this, code, data, false);
      return original.call(this, code, data, context);
    };
    proto.__gwPatched = true;
  }
}

/** The error object smtp-server turns into a reply. */
export function smtpError(r: Reply): Error & { responseCode: number } {
  return Object.assign(new Error(`${r.enhanced} ${r.text}`), { responseCode: r.code });
}

const MODERN_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

interface Transaction {
  decision: SenderDecision;
  recipients: Map<string, string | null>; // address → outbound connector name (null = MX)
}

interface SessionState {
  policy: Policy;
  tls: { version: string; cipher: string } | null;
  certNames: string[];
  certSubject: string | null;
  txn: Transaction | null;
  log: Logger;
}

export interface GatewayDeps {
  getPolicy: () => Policy;
  spool: Spool;
  log: Logger;
  /** Called after a message is durable and acknowledged: the seam to delivery. */
  onQueued?: (env: Envelope) => void;
  metrics?: Metrics;
  /** recipientVerification: callout. Without it such recipients are accepted unverified. */
  verifier?: Pick<RecipientVerifier, 'verify'>;
}

/** Messages per minute per client IP, as a sliding window over two one-minute buckets. */
class RateCounter {
  private buckets = new Map<string, { minute: number; count: number; previous: number }>();
  /** Counts one event and returns the rate (events in the last minute, estimated). */
  hit(key: string, now = Date.now()): number {
    const minute = Math.floor(now / 60_000);
    let b = this.buckets.get(key);
    if (!b || b.minute < minute - 1) b = { minute, count: 0, previous: 0 };
    else if (b.minute === minute - 1) b = { minute, count: 0, previous: b.count };
    b.count++;
    this.buckets.set(key, b);
    if (this.buckets.size > 100_000) this.prune(minute);
    const elapsed = (now % 60_000) / 60_000;
    return b.count + b.previous * (1 - elapsed);
  }
  private prune(minute: number): void {
    for (const [k, b] of this.buckets) if (b.minute < minute - 1) this.buckets.delete(k);
  }
}

interface TlsMaterial {
  key: string;
  cert: string;
  /** Client-certificate CAs trusted besides the bundled roots (see tls/context.ts). */
  extraCa: string[];
}

export function readTlsMaterial(policy: Policy): TlsMaterial {
  const t = policy.gateway.tls;
  const extraCa = t.clientCertificateAuthorities ? [fs.readFileSync(t.clientCertificateAuthorities, 'utf8')] : [];
  return { key: fs.readFileSync(t.key, 'utf8'), cert: fs.readFileSync(t.certificate, 'utf8'), extraCa };
}

/**
 * smtp-server builds its context from the options we give it, without `ca`, so it trusts
 * the bundled roots without listing them as client CA names; the operator's client CAs are
 * added to it here (copy-on-write store). Used at start and after each context rebuild.
 */
function trustClientCas(server: SMTPServer, material: TlsMaterial): void {
  const ctx = (server as unknown as { secureContext: Map<string, tls.SecureContext> }).secureContext.get('*');
  if (!ctx) throw new Error('smtp-server has no default TLS context');
  addTrustedCas(ctx, material.extraCa);
}

/**
 * smtp-server answers every SNI name with its default context, and Node then switches the
 * connection to that same context, duplicating the client-CA name list (here: every system
 * root, for client certificates) into each connection: ~115 KB per TLS session. Answering
 * "no other context" keeps the connection on the default one. (We serve one certificate.)
 */
function keepDefaultContextOnSni(server: SMTPServer): void {
  (server as unknown as { _resolveSNI: (name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void })._resolveSNI = (_name, cb) =>
    cb(null, undefined);
}

type DsnParams = { dsn?: { notify?: string[]; orcpt?: string; ret?: string | null; envid?: string | null } };

/** RFC 3461 parameters of one RCPT, as the queue keeps them. */
function dsnOfRecipient(r: SMTPServerAddress): Pick<QueuedRecipient, 'notify' | 'orcpt'> {
  const d = (r as SMTPServerAddress & DsnParams).dsn;
  const out: Pick<QueuedRecipient, 'notify' | 'orcpt'> = {};
  if (d?.notify?.length) out.notify = d.notify.map((n) => n.toUpperCase()) as DsnNotify[];
  if (d?.orcpt) out.orcpt = d.orcpt; // smtp-server has decoded the xtext
  return out;
}

/** RFC 3461 parameters of MAIL FROM, when the sender gave any. */
function dsnOfMessage(e: SMTPServerSession['envelope']): Pick<Envelope, 'dsn'> {
  const d = (e as SMTPServerSession['envelope'] & DsnParams).dsn;
  if (!d || (!d.ret && !d.envid)) return {};
  return { dsn: { ret: d.ret === 'FULL' || d.ret === 'HDRS' ? d.ret : null, envid: d.envid ?? null } };
}

const isLoopback = (ip: string) => ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');

export class GatewayServer {
  private servers: Array<{ listener: ListenerSettings; server: SMTPServer; port: number; net: net.Server }> = [];
  private states = new WeakMap<SMTPServerSession, SessionState>();
  private connectionsPerIp = new Map<string, number>();
  private messageRate = new RateCounter();
  private resolver: Resolver;

  constructor(private readonly deps: GatewayDeps) {
    this.resolver = this.makeResolver(deps.getPolicy());
  }

  private makeResolver(policy: Policy): Resolver {
    const r = new Resolver({ timeout: 1000, tries: 1 });
    if (policy.gateway.dns.servers.length) r.setServers(policy.gateway.dns.servers);
    return r;
  }

  get ports(): Array<{ name: string; address: string; port: number }> {
    return this.servers.map((s) => ({ name: s.listener.name, address: s.listener.address, port: s.port }));
  }

  async start(): Promise<void> {
    const policy = this.deps.getPolicy();
    const material = readTlsMaterial(policy);
    for (const listener of policy.gateway.listeners) {
      const server = new SMTPServer(this.options(policy, listener, material));
      keepDefaultContextOnSni(server);
      trustClientCas(server, material);
      server.on('error', (err: Error & { remoteAddress?: string; meta?: { remoteAddress?: string } }) => {
        // Failed handshakes and broken client sockets are the client's problem, not ours.
        const ip = err.remoteAddress ?? err.meta?.remoteAddress;
        if (ip || /SSL|TLS|handshake|ECONNRESET|EPIPE/i.test(err.message)) {
          this.deps.log.info({ event: 'client-error', listener: listener.name, ip, err: err.message.split('\n')[0] }, 'client connection failed');
        } else {
          this.deps.log.error({ event: 'listener-error', listener: listener.name, err: err.message }, 'listener error');
        }
      });
      const net0 = listener.proxyProtocol ? this.proxyFront(server, listener) : server.server;
      const port = await new Promise<number>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        net0.once('error', onError);
        net0.listen(listener.port, listener.address, () => {
          net0.off('error', onError);
          resolve((net0.address() as net.AddressInfo).port);
        });
      });
      this.servers.push({ listener, server, port, net: net0 });
      this.deps.log.info({ event: 'listening', listener: listener.name, address: listener.address, port, implicitTls: listener.implicitTls, proxyProtocol: !!listener.proxyProtocol }, `listening on ${listener.address}:${port}`);
    }
  }

  /**
   * A listener behind load balancers: our own TCP server reads the PROXY header (v1 or v2) from
   * trusted peers only, then hands the socket to smtp-server with the client's address.
   */
  private proxyFront(server: SMTPServer, listener: ListenerSettings): net.Server {
    const trusted = listener.proxyProtocol || [];
    return net.createServer((socket) => {
      socket.on('error', () => {});
      const peer = parseIp(socket.remoteAddress ?? '');
      if (!peer || !smallestContainingRange(trusted, peer)) {
        server.connect(socket, {});
        return;
      }
      readProxyHeader(socket, 10_000, (err, source) => {
        if (err) {
          this.deps.log.warn({ event: 'proxy-error', listener: listener.name, peer: socket.remoteAddress, err: err.message }, 'bad PROXY header from a trusted peer');
          socket.destroy();
          return;
        }
        server.connect(socket, source ? { remoteAddress: source.remoteAddress, remotePort: source.remotePort } : {});
      });
    });
  }

  /** A new valid policy: new sessions use it; certificates and limits are swapped in place. */
  reload(policy: Policy): void {
    const material = readTlsMaterial(policy);
    this.resolver = this.makeResolver(policy); // reverse lookups follow gateway.dns.servers
    for (const s of this.servers) {
      s.server.updateSecureContext({ key: material.key, cert: material.cert, minVersion: policy.gateway.tls.minVersion });
      trustClientCas(s.server, material);
      (s.server.options as SMTPServerOptions).size = policy.gateway.limits.maxMessageSize;
      (s.server.options as SMTPServerOptions).maxClients = policy.gateway.limits.maxConnections;
    }
    const key = (l: ListenerSettings) => `${l.name}@${l.address}:${l.port}/${l.implicitTls}/${!!l.proxyProtocol}`;
    if (policy.gateway.listeners.map(key).join(',') !== this.servers.map((s) => key(s.listener)).join(',')) this.deps.log.warn({ event: 'reload-listeners' }, 'listener changes take effect at the next restart');
  }

  /** Stops accepting; sessions in progress get up to `graceMs` to finish, then get 421. */
  async stop(graceMs = 10_000): Promise<void> {
    for (const { net: front } of this.servers) front.close();
    const until = Date.now() + graceMs;
    while (this.sessionCount > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const r = replies.shuttingDown();
    for (const { server } of this.servers) {
      for (const c of (server as unknown as { connections: Set<{ send: (code: number, text: string) => void; close: () => void }> }).connections) {
        c.send(r.code, `${r.enhanced} ${r.text}`);
        c.close();
      }
    }
    this.servers = [];
  }

  get sessionCount(): number {
    let n = 0;
    for (const s of this.servers) n += (s.server as unknown as { connections: Set<unknown> }).connections?.size ?? 0;
    return n;
  }

  private options(policy: Policy, listener: ListenerSettings, material: TlsMaterial): SMTPServerOptions {
    const g = policy.gateway;
    return {
      name: g.hostname,
      banner: 'connector-gateway',
      secure: listener.implicitTls,
      key: material.key,
      cert: material.cert,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: g.tls.minVersion,
      ciphers: MODERN_CIPHERS,
      honorCipherOrder: true,
      secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
      size: g.limits.maxMessageSize,
      maxClients: g.limits.maxConnections,
      authOptional: true,
      disabledCommands: ['AUTH'],
      hideENHANCEDSTATUSCODES: false,
      hideDSN: false, // RFC 3461: NOTIFY, ORCPT, RET, ENVID are kept with the message and honoured
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      socketTimeout: g.limits.idleTimeout,
      closeTimeout: 30_000,
      logger: false,
      resolver: {
        reverse: (ip: string, cb: (err: Error | null, names?: string[]) => void) => {
          if (isLoopback(ip)) return cb(null, ['localhost']);
          this.resolver.reverse(ip, (err, names) => cb(err, names));
        },
      },
      onConnect: (session, cb) => this.onConnect(session, cb),
      onSecure: (socket, session, cb) => this.onSecure(socket as tls.TLSSocket, session, cb),
      onMailFrom: (address, session, cb) => this.onMailFrom(address, session, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => {
        this.onData(stream, session, cb).catch((err) => {
          this.state(session).log.error({ event: 'data-error', err: (err as Error).message }, 'unexpected error in DATA');
          cb(smtpError(replies.localError()));
        });
      },
      onClose: (session) => this.onClose(session),
    } as SMTPServerOptions;
  }

  private state(session: SMTPServerSession): SessionState {
    let st = this.states.get(session);
    if (!st) {
      // The policy in force when the session started stays in force for the whole session.
      st = {
        policy: this.deps.getPolicy(),
        tls: null,
        certNames: [],
        certSubject: null,
        txn: null,
        log: this.deps.log.child({ sid: session.id, ip: session.remoteAddress }),
      };
      this.states.set(session, st);
    }
    return st;
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const st = this.state(session);
    const ip = session.remoteAddress;
    const n = (this.connectionsPerIp.get(ip) ?? 0) + 1;
    this.connectionsPerIp.set(ip, n);
    (session as unknown as { counted?: boolean }).counted = true;
    st.log.info({ event: 'connect', port: session.localPort, rdns: session.clientHostname || null }, 'connect');
    this.deps.metrics?.sessions.inc({ listener: this.listenerName(session.localPort) });
    this.deps.metrics?.activeSessions.inc();
    if (n > st.policy.gateway.limits.maxConnectionsPerIp) {
      return cb(this.refuse(st, { rule: 'throttle', connector: null, reply: replies.throttled() }, { connections: n }));
    }
    cb();
  }

  private listenerName(port: number): string {
    return this.servers.find((s) => s.port === port)?.listener.name ?? String(port);
  }

  private onClose(session: SMTPServerSession): void {
    if (!(session as unknown as { counted?: boolean }).counted) return;
    this.deps.metrics?.activeSessions.dec();
    const ip = session.remoteAddress;
    const n = (this.connectionsPerIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.connectionsPerIp.delete(ip);
    else this.connectionsPerIp.set(ip, n);
  }

  private onSecure(socket: tls.TLSSocket, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const st = this.state(session);
    const cipher = socket.getCipher();
    st.tls = { version: socket.getProtocol() ?? 'unknown', cipher: cipher?.standardName ?? cipher?.name ?? 'unknown' };
    this.deps.metrics?.tlsHandshakes.inc({ version: st.tls.version });
    const peer = socket.getPeerCertificate();
    const presented = !!peer && Object.keys(peer).length > 0;
    // Only a certificate that chains to a trusted root has names (SPEC §3).
    st.certNames = socket.authorized ? certificateNames(peer) : [];
    st.certSubject = presented ? (peer.subject?.CN ? String(peer.subject.CN) : JSON.stringify(peer.subject)) : null;
    st.log.info(
      {
        event: 'tls',
        version: st.tls.version,
        cipher: st.tls.cipher,
        clientCertificate: presented ? { subject: st.certSubject, verified: socket.authorized, names: st.certNames, error: socket.authorized ? undefined : String(socket.authorizationError) } : null,
      },
      'tls established',
    );
    cb();
  }

  private refuse(st: SessionState, refusal: Refusal, extra: Record<string, unknown>): Error {
    const r = refusal.reply;
    st.log.warn({ event: 'refusal', rule: refusal.rule, connector: refusal.connector, reply: `${r.code} ${r.enhanced} ${r.text}`, ...extra }, 'refused');
    this.deps.metrics?.refusals.inc({ connector: refusal.connector ?? 'none', rule: refusal.rule, code: `${r.code} ${r.enhanced}` });
    return smtpError(r);
  }

  private onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const st = this.state(session);
    st.txn = null;
    const sender = address.address ?? '';
    const decision = evaluateSender(st.policy.inboundConnectors, {
      ip: session.remoteAddress,
      tls: st.tls !== null,
      certNames: st.certNames,
      sender,
    });
    const a = decision.attribution;
    const attribution = { connector: a.connector?.name ?? null, identifiedBy: a.identifiedBy, matched: a.matched, mayRelay: a.mayRelay };
    for (const audit of decision.audits) {
      st.log.warn({ event: 'audit', rule: audit.rule, connector: audit.connector, wouldReply: `${audit.reply.code} ${audit.reply.enhanced} ${audit.reply.text}`, sender }, 'audit mode: would have refused');
      this.deps.metrics?.audits.inc({ connector: audit.connector ?? 'none', rule: audit.rule });
    }
    if (decision.refusal) return cb(this.refuse(st, decision.refusal, { sender, attribution }));
    const limit = a.connector?.maxMessagesPerMinute ?? st.policy.gateway.limits.maxMessagesPerMinutePerIp;
    const rate = this.messageRate.hit(session.remoteAddress);
    if (rate > limit) {
      return cb(this.refuse(st, { rule: 'throttle', connector: a.connector?.name ?? null, reply: replies.throttled() }, { sender, rate: Math.round(rate), limit }));
    }
    st.log.info({ event: 'attribution', sender, ...attribution, trace: decision.trace }, 'sender accepted');
    st.txn = { decision, recipients: new Map() };
    cb();
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const st = this.state(session);
    const txn = st.txn;
    if (!txn) return cb(smtpError({ code: 503, enhanced: '5.5.1', text: 'Error: need MAIL command' }));
    const recipient = address.address ?? '';
    if (session.envelope.rcptTo.length >= st.policy.gateway.limits.maxRecipientsPerMessage) {
      return cb(this.refuse(st, { rule: 'recipient-limit', connector: null, reply: replies.tooManyRecipients() }, { recipient }));
    }
    const d = evaluateRecipient(st.policy, txn.decision.attribution, recipient);
    if (d.refusal) return cb(this.refuse(st, d.refusal, { recipient, connector: txn.decision.attribution.connector?.name ?? null }));
    const route = d.route!;
    const accept = () => {
      txn.recipients.set(recipient, route.kind === 'connector' ? route.connector.name : null);
      st.log.info({ event: 'recipient', recipient, accepted: d.accepted?.pattern.text ?? null, route: route.kind === 'connector' ? route.connector.name : 'mx' }, 'recipient accepted');
      cb();
    };
    const verifyWith = d.verifyWith;
    if (!verifyWith || !this.deps.verifier) return accept();
    this.deps.verifier.verify(recipient, verifyWith).then(
      (v) => {
        st.log.info({ event: 'recipient-verification', recipient, connector: verifyWith.name, result: v.result, cached: v.cached, detail: v.detail }, 'recipient verification');
        this.deps.metrics?.verifications.inc({ result: v.result });
        if (v.result !== 'invalid') return accept(); // "unknown" (next hop unreachable) is accepted: see delivery/verify.ts
        cb(this.refuse(st, { rule: 'unknown-recipient', connector: txn.decision.attribution.connector?.name ?? null, reply: replies.unknownRecipient() }, { recipient, verifiedBy: verifyWith.name, detail: v.detail }));
      },
      (err: Error) => {
        st.log.error({ event: 'recipient-verification', recipient, connector: verifyWith.name, result: 'error', err: err.message }, 'recipient verification failed');
        accept();
      },
    );
  }

  private async onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): Promise<void> {
    const st = this.state(session);
    const txn = st.txn!;
    let writer: Awaited<ReturnType<Spool['create']>> | null = null;
    let writeError: Error | null = null;
    try {
      writer = await this.deps.spool.create();
    } catch (e) {
      writeError = e as Error;
    }
    const connector = txn.decision.attribution.connector?.name ?? null;
    const scanner = new MessageScanner(
      traceHeaders({
        helo: session.hostNameAppearsAs || '',
        rdns: session.clientHostname && !session.clientHostname.startsWith('[') ? session.clientHostname : null,
        ip: session.remoteAddress,
        hostname: st.policy.gateway.hostname,
        queueId: writer?.id ?? 'unknown',
        tls: st.tls,
        connector,
      }),
    );
    // Always drain the stream, whatever happens to the spool file; the first write error stops writing.
    const spoolWrite = async (out: Buffer[]) => {
      if (!writer || writeError) return;
      try {
        for (const b of out) await writer.write(b);
      } catch (e) {
        writeError = e as Error;
      }
    };
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) await spoolWrite(scanner.push(chunk));
    } catch (e) {
      // The client went away in the middle of the message: nothing was acknowledged, nothing is kept.
      await writer?.abort();
      st.log.info({ event: 'data-aborted', err: (e as Error).message, bytes: stream.byteLength }, 'client left during DATA');
      return cb(smtpError(replies.localError()));
    }
    await spoolWrite(scanner.end());

    const verdict = scanner.verdict();
    let refusal: Reply | null = null;
    let rule: InboundRule = 'size';
    if (stream.sizeExceeded) [refusal, rule] = [replies.tooBig(), 'size'];
    else if (!verdict.ok && verdict.problem === 'bare-LF') [refusal, rule] = [replies.bareLineFeed('LF'), 'bare-lf'];
    else if (!verdict.ok && verdict.problem === 'bare-CR') [refusal, rule] = [replies.bareLineFeed('CR'), 'bare-cr'];
    else if (!verdict.ok && verdict.problem === 'hop-count') [refusal, rule] = [replies.hopCountExceeded(), 'hop-count'];
    if (refusal) {
      await writer?.abort();
      return cb(this.refuse(st, { rule, connector, reply: refusal }, { size: stream.byteLength, received: scanner.receivedCount }));
    }

    let env: Envelope | null = null;
    if (writer && !writeError) {
      try {
        env = await writer.commit({
          receivedAt: new Date().toISOString(),
          sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          recipients: session.envelope.rcptTo.map((r) => ({
            address: r.address,
            status: 'pending',
            connector: txn.recipients.get(r.address) ?? null,
            attempts: 0,
            ...dsnOfRecipient(r),
          })),
          ...dsnOfMessage(session.envelope),
          bodyType: session.envelope.bodyType === '8bitmime' ? '8bitmime' : '7bit',
          smtpUtf8: !!session.envelope.smtpUtf8,
          client: { ip: session.remoteAddress, helo: session.hostNameAppearsAs || '', sessionId: session.id, connector, tls: st.tls ? st.tls.version : null },
        });
      } catch (e) {
        writeError = e as Error;
      }
    }
    if (!env) {
      await writer?.abort();
      const r = replies.localError();
      st.log.error({ event: 'refusal', rule: 'spool', reply: `${r.code} ${r.enhanced} ${r.text}`, err: writeError?.message }, 'could not spool the message');
      return cb(smtpError(r));
    }
    const r = replies.queued(env.id);
    this.deps.metrics?.accepted.inc({ connector: connector ?? 'none' });
    st.log.info({ event: 'queued', qid: env.id, size: env.size, sender: env.sender, recipients: env.recipients.map((x) => x.address), connector, stripped: scanner.strippedHeaders }, 'queued');
    cb(null, `${r.enhanced} ${r.text}`);
    this.deps.onQueued?.(env);
  }
}
