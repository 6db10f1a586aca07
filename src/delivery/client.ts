// One delivery of one message to the recipients that share a route: try the next hops in
// order, enforce the connector's TLS, relay the spooled bytes as they are.
import fs from 'node:fs';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Route } from '../policy/outbound.js';
import type { OutboundConnector, Policy } from '../policy/types.js';
import type { Envelope } from '../queue/spool.js';
import { connectionTlsOptions, domainToValidate, type ClientIdentity, type TlsRequirement } from './tls-policy.js';
import { HopResolver, ResolveError, type NextHop } from './resolve.js';
import { caSetKey } from '../tls/context.js';
import { encodeXtext } from './xtext.js';

/** The outcome for one recipient of one attempt. */
export interface RecipientOutcome {
  status: 'delivered' | 'deferred' | 'failed';
  /** Enhanced status code (e.g. 2.0.0, 4.4.316, 5.1.1). */
  code: string;
  /** What to record and put in a DSN: the remote reply or our reason. */
  detail: string;
  remote?: string; // the hop that answered
  /** Delivered to a next hop that offers DSN: NOTIFY and ORCPT went along, it reports from here on. */
  dsnPassed?: boolean;
}

export interface DeliveryJob {
  envelope: Envelope;
  recipients: string[];
  route: Route;
  content: () => fs.ReadStream;
}

export interface DeliveryDeps {
  policy: Policy;
  identity: ClientIdentity;
  resolver: HopResolver;
  /** Extra trust roots per file (connector tlsCertificateAuthorities), cached by the caller. */
  readCa: (file: string) => string;
  /** Reused connections; none = one connection per delivery. */
  pool?: ConnectionPool;
  timeouts?: { connection: number; greeting: number; socket: number };
}

interface HopFailure {
  code: string; // 4.4.3xx / 4.7.320
  detail: string;
}

const ENHANCED = /\b([245]\.\d{1,3}\.\d{1,3})\b/;

function replyOutcome(response: string, responseCode: number, remote: string): RecipientOutcome {
  const enhanced = ENHANCED.exec(response)?.[1];
  const permanent = responseCode >= 500;
  return {
    status: permanent ? 'failed' : 'deferred',
    code: enhanced ?? (permanent ? '5.0.0' : '4.0.0'),
    detail: `${remote} said: ${response.trim()}`,
    remote,
  };
}

type NodemailerError = Error & { code?: string; responseCode?: number; response?: string; command?: string; permanent?: boolean };

const CERT_PROBLEM = /certificate|self[- ]signed|unable to (get|verify)|CERT_|altname|Hostname\/IP does not match|name mismatch/i;

/** Connection-level failures, classified with Exchange's codes (SPEC §4). */
export function classifyConnectionError(err: NodemailerError, tlsRequired: boolean): HopFailure {
  const msg = err.message ?? String(err);
  if (err.command === 'STARTTLS' && err.responseCode) return { code: '4.4.317', detail: `TLS required but STARTTLS was refused: ${err.response?.trim() ?? msg}` };
  if (tlsRequired && /STARTTLS/i.test(msg) && err.responseCode) return { code: '4.4.317', detail: `TLS required but not offered: ${msg}` };
  if (CERT_PROBLEM.test(msg)) return { code: '4.7.320', detail: `certificate validation failed: ${msg}` };
  if (err.code === 'ETIMEDOUT' || /timed? ?out/i.test(msg)) return { code: '4.4.315', detail: `timed out: ${msg}` };
  if (/ECONNREFUSED/.test(msg) || (err as { errno?: string }).errno === 'ECONNREFUSED') return { code: '4.4.316', detail: `connection refused: ${msg}` };
  if (err.code === 'ETLS') return { code: '4.4.317', detail: `TLS negotiation failed: ${msg}` };
  return { code: '4.4.318', detail: `connection closed: ${msg}` };
}

/** Shuffles in place (Fisher–Yates): smart hosts are tried in random order. */
function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** What a connector's tlsSettings demand of a connection for a recipient domain (SPEC §4). */
export function connectorTlsRequirement(c: OutboundConnector, rcptDomain: string, readCa: (file: string) => string): TlsRequirement {
  return {
    settings: c.tlsSettings,
    extraCa: c.tlsCertificateAuthorities ? [readCa(c.tlsCertificateAuthorities)] : [],
    domain: c.tlsSettings === 'domainValidation' ? domainToValidate(c.tlsDomain, rcptDomain) : null,
  };
}

/** A connector's next hops: the MX of the recipient domain, or its smart hosts in random order. */
export async function connectorHops(c: OutboundConnector, rcptDomain: string, resolver: HopResolver): Promise<NextHop[]> {
  if (c.useMXRecord) return resolver.domain(rcptDomain);
  const hops: NextHop[] = [];
  let lastErr: ResolveError | null = null;
  for (const h of shuffle([...c.smartHosts])) {
    try {
      hops.push(...(await resolver.smartHost(h)));
    } catch (e) {
      lastErr = e as ResolveError;
    }
  }
  if (!hops.length && lastErr) throw lastErr;
  return hops;
}

export async function deliver(job: DeliveryJob, deps: DeliveryDeps): Promise<Map<string, RecipientOutcome>> {
  const { route } = job;
  const rcptDomain = job.recipients[0]!.slice(job.recipients[0]!.lastIndexOf('@') + 1).toLowerCase();
  const all = (o: RecipientOutcome) => new Map(job.recipients.map((r) => [r, o]));

  let req: TlsRequirement;
  let hops: NextHop[];
  try {
    if (route.kind === 'connector') {
      req = connectorTlsRequirement(route.connector, rcptDomain, deps.readCa);
      hops = await connectorHops(route.connector, rcptDomain, deps.resolver);
    } else {
      req = { settings: null, extraCa: [], domain: null };
      hops = await deps.resolver.domain(rcptDomain);
    }
  } catch (e) {
    const r = e as ResolveError;
    return all({ status: r.permanent ? 'failed' : 'deferred', code: r.status ?? '4.4.312', detail: r.message });
  }

  let last: HopFailure = { code: '4.4.312', detail: 'no next hop' };
  for (const hop of hops) {
    const result = await attempt(job, deps, hop, req);
    if (result instanceof Map) return result;
    last = result;
  }
  return all({ status: 'deferred', code: last.code, detail: last.detail });
}

type Conn = InstanceType<typeof SMTPConnection>;

/** Ends a connection politely; errors of a closing socket are of no interest. */
function dispose(conn: Conn): void {
  conn.removeAllListeners('error');
  conn.on('error', () => {});
  conn.quit();
}
type SendInfo = { accepted: string[]; rejected: string[]; rejectedErrors?: NodemailerError[]; response?: string };

/**
 * Idle SMTP connections per next hop and TLS requirement, reused for the next message (one
 * TLS handshake for many messages, as Postfix's connection cache does). A connection serves at
 * most MAX_USES messages and is closed after IDLE_MS unused.
 */
export class ConnectionPool {
  private idle = new Map<string, Array<{ conn: Conn; uses: number; timer: NodeJS.Timeout; drop: () => void }>>();
  static readonly MAX_USES = 100;
  static readonly IDLE_MS = 5_000;

  take(key: string): { conn: Conn; uses: number } | null {
    const list = this.idle.get(key);
    const e = list?.pop();
    if (!e) return null;
    if (!list!.length) this.idle.delete(key);
    clearTimeout(e.timer);
    e.conn.removeListener('error', e.drop);
    e.conn.removeListener('end', e.drop);
    return { conn: e.conn, uses: e.uses };
  }

  give(key: string, conn: Conn, uses: number): void {
    if (uses >= ConnectionPool.MAX_USES) return dispose(conn);
    const list = this.idle.get(key) ?? [];
    const entry = {
      conn,
      uses,
      timer: setTimeout(() => drop(), ConnectionPool.IDLE_MS),
      drop: () => drop(),
    };
    const drop = () => {
      clearTimeout(entry.timer);
      const l = this.idle.get(key);
      const i = l?.indexOf(entry) ?? -1;
      if (i >= 0) l!.splice(i, 1);
      if (l && !l.length) this.idle.delete(key);
      conn.removeListener('end', entry.drop);
      dispose(conn);
      conn.close();
    };
    entry.timer.unref();
    conn.once('error', entry.drop);
    conn.once('end', entry.drop);
    list.push(entry);
    this.idle.set(key, list);
  }

  closeAll(): void {
    for (const list of [...this.idle.values()]) for (const e of [...list]) e.drop();
  }
}

type SendOutcome = { kind: 'result'; result: Map<string, RecipientOutcome>; reusable: boolean } | { kind: 'failure'; failure: HopFailure };

/** One SMTP transaction on an open connection. */
function transaction(conn: Conn, job: DeliveryJob, remote: string, requireTLS: boolean): Promise<SendOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: SendOutcome) => {
      if (settled) return;
      settled = true;
      conn.removeListener('error', onError);
      conn.removeListener('end', onEnd);
      resolve(v);
    };
    const onError = (err: NodemailerError) => done({ kind: 'failure', failure: classifyConnectionError(err, requireTLS) });
    const onEnd = () => done({ kind: 'failure', failure: { code: '4.4.318', detail: `connection to ${remote} closed` } });
    conn.once('error', onError);
    conn.once('end', onEnd);
    const env = job.envelope;
    const dsnPassed = passDsnParameters(conn, env);
    const envelope = { from: env.sender, to: job.recipients, size: env.size, use8BitMime: env.bodyType === '8bitmime', ...(env.dsn ? { dsn: { ret: env.dsn.ret, envid: env.dsn.envid } } : {}) };
    conn.send(envelope, job.content(), (err: NodemailerError | null, info?: SendInfo) => {
      const out = new Map<string, RecipientOutcome>();
      if (err && !info) {
        if (!err.responseCode) return done({ kind: 'failure', failure: classifyConnectionError(err, requireTLS) });
        const o = replyOutcome(err.response ?? err.message, err.responseCode, remote);
        for (const r of job.recipients) out.set(r, o);
        for (const re of (err as { rejectedErrors?: NodemailerError[] }).rejectedErrors ?? []) {
          const who = (re as { recipient?: string }).recipient;
          if (who && re.responseCode) out.set(who, replyOutcome(re.response ?? re.message, re.responseCode, remote));
        }
        return done({ kind: 'result', result: out, reusable: false });
      }
      const accepted = new Set(info!.accepted.map((a) => a.toLowerCase()));
      for (const r of job.recipients) {
        if (accepted.has(r.toLowerCase())) out.set(r, { status: 'delivered', code: '2.0.0', detail: `${remote} said: ${info!.response ?? '250'}`, remote, dsnPassed });
      }
      for (const re of info!.rejectedErrors ?? []) {
        const who = (re as { recipient?: string }).recipient;
        if (who && !out.has(who)) out.set(who, replyOutcome(re.response ?? re.message, re.responseCode ?? 450, remote));
      }
      for (const r of job.recipients) if (!out.has(r)) out.set(r, { status: 'deferred', code: '4.0.0', detail: `${remote}: no reply for this recipient`, remote });
      done({ kind: 'result', result: out, reusable: true });
    });
  });
}

/**
 * RFC 3461 §5.2: a relay passes each recipient's NOTIFY and ORCPT on to a next hop that offers
 * DSN (RET and ENVID go with MAIL FROM through nodemailer's envelope.dsn). nodemailer gives
 * every RCPT of a transaction the same NOTIFY and ORCPT, so its RCPT parameters are supplied
 * here per recipient. Returns whether the next hop offers DSN.
 */
function passDsnParameters(conn: Conn, env: Envelope): boolean {
  const c = conn as unknown as { _supportedExtensions?: string[]; _recipientQueue?: string[]; _getDsnRcptToArgs?: () => string };
  const offered = !!c._supportedExtensions?.includes('DSN');
  const byAddress = new Map(env.recipients.map((r) => [r.address, r]));
  c._getDsnRcptToArgs = () => {
    if (!offered) return '';
    const queue = c._recipientQueue ?? [];
    const r = byAddress.get(queue[queue.length - 1] ?? '');
    const args: string[] = [];
    if (r?.notify?.length) args.push(`NOTIFY=${r.notify.join(',')}`);
    if (r?.orcpt) args.push(`ORCPT=${encodeXtext(r.orcpt)}`);
    return args.length ? ` ${args.join(' ')}` : '';
  };
  return offered;
}

/** Opens a connection with the TLS the connector demands; a HopFailure when it cannot be had. */
function open(deps: DeliveryDeps, hop: NextHop, tlsOpts: ReturnType<typeof connectionTlsOptions>, remote: string): Promise<Conn | HopFailure> {
  const t = deps.timeouts ?? { connection: 30_000, greeting: 30_000, socket: 300_000 };
  return new Promise((resolve) => {
    let settled = false;
    const conn = new SMTPConnection({
      host: hop.address,
      port: hop.port,
      name: deps.policy.gateway.hostname,
      connectionTimeout: t.connection,
      greetingTimeout: t.greeting,
      socketTimeout: t.socket,
      logger: false,
      ...tlsOpts,
    });
    const fail = (f: HopFailure) => {
      if (settled) return;
      settled = true;
      conn.removeAllListeners('end');
      conn.on('error', () => {});
      conn.close();
      resolve(f);
    };
    conn.once('error', (err: NodemailerError) => fail(classifyConnectionError(err, tlsOpts.requireTLS)));
    conn.once('end', () => fail({ code: '4.4.318', detail: `connection to ${remote} closed` }));
    conn.connect(() => {
      if (settled) return;
      if (tlsOpts.requireTLS && !conn.secure) {
        // Belt and braces: never send a message in plaintext when the connector requires TLS.
        return fail({ code: '4.4.317', detail: `TLS required but not established with ${remote}` });
      }
      settled = true;
      conn.removeAllListeners('error');
      conn.removeAllListeners('end');
      resolve(conn);
    });
  });
}

async function attempt(job: DeliveryJob, deps: DeliveryDeps, hop: NextHop, req: TlsRequirement): Promise<Map<string, RecipientOutcome> | HopFailure> {
  const remote = `${hop.name}[${hop.address}]:${hop.port}`;
  const sni = hop.name !== hop.address ? hop.name : undefined;
  const tlsOpts = connectionTlsOptions(req, deps.identity, sni);
  const key = `${hop.address}|${hop.port}|${sni ?? ''}|${req.settings}|${req.domain?.text ?? ''}|${caSetKey(req.extraCa)}`;
  const pool = deps.pool;
  // A cached connection first; if it went stale, a fresh one.
  const cached = pool?.take(key);
  if (cached) {
    const r = await transaction(cached.conn, job, remote, tlsOpts.requireTLS);
    if (r.kind === 'result') {
      if (r.reusable) pool!.give(key, cached.conn, cached.uses + 1);
      else dispose(cached.conn);
      return r.result;
    }
    dispose(cached.conn);
    cached.conn.close();
  }
  const conn = await open(deps, hop, tlsOpts, remote);
  if (!(conn instanceof SMTPConnection)) return conn as HopFailure;
  const r = await transaction(conn, job, remote, tlsOpts.requireTLS);
  if (r.kind === 'failure') {
    dispose(conn);
    conn.close();
    return r.failure;
  }
  if (r.reusable && pool) pool.give(key, conn, 1);
  else dispose(conn);
  return r.result;
}
