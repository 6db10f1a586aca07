// One delivery of one message to the recipients that share a route: try the next hops in
// order, enforce the connector's TLS, relay the spooled bytes as they are.
import type { Readable } from 'node:stream';
import { domainOf } from '../mail/address.js';
import { encodeXtext } from '../mail/xtext.js';
import type { Route } from '../policy/outbound.js';
import type { OutboundConnector, Policy } from '../policy/types.js';
import { caSetKey } from '../tls/context.js';
import { connectionTlsOptions, domainToValidate, type ClientIdentity, type TlsRequirement } from './tls-policy.js';
import { HopResolver, ResolveError, type NextHop } from './resolve.js';
import { connectionFacts, isRequireTlsRefusal, offersExtension, peerCertificates, peerVerification, setRcptParameters, SMTPConnection, type Conn, type NodemailerError } from './nodemailer-adapter.js';
import { lookupMx, matchTlsa, planMx, type SecuredHop } from './dane.js';
import type { SecureResolver } from './dnssec-resolver.js';
import { mtaStsModeFor, outboundSecurity } from '../policy/outbound-security.js';
import { mxAllowed, type StsPolicies, type StsPolicy } from './mta-sts.js';
import { resultTypeOf, type ResultType, type SessionResult } from './tls-report.js';
import { ConnectionPool, dispose } from './pool.js';
import { HeaderFilter } from './header-filter.js';
import { isExchangeTrustedHeader, keepExchangeHeadersTo } from '../policy/headers.js';
import { pipeline } from 'node:stream';
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
  const rcptDomain = domainOf(job.recipients[0] ?? '');
  const all = (o: RecipientOutcome): Map<string, RecipientOutcome> => new Map(job.recipients.map((r) => [r, o]));

  const req: TlsRequirement = route.kind === 'connector' ? connectorTlsRequirement(route.connector, rcptDomain, deps.readCa) : { settings: null, extraCa: [], domain: null };
  const secured = await secureHops(job, deps, rcptDomain);
  if (!('hops' in secured)) return all(secured);
  const { hops, label } = secured;

  let last: HopFailure = hopFailure('dns', 'no next hop');
  // REQUIRETLS: each hop must prove its name with a verified certificate and offer REQUIRETLS.
  const requireTls = !!job.envelope.requireTls;
  let tlsUnmetOnly = requireTls;
  let lastHop: SecuredHop | null = null;
  for (const hop of hops) {
    let testingFailure: ResultType | null = null;
    const hopReq = { ...hopRequirement(req, hop, requireTls), onStsTestingFailure: (r: ResultType) => (testingFailure = r) };
    const result = await attempt(job, deps, hop, hopReq);
    recordTlsResult(deps, rcptDomain, hop, result instanceof Map ? (testingFailure ?? 'success') : resultTypeOf(result.kind));
    if (result instanceof Map) {
      for (const [r, o] of result) result.set(r, { ...o, ...label(hop) });
      return result;
    }
    last = result;
    lastHop = hop;
    if (!REQUIRETLS_UNMET.has(result.kind)) tlsUnmetOnly = false;
  }
  // No hop could meet REQUIRETLS (as opposed to being unreachable): the sender is told now.
  if (tlsUnmetOnly && hops.length) return all({ ...outcomes.requireTlsUnmet(last), ...label(lastHop) });
  return all({ ...outcomes.hopsFailed(last), ...label(lastHop) });
}

/**
 * The next hops and what each one's TLS must prove (SPEC §8). MX routes: DANE where the domain's
 * DNSSEC-signed TLSA records say so; otherwise MTA-STS where the domain publishes a policy;
 * otherwise the connector's tlsSettings (or opportunistic TLS). A message with
 * `TLS-Required: No` (RFC 8689 §5) is sent without DANE or MTA-STS, as its sender asked.
 * Returns the outcome for every recipient instead when the domain cannot be used now.
 */
async function secureHops(job: DeliveryJob, deps: DeliveryDeps, rcptDomain: string): Promise<{ hops: SecuredHop[]; label: (hop: SecuredHop | null) => Pick<RecipientOutcome, 'security'> } | RecipientOutcome> {
  const { route } = job;
  const mxRoute = route.kind === 'mx' || route.connector.useMXRecord;
  const policies = !job.envelope.tlsRequiredNo;
  const security = outboundSecurity(deps.policy, route);
  const dane = policies && security.policy === 'dane' && deps.secureResolver ? { mode: security.mode, resolver: deps.secureResolver } : null;
  let hops: SecuredHop[];
  if (dane) {
    const plan = planMx(await lookupMx(rcptDomain, dane.resolver), dane.mode);
    if (!plan.ok) return { status: plan.permanent ? 'failed' : 'deferred', code: plan.status, detail: plan.failure.detail, security: 'dane' };
    hops = plan.hops;
  } else {
    try {
      const found = route.kind === 'connector' ? await connectorHops(route.connector, rcptDomain, deps.resolver) : await deps.resolver.domain(rcptDomain);
      hops = found.map((h) => ({ ...h, security: { kind: 'none' } }));
    } catch (e) {
      if (!(e instanceof ResolveError)) throw e;
      return { status: e.permanent ? 'failed' : 'deferred', code: e.status, detail: e.message };
    }
  }
  // MTA-STS where DANE does not protect the domain.
  let sts: 'enforce' | 'testing' | null = null;
  if (mxRoute && policies && deps.sts && mtaStsModeFor(deps.policy, route) !== 'none' && hops.every((h) => h.security.kind === 'none')) {
    const found = await deps.sts.forDomain(rcptDomain);
    if (found.policy && found.policy.mode !== 'none') {
      const policy = found.policy;
      sts = policy.mode === 'enforce' ? 'enforce' : 'testing';
      if (sts === 'enforce') {
        const listed = hops.filter((h) => mxAllowed(policy, h.name));
        if (!listed.length) {
          const f = hopFailure('certificate-host-mismatch', `certificate-host-mismatch: the MTA-STS policy of ${rcptDomain} (id ${found.id}) lists none of its MX hosts (${[...new Set(hops.map((h) => h.name))].join(', ')}); allowed: ${policy.mx.join(', ')}`);
          return { status: 'deferred', code: f.code, detail: f.detail, security: 'mta-sts-enforce' };
        }
        hops = listed.map((h) => ({ ...h, security: { kind: 'sts', mode: 'enforce', policy: policyLines(policy) } }));
      } else hops = hops.map((h) => ({ ...h, security: { kind: 'sts', mode: 'testing', policy: policyLines(policy) } }));
    }
  }
  const label = (hop: SecuredHop | null): Pick<RecipientOutcome, 'security'> => {
    if (!mxRoute) return {};
    if (sts) return { security: sts === 'enforce' ? 'mta-sts-enforce' : 'mta-sts-testing' };
    if (!dane) return { security: 'tlsSettings' };
    return { security: hop?.security.kind === 'encrypt' ? 'dane-encrypt' : hop?.security.kind === 'none' ? 'dane-none' : 'dane' };
  };
  return { hops, label };
}

/** The MTA-STS policy as RFC 8460's policy-string writes it. */
const policyLines = (p: StsPolicy): string[] => ['version: STSv1', `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAge}`];

/** RFC 8460: one TLS negotiation under DANE or MTA-STS, for the daily report. */
function recordTlsResult(deps: DeliveryDeps, domain: string, hop: SecuredHop, result: SessionResult['result'] | null): void {
  const s = hop.security;
  if (!deps.tlsResult || result === null || s.kind === 'none') return;
  const policy = s.kind === 'sts' ? { policyType: 'sts' as const, policyString: s.policy } : { policyType: 'tlsa' as const, policyString: s.kind === 'dane' ? s.tlsa.map((t) => `${t.usage} ${t.selector} ${t.matchingType} ${t.data.toString('hex')}`) : [] };
  deps.tlsResult({ at: new Date().toISOString(), domain, ...policy, mxHost: hop.name, receivingIp: hop.address, result });
}

/** Failures that mean a hop cannot meet REQUIRETLS (rather than being unreachable). */
const REQUIRETLS_UNMET = new Set<HopFailure['kind']>(['requiretls', 'certificate', 'tls-unavailable', 'starttls-required', 'tlsa-invalid', 'certificate-expired', 'certificate-host-mismatch']);

/**
 * What one hop's TLS must prove: DANE's TLSA match where DANE applies (it replaces PKIX and
 * satisfies REQUIRETLS), encryption at least where TLSA exists but none is usable, else the
 * connector's tlsSettings — with, for REQUIRETLS, a certificate verified for the hop's name.
 */
function hopRequirement(req: TlsRequirement, hop: SecuredHop, requireTls: boolean): TlsRequirement {
  const s = hop.security;
  if (s.kind === 'dane') return { ...req, dane: { tlsa: s.tlsa, names: s.names } };
  // MTA-STS enforce: TLS with a certificate valid for the MX name (RFC 8461 §4.2).
  if (s.kind === 'sts' && s.mode === 'enforce') return { ...req, host: hop.name, sts: 'enforce' };
  if (s.kind === 'sts') return requireTls ? { ...req, host: hop.name } : { ...req, sts: 'testing', stsHost: hop.name };
  const base = s.kind === 'encrypt' && req.settings === null ? { ...req, settings: 'encryptionOnly' as const } : req;
  return requireTls ? { ...base, host: hop.name } : base;
}

type SendInfo = { accepted: string[]; rejected: string[]; rejectedErrors?: NodemailerError[]; response?: string };
type SendOutcome = { kind: 'result'; result: Map<string, RecipientOutcome>; reusable: boolean } | { kind: 'failure'; failure: HopFailure };

/** One SMTP transaction on an open connection. */
function transaction(conn: Conn, job: DeliveryJob, remote: string, requireTLS: boolean): Promise<SendOutcome> {
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
    // The header firewall on the way out: Exchange organization headers reach only an onPremises
    // connector with cloudServicesMailEnabled.
    const filter = keepExchangeHeadersTo(job.route) ? null : new HeaderFilter(isExchangeTrustedHeader);
    const content = filter ? pipeline(job.content(), filter, () => {}) : job.content();
    const envelope = {
      from: env.sender,
      to: job.recipients,
      size: env.size,
      use8BitMime: env.bodyType === '8bitmime',
      ...(env.dsn ? { dsn: { ret: env.dsn.ret, envid: env.dsn.envid } } : {}),
      ...(env.requireTls ? { requireTLSExtensionEnabled: true } : {}),
    };
    conn.send(envelope, content, (err: NodemailerError | null, info?: SendInfo) => {
      const out = new Map<string, RecipientOutcome>();
      if (err && !info) {
        if (isRequireTlsRefusal(err)) return done({ kind: 'failure', failure: hopFailure('requiretls', `${remote} does not offer REQUIRETLS`) });
        if (!err.responseCode) return done({ kind: 'failure', failure: failed(err) });
        const o = replyOutcome(err.response ?? err.message, err.responseCode, remote);
        for (const r of job.recipients) out.set(r, o);
        for (const re of (err as { rejectedErrors?: NodemailerError[] }).rejectedErrors ?? []) {
          const who = (re as { recipient?: string }).recipient;
          if (who && re.responseCode) out.set(who, replyOutcome(re.response ?? re.message, re.responseCode, remote));
        }
        return done({ kind: 'result', result: out, reusable: false });
      }
      const accepted = new Set((info?.accepted ?? []).map((a) => a.toLowerCase()));
      for (const r of job.recipients) {
        if (accepted.has(r.toLowerCase())) out.set(r, { ...outcomes.delivered(remote, info?.response ?? '250', dsnPassed), ...(filter?.removed ? { strippedExchangeHeaders: filter.removed } : {}) });
      }
      for (const re of info?.rejectedErrors ?? []) {
        const who = (re as { recipient?: string }).recipient;
        if (who && !out.has(who)) out.set(who, replyOutcome(re.response ?? re.message, re.responseCode ?? 450, remote));
      }
      for (const r of job.recipients) if (!out.has(r)) out.set(r, outcomes.noReply(remote));
      done({ kind: 'result', result: out, reusable: true });
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
        const m = matchTlsa(req.dane.tlsa, peerCertificates(conn), req.dane.names);
        if (!m.ok) return fail(hopFailure('tlsa-invalid', `tlsa-invalid: ${remote}: ${m.reason}`));
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

/**
 * Under DANE or MTA-STS enforce, TLS that cannot be had is Exchange's 4.7.321
 * starttls-not-supported; under MTA-STS, an expired certificate is 4.7.322 and one for another
 * name 4.7.325.
 */
function policyFailure(req: TlsRequirement, f: HopFailure): HopFailure {
  if ((req.dane || req.sts === 'enforce') && f.kind === 'tls-unavailable') return hopFailure('starttls-required', `starttls-not-supported: ${f.detail}`);
  if (req.sts === 'enforce' && f.kind === 'certificate') {
    if (f.certificate?.reason === 'CERT_HAS_EXPIRED') return hopFailure('certificate-expired', `certificate-expired: ${f.detail}`, f.certificate);
    if (f.certificate?.problem === 'name') return hopFailure('certificate-host-mismatch', `certificate-host-mismatch: ${f.detail}`, f.certificate);
  }
  return f;
}

async function attempt(job: DeliveryJob, deps: DeliveryDeps, hop: NextHop, req: TlsRequirement): Promise<Map<string, RecipientOutcome> | HopFailure> {
  const remote = `${hop.name}[${hop.address}]:${hop.port}`;
  const sni = hop.name !== hop.address ? hop.name : undefined;
  const tlsOpts = connectionTlsOptions(req, deps.identity, sni);
  const dane = req.dane ? req.dane.tlsa.map((t) => `${t.usage}${t.selector}${t.matchingType}${t.data.toString('hex')}`).join(',') : '';
  const key = `${hop.address}|${hop.port}|${sni ?? ''}|${req.settings}|${req.domain?.text ?? ''}|${req.host ?? ''}|${dane}|${caSetKey(req.extraCa)}`;
  const pool = deps.pool;
  // A cached connection first; if it went stale, a fresh one.
  const cached = pool?.take(key);
  if (pool && cached) {
    const r = await transaction(cached.conn, job, remote, tlsOpts.requireTLS);
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
  if (!(conn instanceof SMTPConnection)) return policyFailure(req, conn);
  const r = await transaction(conn, job, remote, tlsOpts.requireTLS);
  if (r.kind === 'failure') {
    dispose(conn);
    conn.close();
    return policyFailure(req, r.failure);
  }
  if (r.reusable && pool) pool.give(key, conn, 1);
  else dispose(conn);
  return r.result;
}
