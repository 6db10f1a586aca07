// The session hooks (Haraka's connection/transaction phases): each gathers the facts smtp-server
// gives it (IP, TLS, certificate names, sender, recipient, what DATA contained), asks policy/,
// and performs the decision: a reply, a log event, a metric, the spool. No decision is made here.
import type tls from 'node:tls';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { evaluateRecipient, evaluateSender, listedByConnector, type Refusal, type SenderDecision } from '../policy/inbound.js';
import { connectionLimit, dataRate, errorLimit, messageRate, messageRateLimit, recipientLimit, sessionLimits, underStress } from '../policy/limits.js';
import { evaluateData } from '../policy/data.js';
import { unadvertisedParameter } from '../policy/parameters.js';
import { evaluateRules } from '../policy/rules.js';
import { keepExchangeHeadersFrom } from '../policy/headers.js';
import { editHeaderBlock, filterHeaderBlock } from '../mail/headers.js';
import { authenticationApplies, authVerdict, claimsOurAuthservId, dmarcResult, QUARANTINE_FIELD, type AuthVerdict } from '../policy/authentication.js';
import type { Authenticated } from '../auth/verify.js';
import { EdgeAuthentication } from './edge-auth.js';
import { formatReply, replies, type Reply } from '../policy/replies.js';
import type { Policy } from '../policy/types.js';
import { certificateNames } from '../tls/names.js';
import { chainAnchors, peerChain, type TrustAnchor } from '../tls/anchors.js';
import type { Logger } from '../observe/log.js';
import { traced } from '../observe/events.js';
import type { Metrics } from '../observe/metrics.js';
import type { DsnNotify, Envelope, QueuedRecipient, Spool } from '../queue/spool.js';
import type { RecipientVerifier, Verdict } from '../delivery/verify.js';
import { calloutDecision } from '../policy/verification.js';
import { applyOrganizationRules } from '../policy/organization.js';
import { honouredNotify, honouredRet, queuedRoute, senderProven, tlsFlags } from '../policy/envelope.js';
import { MessageScanner, traceHeaders } from './message.js';
import { LocalCounters, type SessionCounters } from './counters.js';
import { smtpError } from './smtp-server-adapter.js';

export interface SessionDeps {
  getPolicy: () => Policy;
  spool: Spool;
  log: Logger;
  /**
   * The seam to delivery: a committed message is handed to the queue manager *before* the 250
   * (in a worker process, an IPC round trip to the first process), so that no acknowledged
   * message exists only on disk if this process dies right after answering.
   */
  handOver?: (env: Envelope) => void | Promise<void>;
  metrics?: Metrics;
  /** recipientVerification: callout. Without it such recipients are accepted unverified. */
  verifier?: Pick<RecipientVerifier, 'verify'>;
  /** Sessions and message rates, when they are counted elsewhere (worker processes); else here. */
  counters?: SessionCounters;
}

/** What the listener lets the hooks do to a session beyond answering it (smtp-server-adapter.ts does it). */
export interface SessionControl {
  /** The session of this client address and port began (an implicit-TLS handshake is done). */
  began: (ip: string, port: number) => void;
  setIdleTimeout: (sessionId: string, ms: number) => boolean;
  /** Sends `reply` and closes the session now. */
  close: (sessionId: string, reply: Reply) => boolean;
}

const NO_CONTROL: SessionControl = { began: () => {}, setIdleTimeout: () => false, close: () => false };

interface Transaction {
  decision: SenderDecision;
  recipients: Map<string, string | null>; // address → outbound connector name (null = MX)
}

interface SessionState {
  id: string;
  policy: Policy;
  /** Refused commands so far, and how many the session may have (policy/limits.ts sessionLimits). */
  errors: number;
  hardErrorLimit: number;
  /** The session reached a limit and is being closed: commands still pipelined get no answer. */
  ending: boolean;
  tls: { version: string; cipher: string } | null;
  certNames: string[];
  /** The trust anchors the verified client certificate's chain reached (tls/anchors.ts). */
  certAnchors: string[];
  certSubject: string | null;
  txn: Transaction | null;
  counted: boolean;
  log: Logger;
}

type Done = (err?: Error | null) => void;
type Hooks = Required<Pick<SMTPServerOptions, 'onConnect' | 'onSecure' | 'onMailFrom' | 'onRcptTo' | 'onData' | 'onClose'>>;

/** RFC 3461 parameters of one RCPT, as the queue keeps them (what policy/envelope.ts honours of them). */
function dsnOfRecipient(r: SMTPServerAddress, proven: boolean): Pick<QueuedRecipient, 'notify' | 'orcpt'> {
  const out: Pick<QueuedRecipient, 'notify' | 'orcpt'> = {};
  const asked = r.dsn?.notify?.length ? (r.dsn.notify.map((n) => n.toUpperCase()) as DsnNotify[]) : undefined;
  const notify = honouredNotify(proven, asked);
  if (notify) out.notify = notify;
  if (r.dsn?.orcpt) out.orcpt = r.dsn.orcpt; // smtp-server has decoded the xtext
  return out;
}

/** RFC 3461 parameters of MAIL FROM, when the sender gave any (what policy/envelope.ts honours of them). */
function dsnOfMessage(e: SMTPServerSession['envelope'], proven: boolean): Pick<Envelope, 'dsn'> {
  const d = e.dsn;
  if (!d || (!d.ret && !d.envid)) return {};
  const asked = d.ret === 'FULL' || d.ret === 'HDRS' ? d.ret : null;
  return { dsn: { ret: honouredRet(proven, asked), envid: d.envid ?? null } };
}

/** Milliseconds, to the microsecond. */
const ms = (x: number): number => Math.round(x * 1000) / 1000;

/** Continues with a count at once when it is known here, or when the primary's answer comes. */
function after<T>(v: T | Promise<T>, then: (v: T) => void, cb: Done): void {
  if (v instanceof Promise) v.then(then, () => cb(smtpError(replies.localError())));
  else then(v);
}

export class SessionHooks {
  private states = new WeakMap<SMTPServerSession, SessionState>();
  private readonly counters: SessionCounters;

  constructor(
    private readonly deps: SessionDeps,
    private readonly listenerName: (localPort: number) => string,
    /** The client-certificate trust anchors in force (they follow reloads). */
    private readonly anchors: () => readonly TrustAnchor[] = () => [],
    private readonly control: SessionControl = NO_CONTROL,
  ) {
    this.counters = deps.counters ?? new LocalCounters();
  }

  /** The hooks, for smtp-server's options. */
  hooks(): Hooks {
    return {
      onConnect: (session, cb) => this.onConnect(session, cb),
      onSecure: (socket, session, cb) => this.onSecure(socket as tls.TLSSocket, session, cb),
      onMailFrom: (address, session, cb) => this.onMailFrom(address, session, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => {
        this.onData(stream, session, cb).catch((err: Error) => {
          this.state(session).log.error({ event: 'data-error', err: err.message }, 'unexpected error in DATA');
          cb(smtpError(replies.localError()));
        });
      },
      onClose: (session) => this.onClose(session),
    };
  }

  private state(session: SMTPServerSession): SessionState {
    let st = this.states.get(session);
    if (!st) {
      // The policy in force when the session started stays in force for the whole session.
      const policy = this.deps.getPolicy();
      st = { id: session.id, policy, errors: 0, hardErrorLimit: policy.gateway.limits.hardErrorLimit, ending: false, tls: null, certNames: [], certAnchors: [], certSubject: null, txn: null, counted: false, log: this.deps.log.child({ sid: session.id, ip: session.remoteAddress }) };
      this.states.set(session, st);
    }
    return st;
  }

  /** What SPF, DKIM, ARC and DMARC found, decided (policy/authentication.ts), logged and counted. */
  private authenticationVerdict(st: SessionState, found: Authenticated | Error, qid: string | undefined): AuthVerdict {
    const auth = st.policy.gateway.authentication!;
    if (found instanceof Error) {
      st.log.error(traced({ event: 'authentication', qid, result: 'error', err: found.message }), 'sender authentication could not run: the message is accepted unchecked');
      this.deps.metrics?.authResults.inc({ method: 'dmarc', result: 'temperror' });
      return { action: 'accept', why: `the checks failed: ${found.message}` };
    }
    const f = found.facts;
    const verdict = authVerdict(auth.dmarc, auth.arcTrustedSealers, f, Math.random() * 100);
    const m = this.deps.metrics;
    if (m) {
      m.authResults.inc({ method: 'spf', result: f.spf.result });
      for (const d of f.dkim.length ? f.dkim : [{ result: 'none' }]) m.authResults.inc({ method: 'dkim', result: d.result });
      m.authResults.inc({ method: 'arc', result: f.arc.result });
      m.authResults.inc({ method: 'dmarc', result: dmarcResult(f.dmarc) });
      if (verdict.action !== 'accept') m.dmarcRefusals.inc({ domain: verdict.action === 'reject' ? verdict.domain : (f.dmarc.domain ?? ''), action: verdict.action });
    }
    st.log.info(
      traced({ event: 'authentication', ...(verdict.action === 'reject' ? {} : { qid }), spf: f.spf, dkim: f.dkim, arc: f.arc, dmarc: { domain: f.dmarc.domain, result: dmarcResult(f.dmarc), policy: f.dmarc.policy, ...(f.dmarc.unevaluable ? { unevaluable: f.dmarc.unevaluable.reason } : {}) }, action: verdict.action, why: verdict.why }),
      'sender authentication',
    );
    return verdict;
  }

  /**
   * Performs a refusal: the log event, the metric, and the error smtp-server replies with. Each
   * counts against the session's hard error limit: at it, the session ends with 421 after this reply.
   */
  private refuse(st: SessionState, refusal: Refusal, extra: Record<string, unknown>): Error {
    const r = refusal.reply;
    this.record(st, refusal, extra, 'refused');
    const over = errorLimit(++st.errors, st.hardErrorLimit);
    if (over && r.code !== 421 && !st.ending) {
      st.ending = true;
      setImmediate(() => this.end(st, over, { errors: st.errors }));
    }
    return smtpError(r);
  }

  /** Ends a session with the refusal's 421 (error limit, DATA too slow): logged, counted, closed. */
  private end(st: SessionState, refusal: Refusal, extra: Record<string, unknown>): void {
    const r = refusal.reply;
    if (!this.control.close(st.id, r)) return; // already gone
    this.record(st, refusal, extra, 'session closed');
  }

  /** A refusal's log event and metric. */
  private record(st: SessionState, refusal: Refusal, extra: Record<string, unknown>, message: string): void {
    const r = refusal.reply;
    st.log.warn({ event: 'refusal', rule: refusal.rule, connector: refusal.connector, reply: formatReply(r), ...extra }, message);
    this.deps.metrics?.refusals.inc({ connector: refusal.connector ?? 'none', rule: refusal.rule, code: `${r.code} ${r.enhanced}` });
  }

  private onConnect(session: SMTPServerSession, cb: Done): void {
    const st = this.state(session);
    st.counted = true; // counted from here: onClose uncounts, whatever the answer
    st.log.info({ event: 'connect', port: session.localPort, rdns: session.clientHostname || null }, 'connect');
    this.deps.metrics?.sessions.inc({ listener: this.listenerName(session.localPort) });
    this.deps.metrics?.activeSessions.inc();
    this.control.began(session.remoteAddress, session.remotePort);
    after(this.counters.open(session.remoteAddress), (open) => {
      const limits = st.policy.gateway.limits;
      const listed = listedByConnector(st.policy.inboundConnectors, session.remoteAddress);
      const refusal = connectionLimit(limits, open.perIp, open.total, listed);
      if (refusal) {
        // The session ends at its refusal: uncounted now, not when the client gets round to
        // closing its half of the socket (an attacker never does, and would hold the count).
        this.uncount(st, session.remoteAddress);
        return cb(this.refuse(st, refusal, { connections: open.perIp, total: open.total, listed }));
      }
      // Postfix's stress mode: past half the connections, a new session gets shorter limits.
      const stressed = underStress(limits, open.total);
      const own = sessionLimits(limits, stressed);
      st.hardErrorLimit = own.hardErrorLimit;
      if (stressed) {
        this.control.setIdleTimeout(st.id, own.idleTimeout);
        st.log.info({ event: 'stress', total: open.total, idleTimeout: own.idleTimeout, hardErrorLimit: own.hardErrorLimit }, 'under stress: shorter limits for this session');
      }
      cb();
    }, cb);
  }

  private onClose(session: SMTPServerSession): void {
    const st = this.states.get(session);
    if (st) this.uncount(st, session.remoteAddress);
  }

  /** Gives a session's count back, once. */
  private uncount(st: SessionState, ip: string): void {
    if (!st.counted) return;
    st.counted = false;
    this.deps.metrics?.activeSessions.dec();
    this.counters.close(ip);
  }

  private onSecure(socket: tls.TLSSocket, session: SMTPServerSession, cb: Done): void {
    const st = this.state(session);
    const cipher = socket.getCipher();
    st.tls = { version: socket.getProtocol() ?? 'unknown', cipher: cipher?.standardName ?? cipher?.name ?? 'unknown' };
    this.deps.metrics?.tlsHandshakes.inc({ version: st.tls.version });
    const peer = socket.getPeerCertificate();
    const presented = !!peer && Object.keys(peer).length > 0;
    // Only a certificate that chains to a trusted root has names (SPEC §3), and which root it
    // chains to decides which connectors it may identify (per-connector trust anchors).
    st.certNames = socket.authorized ? certificateNames(peer) : [];
    st.certAnchors = socket.authorized ? chainAnchors(peerChain(socket.getPeerCertificate(true)), this.anchors()) : [];
    st.certSubject = presented ? (peer.subject?.CN ? String(peer.subject.CN) : JSON.stringify(peer.subject)) : null;
    st.log.info(
      {
        event: 'tls',
        version: st.tls.version,
        cipher: st.tls.cipher,
        clientCertificate: presented ? { subject: st.certSubject, verified: socket.authorized, names: st.certNames, anchors: st.certAnchors, error: socket.authorized ? undefined : String(socket.authorizationError) } : null,
      },
      'tls established',
    );
    cb();
  }

  private onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: Done): void {
    const st = this.state(session);
    if (st.ending) return; // closed in a moment with its 421: nothing more is answered
    st.txn = null;
    const sender = address.address ?? '';
    const facts = { ip: session.remoteAddress, tls: st.tls !== null, certNames: st.certNames, certAnchors: st.certAnchors, sender };
    const decision = applyOrganizationRules(st.policy, facts, evaluateSender(st.policy.inboundConnectors, facts));
    const a = decision.attribution;
    const attribution = { connector: a.connector?.name ?? null, identifiedBy: a.identifiedBy, matched: a.matched, mayRelay: a.mayRelay };
    for (const audit of decision.audits) {
      st.log.warn({ event: 'audit', rule: audit.rule, connector: audit.connector, wouldReply: formatReply(audit.reply), sender }, 'audit mode: would have refused');
      this.deps.metrics?.audits.inc({ connector: audit.connector ?? 'none', rule: audit.rule });
    }
    if (decision.refusal) return cb(this.refuse(st, decision.refusal, { sender, attribution }));
    const badParameter = unadvertisedParameter('MAIL', Object.keys(address.args || {}), st.tls !== null, a.connector?.name ?? null);
    if (badParameter) return cb(this.refuse(st, badParameter, { sender }));
    after(this.counters.message(session.remoteAddress), (rate) => {
      const throttled = messageRate(st.policy.gateway.limits, a.connector, rate);
      if (throttled) return cb(this.refuse(st, throttled, { sender, rate: Math.round(rate), limit: messageRateLimit(st.policy.gateway.limits, a.connector) }));
      st.log.info({ event: 'attribution', sender, ...attribution, trace: decision.trace }, 'sender accepted');
      st.txn = { decision, recipients: new Map() };
      cb();
    }, cb);
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: Done): void {
    const st = this.state(session);
    if (st.ending) return; // closed in a moment with its 421: nothing more is answered
    const txn = st.txn;
    if (!txn) return cb(smtpError(replies.needMail()));
    const recipient = address.address ?? '';
    const connector = txn.decision.attribution.connector?.name ?? null;
    const badParameter = unadvertisedParameter('RCPT', Object.keys(address.args || {}), st.tls !== null, connector);
    if (badParameter) return cb(this.refuse(st, badParameter, { recipient }));
    const tooMany = recipientLimit(st.policy.gateway.limits, session.envelope.rcptTo.length);
    if (tooMany) return cb(this.refuse(st, tooMany, { recipient }));
    const d = evaluateRecipient(st.policy, txn.decision.attribution, recipient);
    if (d.refusal) return cb(this.refuse(st, d.refusal, { recipient, connector }));
    const { route, verifyWith } = d;
    const accept = (): void => {
      txn.recipients.set(recipient, route.kind === 'connector' ? route.connector.name : null);
      st.log.info({ event: 'recipient', recipient, accepted: d.accepted?.pattern.text ?? null, route: route.kind === 'connector' ? route.connector.name : 'mx' }, 'recipient accepted');
      cb();
    };
    if (!verifyWith || !d.accepted || !this.deps.verifier) return accept();
    const domain = d.accepted;
    // The answer is a fact; what it means for this RCPT is policy/verification.ts's to say.
    const decide = (v: Pick<Verdict, 'result' | 'lastValidAt'>, detail: string): void => {
      const c = calloutDecision(v, domain, connector, Date.now());
      if (c.accept) return accept();
      cb(this.refuse(st, c.refusal, { recipient, verifiedBy: verifyWith.name, detail }));
    };
    this.deps.verifier.verify(recipient, verifyWith).then(
      (v) => {
        st.log.info({ event: 'recipient-verification', recipient, connector: verifyWith.name, result: v.result, cached: v.cached, detail: v.detail, lastValidAt: v.lastValidAt ? new Date(v.lastValidAt).toISOString() : null }, 'recipient verification');
        this.deps.metrics?.verifications.inc({ result: v.result });
        decide(v, v.detail);
      },
      (err: Error) => {
        st.log.error({ event: 'recipient-verification', recipient, connector: verifyWith.name, result: 'error', err: err.message }, 'recipient verification failed');
        decide({ result: 'unknown', lastValidAt: null }, err.message);
      },
    );
  }

  private async onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): Promise<void> {
    const st = this.state(session);
    if (st.ending) {
      stream.resume(); // read and dropped until the close a moment away
      return;
    }
    const txn = st.txn;
    if (!txn) return cb(smtpError(replies.needMail()));
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
      { stripExchangeHeaders: !keepExchangeHeadersFrom(txn.decision.attribution) },
    );
    // Sender authentication (SPEC §11) of mail from outside reads the message as it arrives.
    const auth = st.policy.gateway.authentication;
    const checks = auth && authenticationApplies(auth, txn.decision.attribution.connector?.connectorType ?? null)
      ? new EdgeAuthentication(st.policy, { ip: session.remoteAddress, helo: session.hostNameAppearsAs || '', sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', authservId: auth.authservId })
      : null;
    // Always drain the stream, whatever happens to the spool file; the first write error stops writing.
    const spoolWrite = async (out: Buffer[]): Promise<void> => {
      if (!writer || writeError) return;
      try {
        for (const b of out) await writer.write(b);
      } catch (e) {
        writeError = e as Error;
      }
    };
    // Past maxMessageSize nothing more is scanned or written: the rest is read and discarded, and
    // the message refused at the dot (a 50 MB message against a 10 MB limit costs 10 MB of disk).
    const limit = st.policy.gateway.limits.maxMessageSize;
    let received = 0;
    let oversize = false;
    // A session held open a byte at a time in DATA ends when DATA falls below the minimum rate.
    const dataStart = Date.now();
    const watch = setInterval(() => {
      const slow = dataRate(st.policy.gateway.limits, Date.now() - dataStart, received);
      if (slow) {
        clearInterval(watch);
        this.end(st, slow, { bytes: received, seconds: Math.round((Date.now() - dataStart) / 1000) });
        stream.destroy(new Error('DATA below the minimum rate')); // the loop below ends, the spool file goes
      }
    }, 1000);
    watch.unref();
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        received += chunk.length;
        if (received > limit && !oversize) {
          oversize = true;
          await writer?.abort();
          writer = null;
          checks?.abort();
        }
        if (!oversize) {
          checks?.write(chunk);
          await spoolWrite(scanner.push(chunk));
        }
      }
    } catch (e) {
      clearInterval(watch);
      checks?.abort();
      // The client went away in the middle of the message: nothing was acknowledged, nothing is kept.
      await writer?.abort();
      st.log.info({ event: 'data-aborted', err: (e as Error).message, bytes: stream.byteLength }, 'client left during DATA');
      return cb(smtpError(replies.localError()));
    }
    clearInterval(watch);
    // The final dot has been read: from here to the 250 is the accept path's own latency.
    const dotAt = performance.now();
    if (!oversize) await spoolWrite(scanner.end());
    if (!oversize) checks?.end();

    const refusal = evaluateData(
      {
        sizeExceeded: stream.sizeExceeded || oversize,
        nul: scanner.nul,
        bareLineEnding: scanner.bareLineEnding,
        receivedHeaders: scanner.receivedCount,
        headerTooLarge: scanner.headerTooLarge,
        leadingContinuation: scanner.leadingContinuation,
      },
      connector,
    );
    if (refusal) {
      checks?.abort();
      await writer?.abort();
      return cb(this.refuse(st, refusal, { size: stream.byteLength, received: scanner.receivedCount }));
    }

    // The sender authentication verdict (DMARC p=reject: 550 5.7.509, nothing queued).
    const authenticated = checks ? await checks.result : null;
    let verdict: AuthVerdict | null = null;
    if (auth && authenticated) {
      verdict = this.authenticationVerdict(st, authenticated, writer?.id);
      if (verdict.action === 'reject') {
        await writer?.abort();
        return cb(this.refuse(st, { rule: 'dmarc', connector, reply: verdict.reply }, { domain: verdict.domain, why: verdict.why, size: stream.byteLength }));
      }
    }

    // Mail flow rules (SPEC §9) on the message as received.
    const rcpts = session.envelope.rcptTo.map((r) => r.address);
    const headers = scanner.headerFields();
    const rules = evaluateRules(st.policy, { connector, sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', recipients: rcpts, headers, size: stream.byteLength });
    for (const f of rules.fired) {
      st.log.info(traced({ event: 'rule', rule: f.rule, mode: f.mode, recipients: f.recipients, actions: f.actions, qid: writer?.id }), f.mode === 'audit' ? 'mail flow rule matched (audit: nothing done)' : 'mail flow rule applied');
      for (const action of f.actions.length ? f.actions : ['none']) this.deps.metrics?.rules.inc({ rule: f.rule, mode: f.mode, action });
    }
    if (rules.reject) {
      await writer?.abort();
      return cb(this.refuse(st, { rule: 'transport-rule', connector, reply: rules.reject.reply }, { transportRule: rules.reject.rule, size: stream.byteLength }));
    }
    // The header section as spooled: our trace fields, then what the checks found (an
    // Authentication-Results of ours from outside removed: it could only be forged), then the
    // sender's fields as the rules leave them.
    const authHeaders = !authenticated
      ? ''
      : authenticated instanceof Error
        ? `Authentication-Results: ${auth!.authservId}; none (sender authentication did not complete)\r\n` // RFC 8601 §2.2: nothing was checked
        : authenticated.headers + (verdict?.action === 'quarantine' ? `${QUARANTINE_FIELD}\r\n` : '');
    if (writer && !writeError && (rules.removeHeaders.length || rules.setHeaders.length || checks)) {
      const head = scanner.head;
      const own = auth && checks ? filterHeaderBlock(head.own, (name, value) => claimsOurAuthservId(name, value, auth.authservId)).block : head.own;
      try {
        await writer.replaceHead(head.length, Buffer.from(head.ours + authHeaders + editHeaderBlock(own, rules.removeHeaders, rules.setHeaders), 'latin1'));
      } catch (e) {
        writeError = e as Error;
      }
    }

    let env: Envelope | null = null;
    const proven = senderProven(txn.decision.attribution);
    const commitAt = performance.now();
    if (writer && !writeError) {
      try {
        env = await writer.commit({
          receivedAt: new Date().toISOString(),
          sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          recipients: session.envelope.rcptTo.map((r) => ({ address: r.address, status: 'pending', attempts: 0, ...queuedRoute(rules.routes.get(r.address), txn.recipients.get(r.address)), ...dsnOfRecipient(r, proven) })),
          ...(rules.fired.length ? { rules: rules.fired.map((f) => ({ name: f.rule, mode: f.mode })) } : {}),
          ...dsnOfMessage(session.envelope, proven),
          bodyType: session.envelope.bodyType === '8bitmime' ? '8bitmime' : '7bit',
          ...tlsFlags(!!session.envelope.requireTLS, headers),
          smtpUtf8: !!session.envelope.smtpUtf8,
          ...(authenticated && !(authenticated instanceof Error) ? { auth: { authResults: authenticated.authResults, cv: authenticated.cv } } : {}),
          client: { ip: session.remoteAddress, helo: session.hostNameAppearsAs || '', sessionId: session.id, connector, tls: st.tls ? st.tls.version : null },
        });
      } catch (e) {
        writeError = e as Error;
      }
    }
    if (!env) {
      await writer?.abort();
      const r = replies.localError();
      st.log.error({ event: 'refusal', rule: 'spool', reply: formatReply(r), err: writeError?.message }, 'could not spool the message');
      return cb(smtpError(r));
    }
    const r = replies.queued(env.id);
    const doneAt = performance.now();
    this.deps.metrics?.accepted.inc({ connector: connector ?? 'none' });
    st.log.info(
      traced({
        event: 'queued',
        qid: env.id,
        size: env.size,
        sender: env.sender,
        recipients: env.recipients.map((x) => x.address),
        connector,
        tls: st.tls?.version ?? null,
        messageId: headers.find((h) => h.name.toLowerCase() === 'message-id')?.value.trim().replace(/^<|>$/g, '') ?? null,
        stripped: scanner.strippedHeaders,
        strippedExchangeHeaders: scanner.strippedExchangeHeaders,
        delays: { checks: ms(commitAt - dotAt), commit: ms(doneAt - commitAt) },
        rules: rules.fired.map((f) => f.rule),
      }),
      'queued',
    );
    try {
      await this.deps.handOver?.(env);
    } catch (e) {
      // Committed but not taken by a queue manager: not acknowledged (the next start delivers it; a
      // retry by the client may make a duplicate, which at-least-once allows — a loss it does not).
      const refused = replies.localError();
      st.log.error({ event: 'refusal', rule: 'spool', qid: env.id, reply: formatReply(refused), err: (e as Error).message }, 'the queue manager did not take the message');
      return cb(smtpError(refused));
    }
    cb(null, `${r.enhanced} ${r.text}`);
  }
}
