// PURE. The queue's decisions (SPEC §4/§5), apart from the I/O that performs them:
//   planAttempt  — which recipients go together (one SMTP transaction per route), which have no route;
//   afterAttempt — envelope + outcomes + now + settings → the new state, what to log, which
//                  DSNs to send (RFC 3461 NOTIFY honoured) and when to try again.
// The manager (manager.ts) reads the envelope, delivers, calls these and performs the result.
import { domainOf } from '../mail/address.js';
import { enabledOutboundConnector, routeRecipientDomain, type Route } from '../policy/outbound.js';
import type { Policy } from '../policy/types.js';
import { outcomes, type RecipientOutcome } from '../delivery/status.js';
import type { Envelope, QueuedRecipient } from './spool.js';
import type { RecipientEvent } from '../observe/events.js';

/** Which notice a DSN is (RFC 3464): a permanent failure or expiry, a delay warning, or relayed (RFC 3461 NOTIFY=SUCCESS). */
export type DsnKind = 'failed' | 'delayed' | 'relayed';

/** One recipient of a DSN, as the scheduler decided it. */
export interface DsnRecipient {
  address: string;
  status: string; // enhanced code, e.g. 5.1.1
  diagnostic: string;
  remote?: string;
  /** RFC 3461 ORCPT, "rfc822;user@example.com". */
  orcpt?: string;
  notify?: string[];
}

export interface QueueSettings {
  retryIntervals: readonly number[]; // ms; the last repeats
  messageExpiration: number; // ms
  delayNotification: number; // ms, 0 = never
}

// ---------------------------------------------------------------------------------------
// Before an attempt

export interface AttemptGroup {
  /** Deliveries that share this key share a destination (concurrency limit, connection reuse). */
  key: string;
  route: Route;
  /** The outbound connector's name, or "mx": for logs and metrics. */
  routeName: string;
  recipients: string[];
}

export interface AttemptPlan {
  groups: AttemptGroup[];
  /** Recipients decided without an attempt (an accepted domain no connector routes). */
  decided: Array<{ address: string; outcome: RecipientOutcome }>;
}

/** The destination a route delivers to: a connector (per recipient domain when its hops or name check depend on it), or a domain's MX. */
export function destinationKey(route: Route, domain: string): string {
  if (route.kind === 'mx') return `mx:${domain}`;
  const c = route.connector;
  const perDomain = c.useMXRecord || (c.tlsSettings === 'domainValidation' && !c.tlsDomain);
  return `connector:${c.name}${perDomain ? `:${domain}` : ''}`;
}

/** Groups the pending recipients by destination; routing is re-evaluated under the policy in force. */
export function planAttempt(env: Envelope, policy: Policy): AttemptPlan {
  const groups = new Map<string, AttemptGroup>();
  const decided: AttemptPlan['decided'] = [];
  for (const r of env.recipients) {
    if (r.status !== 'pending') continue;
    const domain = domainOf(r.address);
    let route: ReturnType<typeof routeRecipientDomain>;
    if (r.rule) {
      // A mail flow rule chose the connector at end of DATA (SPEC §9); it must still exist.
      const name = r.rule.connector;
      const c = enabledOutboundConnector(policy, name);
      if (!c) {
        decided.push({ address: r.address, outcome: outcomes.ruleRouteMissing(name, r.rule.name) });
        continue;
      }
      route = { kind: 'connector', connector: c, matchedBy: `mail flow rule "${r.rule.name}"` };
    } else route = routeRecipientDomain(policy, domain);
    if (route.kind === 'none') {
      decided.push({ address: r.address, outcome: outcomes.noRoute(domain) });
      continue;
    }
    const key = destinationKey(route, domain);
    const g = groups.get(key) ?? { key, route, routeName: route.kind === 'connector' ? route.connector.name : 'mx', recipients: [] };
    g.recipients.push(r.address);
    groups.set(key, g);
  }
  return { groups: [...groups.values()], decided };
}

// ---------------------------------------------------------------------------------------
// After an attempt

export interface AttemptResult {
  address: string;
  /** The route's name ("mx", a connector) or null when the recipient had none. */
  connector: string | null;
  outcome: RecipientOutcome;
}

/** One event per recipient, for the log, the trace and the delivery metrics (observe/events.ts). */
export type { RecipientEvent };

export interface DsnToSend {
  kind: DsnKind;
  recipients: DsnRecipient[];
}

export interface AttemptDecision {
  /** The envelope's new state (the input is not changed). */
  envelope: Envelope;
  events: RecipientEvent[];
  /** Reports to queue to the sender, in this order. */
  dsns: DsnToSend[];
  /** Reports not sent, and why: the recipient's NOTIFY, or the null sender. */
  suppressed: Array<{ reason: 'NOTIFY' | 'null sender'; recipients: string[] }>;
  /** done: every recipient is delivered or failed, the message leaves the queue. */
  next: { done: true } | { done: false; at: number };
}

const sec = (o: RecipientOutcome): { security?: string } => (o.security ? { security: o.security } : {});

function dsnRecipient(r: QueuedRecipient, status: string, diagnostic: string, remote?: string): DsnRecipient {
  return { address: r.address, status, diagnostic, remote, orcpt: r.orcpt, notify: r.notify };
}

/** Whether a recipient's NOTIFY asks for this kind of report; without NOTIFY: failures and delays (RFC 3461 §4.1). */
function wants(r: DsnRecipient, what: 'FAILURE' | 'DELAY'): boolean {
  return r.notify ? r.notify.includes(what) : true;
}

/** The retry interval after the n-th attempt (1-based): the last interval repeats. */
export function retryInterval(settings: QueueSettings, attempt: number): number {
  const list = settings.retryIntervals;
  return list[Math.min(Math.max(attempt, 1) - 1, list.length - 1)] ?? 60_000;
}

/**
 * `operatorRetry`: the attempt was the operator's `queue retry ID` (Postfix's postqueue -i): it
 * does not count toward the retry schedule, and a later attempt already scheduled stays where it
 * was — asking for an extra try never pushes the next one out.
 */
export function afterAttempt(before: Envelope, results: readonly AttemptResult[], now: number, settings: QueueSettings, opts: { operatorRetry?: boolean } = {}): AttemptDecision {
  const env: Envelope = structuredClone(before);
  const byAddress = new Map(env.recipients.map((r) => [r.address, r]));
  const events: RecipientEvent[] = [];
  const bounces: DsnRecipient[] = [];
  const relayed: DsnRecipient[] = [];

  for (const { address, connector, outcome: o } of results) {
    const r = byAddress.get(address);
    if (!r || r.status !== 'pending') continue;
    if (!opts.operatorRetry) r.attempts++;
    r.lastResult = `${o.code} ${o.detail}`;
    if (o.status === 'delivered') {
      r.status = 'delivered';
      events.push({ event: 'delivered', recipient: r.address, connector, remote: o.remote, result: o.detail, ...(o.strippedExchangeHeaders ? { strippedExchangeHeaders: o.strippedExchangeHeaders } : {}), ...(o.signed ? { signed: o.signed } : {}), ...sec(o) });
      // NOTIFY=SUCCESS: a next hop that offers DSN got the request and reports delivery; one
      // that does not gets the message from us, so we say it was relayed (RFC 3461 §5.2.2).
      if (r.notify?.includes('SUCCESS') && !o.dsnPassed) relayed.push(dsnRecipient(r, '2.0.0', o.detail, o.remote));
    } else if (o.status === 'failed') {
      r.status = 'failed';
      bounces.push(dsnRecipient(r, o.code, o.detail, o.remote));
      events.push({ event: 'bounced', recipient: r.address, connector, code: o.code, result: o.detail, expired: false, ...sec(o) });
    } else {
      events.push({ event: 'deferred', recipient: r.address, connector, code: o.code, result: o.detail, attempts: r.attempts, ...sec(o) });
    }
  }

  const stillPending = env.recipients.filter((r) => r.status === 'pending');
  const age = now - Date.parse(env.receivedAt);
  let delayed: DsnRecipient[] = [];
  if (stillPending.length && age >= settings.messageExpiration) {
    for (const r of stillPending) {
      r.status = 'failed';
      const last = r.lastResult ?? 'no attempt succeeded';
      const x = outcomes.expired(Math.round(age / 60_000), last);
      bounces.push(dsnRecipient(r, x.code, x.detail));
      events.push({ event: 'bounced', recipient: r.address, connector: r.connector, code: x.code, result: 'expired', expired: true, last });
    }
  } else if (stillPending.length) {
    const attempt = Math.max(...stillPending.map((r) => r.attempts), 1);
    const scheduled = before.nextAttemptAt ? Date.parse(before.nextAttemptAt) : 0;
    env.nextAttemptAt = opts.operatorRetry && scheduled > now ? before.nextAttemptAt! : new Date(now + retryInterval(settings, attempt)).toISOString();
    if (settings.delayNotification > 0 && age >= settings.delayNotification && !env.delayNotified) {
      env.delayNotified = true;
      delayed = stillPending.map((r) => dsnRecipient(r, (r.lastResult ?? '4.0.0').split(' ')[0] ?? '4.0.0', r.lastResult ?? 'not yet delivered'));
    }
  }

  const wanted: DsnToSend[] = [
    { kind: 'failed', recipients: bounces.filter((b) => wants(b, 'FAILURE')) },
    { kind: 'delayed', recipients: delayed.filter((d) => wants(d, 'DELAY')) },
    { kind: 'relayed', recipients: relayed },
  ].filter((d): d is DsnToSend => d.recipients.length > 0);
  const suppressed: AttemptDecision['suppressed'] = [];
  const unwanted = [...bounces.filter((b) => !wants(b, 'FAILURE')), ...delayed.filter((d) => !wants(d, 'DELAY'))];
  if (unwanted.length) suppressed.push({ reason: 'NOTIFY', recipients: unwanted.map((r) => r.address) });
  let dsns = wanted;
  if (!env.sender && wanted.length) {
    suppressed.push({ reason: 'null sender', recipients: wanted.flatMap((d) => d.recipients.map((r) => r.address)) });
    dsns = [];
  }

  const done = env.recipients.every((r) => r.status !== 'pending');
  return { envelope: env, events, dsns, suppressed, next: done ? { done: true } : { done: false, at: Date.parse(env.nextAttemptAt ?? new Date(now).toISOString()) } };
}

/** RET=FULL returns messages up to this size whole; larger ones get their headers only. */
export const DSN_FULL_LIMIT = 10 * 1024 * 1024;

/**
 * What a report returns of the original: the whole message for RET=FULL failure reports (up
 * to DSN_FULL_LIMIT), else the header block. A REQUIRETLS message's body is never returned: its
 * sender asked that it travel only over verified TLS (RFC 8689 §5).
 */
export function dsnReturns(env: Envelope, kind: DsnKind): 'full' | 'headers' {
  return kind === 'failed' && env.dsn?.ret === 'FULL' && env.size <= DSN_FULL_LIMIT && !env.requireTls ? 'full' : 'headers';
}
