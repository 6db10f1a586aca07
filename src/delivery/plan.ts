// PURE. The outbound plan (SPEC §4 and §8): which next hops a delivery may use, what each one's
// TLS must prove, and which status stands when none can be used. Facts in, a plan out; client.ts
// looks the facts up (DNS, the MTA-STS policy) and performs the plan, and `explain` and
// `validate` call the same functions, so what an operator is told is what delivery does.
//
// Three steps, in the order delivery takes them:
//   outboundPolicies — the policy and the envelope alone (no DNS): the connector's tlsSettings,
//                      whether DANE and MTA-STS may apply, REQUIRETLS or `TLS-Required: No`;
//   planHops         — the hops found (DANE's DNS facts, or the resolver's answer) and the
//                      MTA-STS policy → each hop with its TlsRequirement and its label, or the
//                      outcome for every recipient when the domain cannot be used now;
//   hopFailureUnder / planFailure — a hop's failure in the terms of the policy that demanded
//                      the TLS (Exchange's 4.7.32x), and what stands when every hop failed
//                      (5.7.30 when none could meet REQUIRETLS, else the last failure).
// The order of precedence (SPEC §8): DANE where the domain's DNSSEC-signed TLSA records say so;
// otherwise MTA-STS where the domain publishes a policy; otherwise the connector's tlsSettings
// (or opportunistic TLS). `TLS-Required: No` (RFC 8689 §5) sets DANE and MTA-STS aside.
import type { Route } from '../policy/outbound.js';
import type { OutboundConnector, Policy } from '../policy/types.js';
import { mtaStsModeFor, outboundSecurity, type OutboundSecurity } from '../policy/outbound-security.js';
import { planMx, type MxFacts, type SecuredHop } from './dane.js';
import { mxAllowed, type StsPolicy } from './mta-sts.js';
import type { NextHop } from './resolve.js';
import { hopFailure, outcomes, type HopFailure, type RecipientOutcome } from './status.js';
import { domainToValidate, type TlsRequirement } from './tls-policy.js';

/** What the envelope asks of delivery (RFC 8689). */
export interface EnvelopeTls {
  /** REQUIRETLS: only to a next hop that offers it, over TLS verified for its name. */
  requireTls: boolean;
  /** `TLS-Required: No`: DANE and MTA-STS do not stop delivery. */
  tlsRequiredNo: boolean;
}

/** Step 1: what may secure a route's delivery, known without DNS. */
export interface OutboundPolicies {
  rcptDomain: string;
  /** MX delivery (no connector, or useMXRecord): DANE and MTA-STS may apply. */
  mxRoute: boolean;
  /** The connector's tlsSettings (opportunistic for MX without a connector). */
  tls: TlsRequirement;
  /** DANE's mode when DANE is in effect for this route and this message; else null with `security.why`. */
  dane: 'opportunistic' | 'mandatory' | null;
  /** MTA-STS is looked up (where DANE does not protect the domain). */
  mtaSts: boolean;
  envelope: EnvelopeTls;
  /** What outbound-security.ts says of the route (for explain). */
  security: OutboundSecurity;
}

/** What a connector's tlsSettings demand of a connection for a recipient domain (SPEC §4). */
export function connectorTlsRequirement(c: OutboundConnector, rcptDomain: string, readCa: (file: string) => string): TlsRequirement {
  return {
    settings: c.tlsSettings,
    extraCa: c.tlsCertificateAuthorities ? [readCa(c.tlsCertificateAuthorities)] : [],
    domain: c.tlsSettings === 'domainValidation' ? domainToValidate(c.tlsDomain, rcptDomain) : null,
  };
}

export function outboundPolicies(policy: Policy, route: Route, rcptDomain: string, envelope: EnvelopeTls, readCa: (file: string) => string, daneResolver = true): OutboundPolicies {
  const mxRoute = route.kind === 'mx' || route.connector.useMXRecord;
  const tls = route.kind === 'connector' ? connectorTlsRequirement(route.connector, rcptDomain, readCa) : { settings: null, extraCa: [], domain: null };
  const security = outboundSecurity(policy, route);
  const policiesApply = !envelope.tlsRequiredNo;
  return {
    rcptDomain,
    mxRoute,
    tls,
    dane: policiesApply && security.policy === 'dane' && daneResolver ? security.mode : null,
    mtaSts: mxRoute && policiesApply && mtaStsModeFor(policy, route) !== 'none',
    envelope,
    security,
  };
}

/** The label an MX delivery records (RecipientOutcome.security): what secured, or was to secure, it. */
export type SecurityLabel = NonNullable<RecipientOutcome['security']>;

export interface PlannedHop extends SecuredHop {
  /** What this hop's TLS must prove. */
  requirement: TlsRequirement;
  /** Recorded with the outcome of an attempt at this hop (absent: a smart-host route). */
  label?: SecurityLabel;
}

/** Step 2's facts: the hops found, and the MTA-STS policy when it was looked up. */
export interface HopFacts {
  /** DANE in effect: the DNS facts of lookupMx. Otherwise the resolver's hops, or its failure. */
  found: { dane: MxFacts } | { hops: NextHop[] } | { error: { permanent: boolean; status: string; detail: string } };
  /** The domain's MTA-STS policy (null: none, or not looked up). */
  sts?: { policy: StsPolicy; id: string } | null;
}

export type DeliveryPlan =
  | { ok: true; hops: PlannedHop[]; /** the label when no hop could be tried */ label?: SecurityLabel }
  | { ok: false; outcome: RecipientOutcome };

/** Whether MTA-STS is to be looked up for these hops: it applies where DANE protects none of them. */
export function wantsMtaSts(p: OutboundPolicies, hops: readonly SecuredHop[]): boolean {
  return p.mtaSts && hops.every((h) => h.security.kind === 'none');
}

/** The hops found, with no DANE protection (the resolver's answer). */
function unsecured(hops: readonly NextHop[]): SecuredHop[] {
  return hops.map((h) => ({ ...h, security: { kind: 'none' } }));
}

/** Step 2a: the hops found, each with what DANE says of it, or the outcome when the domain cannot be used. */
export function securedHops(p: OutboundPolicies, found: HopFacts['found']): { ok: true; hops: SecuredHop[] } | { ok: false; outcome: RecipientOutcome } {
  if ('error' in found) {
    const e = found.error;
    return { ok: false, outcome: { status: e.permanent ? 'failed' : 'deferred', code: e.status, detail: e.detail } };
  }
  if ('hops' in found) return { ok: true, hops: unsecured(found.hops) };
  const plan = planMx(found.dane, p.dane ?? 'opportunistic');
  if (!plan.ok) return { ok: false, outcome: { status: plan.permanent ? 'failed' : 'deferred', code: plan.status, detail: plan.failure.detail, security: 'dane' } };
  return { ok: true, hops: plan.hops };
}

/** Step 2: the next hops and what each one's TLS must prove, or the outcome when the domain cannot be used. */
export function planHops(p: OutboundPolicies, facts: HopFacts): DeliveryPlan {
  const secured = securedHops(p, facts.found);
  return secured.ok ? planSecured(p, secured.hops, facts.sts ?? null) : secured;
}

/**
 * Step 2b: hops already secured (securedHops) and the MTA-STS policy → the plan. Delivery calls
 * the two steps itself: it needs the secured hops to know whether to fetch the MTA-STS policy.
 */
export function planSecured(p: OutboundPolicies, secured: readonly SecuredHop[], found: HopFacts['sts']): DeliveryPlan {
  let hops = [...secured];
  const sts = found && found.policy.mode !== 'none' && wantsMtaSts(p, hops) ? found : null;
  if (sts?.policy.mode === 'enforce') {
    const listed = hops.filter((h) => mxAllowed(sts.policy, h.name));
    if (!listed.length) {
      const f = hopFailure('certificate-host-mismatch', `certificate-host-mismatch: the MTA-STS policy of ${p.rcptDomain} (id ${sts.id}) lists none of its MX hosts (${[...new Set(hops.map((h) => h.name))].join(', ')}); allowed: ${sts.policy.mx.join(', ')}`);
      return { ok: false, outcome: { status: 'deferred', code: f.code, detail: f.detail, security: 'mta-sts-enforce' } };
    }
    hops = listed;
  }
  if (sts) hops = hops.map((h) => ({ ...h, security: { kind: 'sts', mode: sts.policy.mode === 'enforce' ? 'enforce' : 'testing', policy: policyLines(sts.policy) } }));

  const label = (h: SecuredHop | null): SecurityLabel | undefined => {
    if (!p.mxRoute) return undefined;
    if (sts) return sts.policy.mode === 'enforce' ? 'mta-sts-enforce' : 'mta-sts-testing';
    if (!p.dane) return 'tlsSettings';
    return h?.security.kind === 'encrypt' ? 'dane-encrypt' : h?.security.kind === 'none' ? 'dane-none' : 'dane';
  };
  const planned = hops.map((h): PlannedHop => {
    const l = label(h);
    return { ...h, requirement: hopRequirement(p.tls, h, p.envelope.requireTls), ...(l ? { label: l } : {}) };
  });
  const none = label(null);
  return { ok: true, hops: planned, ...(none ? { label: none } : {}) };
}

/** The MTA-STS policy as RFC 8460's policy-string writes it. */
const policyLines = (p: StsPolicy): string[] => ['version: STSv1', `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAge}`];

/**
 * What one hop's TLS must prove: DANE's TLSA match where DANE applies (it replaces PKIX and
 * satisfies REQUIRETLS), encryption at least where TLSA exists but none is usable, PKIX for the MX
 * name under MTA-STS enforce, else the connector's tlsSettings — with, for REQUIRETLS, a
 * certificate verified for the hop's name.
 */
export function hopRequirement(req: TlsRequirement, hop: SecuredHop, requireTls: boolean): TlsRequirement {
  const s = hop.security;
  if (s.kind === 'dane') return { ...req, dane: { tlsa: s.tlsa, names: s.names } };
  // MTA-STS enforce: TLS with a certificate valid for the MX name (RFC 8461 §4.2).
  if (s.kind === 'sts' && s.mode === 'enforce') return { ...req, host: hop.name, sts: 'enforce' };
  if (s.kind === 'sts') return requireTls ? { ...req, host: hop.name } : { ...req, sts: 'testing', stsHost: hop.name };
  const base = s.kind === 'encrypt' && req.settings === null ? { ...req, settings: 'encryptionOnly' as const } : req;
  return requireTls ? { ...base, host: hop.name } : base;
}

/**
 * A hop's failure in the terms of the policy that demanded its TLS: under DANE or MTA-STS
 * enforce, TLS that cannot be had is Exchange's 4.7.321 starttls-not-supported; under MTA-STS
 * enforce an expired certificate is 4.7.322 and one for another name 4.7.325.
 */
export function hopFailureUnder(req: TlsRequirement, f: HopFailure): HopFailure {
  if ((req.dane || req.sts === 'enforce') && f.kind === 'tls-unavailable') return hopFailure('starttls-required', `starttls-not-supported: ${f.detail}`);
  if (req.sts === 'enforce' && f.kind === 'certificate') {
    if (f.certificate?.reason === 'CERT_HAS_EXPIRED') return hopFailure('certificate-expired', `certificate-expired: ${f.detail}`, f.certificate);
    if (f.certificate?.problem === 'name') return hopFailure('certificate-host-mismatch', `certificate-host-mismatch: ${f.detail}`, f.certificate);
  }
  return f;
}

/** DANE: the TLSA match of an established connection, as a hop failure (4.7.323) or null. */
export function tlsaVerdict(match: { ok: true } | { ok: false; reason: string }, remote: string): HopFailure | null {
  return match.ok ? null : hopFailure('tlsa-invalid', `tlsa-invalid: ${remote}: ${match.reason}`);
}

/** Failures that mean a hop cannot meet REQUIRETLS (rather than being unreachable). */
const REQUIRETLS_UNMET = new Set<HopFailure['kind']>(['requiretls', 'certificate', 'tls-unavailable', 'starttls-required', 'tlsa-invalid', 'certificate-expired', 'certificate-host-mismatch']);

/**
 * Every hop was tried and failed (`failures` in order): the outcome for every recipient. When the
 * message asked for REQUIRETLS and each hop failed for want of it (not for being unreachable),
 * the sender is told now (5.7.30, RFC 8689 §4.2.1); otherwise the last failure defers it and
 * marks the destination unreachable (queue/destinations.ts).
 */
export function planFailure(p: OutboundPolicies, failures: readonly HopFailure[], label?: SecurityLabel): RecipientOutcome {
  const last = failures[failures.length - 1] ?? hopFailure('dns', 'no next hop');
  const unmet = p.envelope.requireTls && failures.length > 0 && failures.every((f) => REQUIRETLS_UNMET.has(f.kind));
  return { ...(unmet ? outcomes.requireTlsUnmet(last) : outcomes.hopsFailed(last)), ...(label ? { security: label } : {}) };
}

/** For explain and validate: the plan's words for an operator. */
export function describePolicies(p: OutboundPolicies): string[] {
  const out: string[] = [];
  const tlsWords = p.tls.settings ? `tlsSettings ${p.tls.settings}` : 'opportunistic TLS';
  if (p.envelope.tlsRequiredNo && p.mxRoute) out.push('TLS-Required: No: DANE and MTA-STS do not stop this message (RFC 8689 §5); failures are still reported');
  if (p.dane) {
    const without = p.dane === 'mandatory' ? 'without secure TLSA the delivery is deferred (4.7.324)' : `without secure TLSA, ${tlsWords}`;
    out.push(`DANE (smtpDaneMode ${p.dane}): the MX hosts' DNSSEC-signed TLSA records, looked up at delivery, decide; ${without}`);
  } else if (p.security.policy === 'dane') out.push(`DANE would apply (smtpDaneMode ${p.security.mode}) but is set aside for this message`);
  else out.push(p.security.why);
  if (p.mtaSts) out.push('MTA-STS: where DANE does not protect the domain, its MTA-STS policy (looked up at delivery, cached) decides: enforce = listed MX hosts only, TLS with a certificate valid for the MX name (4.7.321, 4.7.322, 4.7.325)');
  if (p.envelope.requireTls) out.push('REQUIRETLS: only a next hop that offers REQUIRETLS, over TLS verified for its name (DANE, MTA-STS or PKIX); else a 5.7.30 DSN');
  return out;
}
