// One delivery of one message to the recipients that share a route: try the next hops in
// order, enforce the connector's TLS, relay the spooled bytes as they are.
import fs from 'node:fs';
import tls from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Route } from '../policy/outbound.js';
import type { Policy } from '../policy/types.js';
import type { Envelope } from '../queue/spool.js';
import { connectionTlsOptions, domainToValidate, type ClientIdentity, type TlsRequirement } from './tls-policy.js';
import { HopResolver, ResolveError, type NextHop } from './resolve.js';

/** The outcome for one recipient of one attempt. */
export interface RecipientOutcome {
  status: 'delivered' | 'deferred' | 'failed';
  /** Enhanced status code (e.g. 2.0.0, 4.4.316, 5.1.1). */
  code: string;
  /** What to record and put in a DSN: the remote reply or our reason. */
  detail: string;
  remote?: string; // the hop that answered
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

export async function deliver(job: DeliveryJob, deps: DeliveryDeps): Promise<Map<string, RecipientOutcome>> {
  const { route } = job;
  const rcptDomain = job.recipients[0]!.slice(job.recipients[0]!.lastIndexOf('@') + 1).toLowerCase();
  const all = (o: RecipientOutcome) => new Map(job.recipients.map((r) => [r, o]));

  let req: TlsRequirement;
  let hops: NextHop[];
  try {
    if (route.kind === 'connector') {
      const c = route.connector;
      const extra = c.tlsCertificateAuthorities ? [deps.readCa(c.tlsCertificateAuthorities)] : [];
      req = {
        settings: c.tlsSettings,
        ca: [...tls.rootCertificates, ...extra],
        domain: c.tlsSettings === 'domainValidation' ? domainToValidate(c.tlsDomain, rcptDomain) : null,
      };
      if (c.useMXRecord) hops = await deps.resolver.domain(rcptDomain);
      else {
        hops = [];
        let lastErr: ResolveError | null = null;
        for (const h of shuffle([...c.smartHosts])) {
          try {
            hops.push(...(await deps.resolver.smartHost(h)));
          } catch (e) {
            lastErr = e as ResolveError;
          }
        }
        if (!hops.length && lastErr) throw lastErr;
      }
    } else {
      req = { settings: null, ca: undefined, domain: null };
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

function attempt(job: DeliveryJob, deps: DeliveryDeps, hop: NextHop, req: TlsRequirement): Promise<Map<string, RecipientOutcome> | HopFailure> {
  const remote = `${hop.name}[${hop.address}]:${hop.port}`;
  const sni = hop.name !== hop.address ? hop.name : undefined;
  const t = deps.timeouts ?? { connection: 30_000, greeting: 30_000, socket: 300_000 };
  const tlsOpts = connectionTlsOptions(req, deps.identity, sni);
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
    const done = (v: Map<string, RecipientOutcome> | HopFailure) => {
      if (settled) return;
      settled = true;
      resolve(v);
    };
    conn.once('error', (err: NodemailerError) => {
      done(classifyConnectionError(err, tlsOpts.requireTLS));
      conn.close();
    });
    conn.once('end', () => done({ code: '4.4.318', detail: `connection to ${remote} closed` }));
    conn.connect(() => {
      if (tlsOpts.requireTLS && !conn.secure) {
        // Belt and braces: never send a message in plaintext when the connector requires TLS.
        done({ code: '4.4.317', detail: `TLS required but not established with ${remote}` });
        conn.close();
        return;
      }
      const env = job.envelope;
      conn.send(
        { from: env.sender, to: job.recipients, size: env.size, use8BitMime: env.bodyType === '8bitmime' },
        job.content(),
        (err: NodemailerError | null, info?: { accepted: string[]; rejected: string[]; rejectedErrors?: NodemailerError[]; response?: string }) => {
          const out = new Map<string, RecipientOutcome>();
          if (err && !info) {
            if (err.responseCode) {
              const o = replyOutcome(err.response ?? err.message, err.responseCode, remote);
              for (const r of job.recipients) out.set(r, o);
              // A recipient-level reply list may be attached to the error.
              for (const re of (err as { rejectedErrors?: NodemailerError[] }).rejectedErrors ?? []) {
                const who = (re as { recipient?: string }).recipient;
                if (who && re.responseCode) out.set(who, replyOutcome(re.response ?? re.message, re.responseCode, remote));
              }
              conn.quit();
              return done(out);
            }
            done(classifyConnectionError(err, tlsOpts.requireTLS));
            conn.close();
            return;
          }
          const accepted = new Set(info!.accepted.map((a) => a.toLowerCase()));
          for (const r of job.recipients) {
            if (accepted.has(r.toLowerCase())) out.set(r, { status: 'delivered', code: '2.0.0', detail: `${remote} said: ${info!.response ?? '250'}`, remote });
          }
          for (const re of info!.rejectedErrors ?? []) {
            const who = (re as { recipient?: string }).recipient;
            if (who && !out.has(who)) out.set(who, replyOutcome(re.response ?? re.message, re.responseCode ?? 450, remote));
          }
          for (const r of job.recipients) if (!out.has(r)) out.set(r, { status: 'deferred', code: '4.0.0', detail: `${remote}: no reply for this recipient`, remote });
          conn.quit();
          done(out);
        },
      );
    });
  });
}
