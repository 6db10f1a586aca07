// One delivery of one message to the recipients that share a route: try the next hops in
// order, enforce the connector's TLS, relay the spooled bytes as they are.
import type { Readable } from 'node:stream';
import { domainOf } from '../mail/address.js';
import { encodeXtext } from '../mail/xtext.js';
import type { Route } from '../policy/outbound.js';
import type { OutboundConnector, Policy } from '../policy/types.js';
import { caSetKey } from '../tls/context.js';
import { connectionTlsOptions, type ClientIdentity, type TlsRequirement } from './tls-policy.js';
import { HopResolver, ResolveError, type NextHop } from './resolve.js';
import { connectionFacts, isRequireTlsRefusal, offersExtension, peerCertificates, peerVerification, setRcptParameters, SMTPConnection, type Conn, type NodemailerError } from './nodemailer-adapter.js';
import { lookupMx, matchTlsa, type SecuredHop } from './dane.js';
import { hopFailureUnder, outboundPolicies, planFailure, planSecured, securedHops, tlsaVerdict, wantsMtaSts, type DeliveryPlan, type HopFacts, type OutboundPolicies } from './plan.js';
import type { SecureResolver } from './dnssec-resolver.js';
import type { StsPolicies } from './mta-sts.js';
import { resultTypeOf, type ResultType, type SessionResult } from './tls-results.js';
import { ConnectionPool, dispose } from './pool.js';
import { outgoing, type Outgoing } from './outgoing.js';
import { SigningError, type SigningKeys } from '../auth/sign.js';
import { classifyConnectionFailure, hopFailure, outcomes, replyOutcome, type HopFailure, type RecipientOutcome } from './status.js';

/** What delivery needs of a queued message (the queue's envelope is one). */
export interface DeliveryEnvelope {
  id: string;
  sender: string; // "" = null sender
  size: number;
  bodyType: '7bit' | '8bitmime';
  recipients: ReadonlyArray<{ address: string; notify?: readonly string[]; orcpt?: string }>;
  /** RFC 3461 RET and ENVID of MAIL FROM. */
  dsn?: { ret: 'FULL' | 'HDRS' | null; envid: string | null };
  /** RFC 8689 REQUIRETLS: only to a next hop that offers it, over TLS verified for its name. */
  requireTls?: boolean;
  /** RFC 8689 §5 `TLS-Required: No`: the sender asks that DANE and MTA-STS not stop delivery. */
  tlsRequiredNo?: boolean;
  /** SPEC §11: what the edge found for a message from outside, for the ARC seal. */
  auth?: { authResults: string; cv: 'none' | 'pass' | 'fail' };
}

export interface DeliveryJob {
  envelope: DeliveryEnvelope;
  recipients: string[];
  route: Route;
  content: () => Readable;
}

export interface DeliveryDeps {
  policy: Policy;
  identity: ClientIdentity;
  resolver: HopResolver;
  /** Extra trust roots per file (connector tlsCertificateAuthorities), cached by the caller. */
  readCa: (file: string) => string;
  /** Reused connections; none = one connection per delivery. */
  pool?: ConnectionPool;
  /** The DNSSEC-aware resolver of gateway.dns.servers, for DANE; none = DANE not in effect. */
  secureResolver?: SecureResolver;
  /** MTA-STS policies (cached on disk); none = MTA-STS not applied. */
  sts?: StsPolicies;
  /** RFC 8460: each TLS negotiation under DANE or MTA-STS, for TLS reports. */
  tlsResult?: (r: SessionResult) => void;
  /** Policy failures that did not stop the delivery (MTA-STS testing), for logs and reports. */
  report?: (e: { event: 'tls-policy-failure'; policy: 'mta-sts'; mode: 'testing'; mx: string; remote: string; result: string }) => void;
  timeouts?: { connection: number; greeting: number; socket: number };
  /** The DKIM and ARC keys the policy names, read at start and reload; none = nothing is signed. */
  signingKeys?: SigningKeys;
}

/** Shuffles in place (Fisher–Yates): smart hosts are tried in random order. */
function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
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

type LookupDeps = Pick<DeliveryDeps, 'resolver' | 'secureResolver' | 'sts'>;

/** The hops the plan starts from (plan.ts HopFacts found): DANE's DNS facts, or the resolver's hops, or why there are none. */
async function lookupFound(p: OutboundPolicies, route: Route, deps: LookupDeps): Promise<HopFacts['found']> {
  if (p.dane && deps.secureResolver) return { dane: await lookupMx(p.rcptDomain, deps.secureResolver) };
  try {
    return { hops: route.kind === 'connector' ? await connectorHops(route.connector, p.rcptDomain, deps.resolver) : await deps.resolver.domain(p.rcptDomain) };
  } catch (e) {
    if (!(e instanceof ResolveError)) throw e;
    return { error: { permanent: e.permanent, status: e.status, detail: e.message } };
  }
}

/** The domain's MTA-STS policy, looked up only where the plan wants it (DANE protects none of the hops). */
async function lookupSts(p: OutboundPolicies, hops: readonly SecuredHop[], deps: LookupDeps): Promise<HopFacts['sts']> {
  if (!deps.sts || !wantsMtaSts(p, hops)) return null;
  const sts = await deps.sts.forDomain(p.rcptDomain);
  return sts.policy ? { policy: sts.policy, id: sts.id } : null;
}

/** The plan from the DNS facts (plan.ts), each step once: the hops secured, then MTA-STS where it applies. */
export async function lookupPlan(p: OutboundPolicies, route: Route, deps: LookupDeps): Promise<DeliveryPlan> {
  const secured = securedHops(p, await lookupFound(p, route, deps));
  return secured.ok ? planSecured(p, secured.hops, await lookupSts(p, secured.hops, deps)) : secured;
}

export async function deliver(job: DeliveryJob, deps: DeliveryDeps): Promise<Map<string, RecipientOutcome>> {
  const rcptDomain = domainOf(job.recipients[0] ?? '');
  const all = (o: RecipientOutcome): Map<string, RecipientOutcome> => new Map(job.recipients.map((r) => [r, o]));
  const env = job.envelope;
  const p = outboundPolicies(deps.policy, job.route, rcptDomain, { requireTls: !!env.requireTls, tlsRequiredNo: !!env.tlsRequiredNo }, deps.readCa, !!deps.secureResolver);
  const plan = await lookupPlan(p, job.route, deps);
  if (!plan.ok) return all(plan.outcome);
  let out: Outgoing;
  try {
    out = await outgoing(deps.policy, deps.signingKeys ?? new Map(), { route: job.route, content: job.content, ...(env.auth ? { auth: env.auth } : {}) });
  } catch (e) {
    return all(e instanceof SigningError ? outcomes.signingFailed((e as Error).message) : outcomes.internalError((e as Error).message));
  }

  const failures: HopFailure[] = [];
  let lastLabel = plan.label;
  for (const hop of plan.hops) {
    let testingFailure: ResultType | null = null;
    const req = { ...hop.requirement, onStsTestingFailure: (r: ResultType) => (testingFailure = r) };
    const result = await attempt(job, out, deps, hop, req);
    recordTlsResult(deps, rcptDomain, hop, result instanceof Map ? (testingFailure ?? 'success') : resultTypeOf(result.kind));
    if (result instanceof Map) {
      if (hop.label) for (const [r, o] of result) result.set(r, { ...o, security: hop.label });
      return result;
    }
    failures.push(result);
    lastLabel = hop.label;
  }
  return all(planFailure(p, failures, lastLabel));
}

/** RFC 8460: one TLS negotiation under DANE or MTA-STS, for the daily report. */
function recordTlsResult(deps: DeliveryDeps, domain: string, hop: SecuredHop, result: SessionResult['result'] | null): void {
  const s = hop.security;
  if (!deps.tlsResult || result === null || s.kind === 'none') return;
  const policy = s.kind === 'sts' ? { policyType: 'sts' as const, policyString: s.policy } : { policyType: 'tlsa' as const, policyString: s.kind === 'dane' ? s.tlsa.map((t) => `${t.usage} ${t.selector} ${t.matchingType} ${t.data.toString('hex')}`) : [] };
  deps.tlsResult({ at: new Date().toISOString(), domain, ...policy, mxHost: hop.name, receivingIp: hop.address, result });
}

type SendInfo = { accepted: string[]; rejected: string[]; rejectedErrors?: NodemailerError[]; response?: string };
type SendOutcome = { kind: 'result'; result: Map<string, RecipientOutcome>; reusable: boolean } | { kind: 'failure'; failure: HopFailure };

/** One SMTP transaction on an open connection. */
function transaction(conn: Conn, job: DeliveryJob, out: Outgoing, remote: string, requireTLS: boolean): Promise<SendOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: SendOutcome): void => {
      if (settled) return;
      settled = true;
      conn.removeListener('error', onError);
      conn.removeListener('end', onEnd);
      resolve(v);
    };
    const failed = (err: NodemailerError): HopFailure => classifyConnectionFailure(connectionFacts(err, conn, requireTLS, true));
    const onError = (err: NodemailerError): void => done({ kind: 'failure', failure: failed(err) });
    const onEnd = (): void => done({ kind: 'failure', failure: hopFailure('closed', `connection to ${remote} closed`) });
    conn.once('error', onError);
    conn.once('end', onEnd);
    const env = job.envelope;
    const dsnPassed = passDsnParameters(conn, env);
    // The header firewall on the way out (Exchange organization headers reach only an onPremises
    // connector with cloudServicesMailEnabled), then the signatures (outgoing.ts).
    const { stream: content, filter } = out.open();
    const envelope = {
      from: env.sender,
      to: job.recipients,
      size: env.size,
      use8BitMime: env.bodyType === '8bitmime',
      ...(env.dsn ? { dsn: { ret: env.dsn.ret, envid: env.dsn.envid } } : {}),
      ...(env.requireTls ? { requireTLSExtensionEnabled: true } : {}),
    };
    conn.send(envelope, content, (err: NodemailerError | null, info?: SendInfo) => {
      const result = new Map<string, RecipientOutcome>();
      if (err && !info) {
        if (isRequireTlsRefusal(err)) return done({ kind: 'failure', failure: hopFailure('requiretls', `${remote} does not offer REQUIRETLS`) });
        if (!err.responseCode) return done({ kind: 'failure', failure: failed(err) });
        const o = replyOutcome(err.response ?? err.message, err.responseCode, remote);
        for (const r of job.recipients) result.set(r, o);
        for (const re of (err as { rejectedErrors?: NodemailerError[] }).rejectedErrors ?? []) {
          const who = (re as { recipient?: string }).recipient;
          if (who && re.responseCode) result.set(who, replyOutcome(re.response ?? re.message, re.responseCode, remote));
        }
        return done({ kind: 'result', result, reusable: false });
      }
      const accepted = new Set((info?.accepted ?? []).map((a) => a.toLowerCase()));
      for (const r of job.recipients) {
        if (accepted.has(r.toLowerCase())) result.set(r, { ...outcomes.delivered(remote, info?.response ?? '250', dsnPassed), ...(filter?.removed ? { strippedExchangeHeaders: filter.removed } : {}), ...(out.signed.dkim.length || out.signed.arc ? { signed: out.signed } : {}) });
      }
      for (const re of info?.rejectedErrors ?? []) {
        const who = (re as { recipient?: string }).recipient;
        if (who && !result.has(who)) result.set(who, replyOutcome(re.response ?? re.message, re.responseCode ?? 450, remote));
      }
      for (const r of job.recipients) if (!result.has(r)) result.set(r, outcomes.noReply(remote));
      done({ kind: 'result', result, reusable: true });
    });
  });
}

/**
 * RFC 3461 §5.2: a relay passes each recipient's NOTIFY and ORCPT on to a next hop that offers
 * DSN (RET and ENVID go with MAIL FROM through nodemailer's envelope.dsn). Returns whether the
 * next hop offers DSN.
 */
function passDsnParameters(conn: Conn, env: DeliveryEnvelope): boolean {
  const offered = offersExtension(conn, 'DSN');
  const byAddress = new Map(env.recipients.map((r) => [r.address, r]));
  setRcptParameters(conn, (recipient) => {
    if (!offered) return '';
    const r = byAddress.get(recipient);
    const args: string[] = [];
    if (r?.notify?.length) args.push(`NOTIFY=${r.notify.join(',')}`);
    if (r?.orcpt) args.push(`ORCPT=${encodeXtext(r.orcpt)}`);
    return args.join(' ');
  });
  return offered;
}

/** Opens a connection with the TLS the connector demands; a HopFailure when it cannot be had. */
function open(deps: DeliveryDeps, hop: NextHop, req: TlsRequirement, tlsOpts: ReturnType<typeof connectionTlsOptions>, remote: string): Promise<Conn | HopFailure> {
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
    const fail = (f: HopFailure): void => {
      if (settled) return;
      settled = true;
      conn.removeAllListeners('end');
      conn.on('error', () => {});
      conn.close();
      resolve(f);
    };
    conn.once('error', (err: NodemailerError) => fail(classifyConnectionFailure(connectionFacts(err, conn, tlsOpts.requireTLS, false))));
    conn.once('end', () => fail(hopFailure('closed', `connection to ${remote} closed`)));
    conn.connect(() => {
      if (settled) return;
      if (tlsOpts.requireTLS && !conn.secure) {
        // Belt and braces: never send a message in plaintext when the connector requires TLS.
        return fail(hopFailure('tls-unavailable', `TLS required but not established with ${remote}`));
      }
      if (req.dane) {
        // DANE: the chain the server sent must match a TLSA record before anything is sent.
        const refused = tlsaVerdict(matchTlsa(req.dane.tlsa, peerCertificates(conn), req.dane.names), remote);
        if (refused) return fail(refused);
      }
      if (req.sts === 'testing' && req.stsHost) {
        // MTA-STS testing: deliver as usual, and report what enforce would have refused.
        const problem = stsTestingProblem(conn, req.stsHost);
        if (problem) {
          req.onStsTestingFailure?.(problem);
          deps.report?.({ event: 'tls-policy-failure', policy: 'mta-sts', mode: 'testing', mx: hop.name, remote, result: problem });
        }
      }
      settled = true;
      conn.removeAllListeners('error');
      conn.removeAllListeners('end');
      resolve(conn);
    });
  });
}

/** MTA-STS testing: what enforce would have refused on this connection (RFC 8460 result types), or null. */
function stsTestingProblem(conn: Conn, mx: string): ResultType | null {
  if (!conn.secure) return 'starttls-not-supported';
  const v = peerVerification(conn);
  if (!v.authorized) return v.error === 'CERT_HAS_EXPIRED' ? 'certificate-expired' : v.error === 'ERR_TLS_CERT_ALTNAME_INVALID' ? 'certificate-host-mismatch' : 'validation-failure';
  const leaf = peerCertificates(conn)[0];
  return leaf && leaf.checkHost(mx) !== undefined ? null : 'certificate-host-mismatch';
}

async function attempt(job: DeliveryJob, out: Outgoing, deps: DeliveryDeps, hop: NextHop, req: TlsRequirement): Promise<Map<string, RecipientOutcome> | HopFailure> {
  const remote = `${hop.name}[${hop.address}]:${hop.port}`;
  const sni = hop.name !== hop.address ? hop.name : undefined;
  const tlsOpts = connectionTlsOptions(req, deps.identity, sni);
  const dane = req.dane ? req.dane.tlsa.map((t) => `${t.usage}${t.selector}${t.matchingType}${t.data.toString('hex')}`).join(',') : '';
  const key = `${hop.address}|${hop.port}|${sni ?? ''}|${req.settings}|${req.domain?.text ?? ''}|${req.host ?? ''}|${dane}|${caSetKey(req.extraCa)}`;
  const pool = deps.pool;
  // A cached connection first; if it went stale, a fresh one.
  const cached = pool?.take(key);
  if (pool && cached) {
    const r = await transaction(cached.conn, job, out, remote, tlsOpts.requireTLS);
    if (r.kind === 'result') {
      if (r.reusable) pool.give(key, cached.conn, cached.uses + 1);
      else dispose(cached.conn);
      return r.result;
    }
    dispose(cached.conn);
    cached.conn.close();
    if (r.failure.kind === 'requiretls') return r.failure; // what the hop offers, not a stale connection
  }
  const conn = await open(deps, hop, req, tlsOpts, remote);
  if (!(conn instanceof SMTPConnection)) return hopFailureUnder(req, conn);
  const r = await transaction(conn, job, out, remote, tlsOpts.requireTLS);
  if (r.kind === 'failure') {
    dispose(conn);
    conn.close();
    return hopFailureUnder(req, r.failure);
  }
  if (r.reusable && pool) pool.give(key, conn, 1);
  else dispose(conn);
  return r.result;
}
