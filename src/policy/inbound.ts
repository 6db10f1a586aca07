// PURE. Inbound attribution and checks of SPEC §3: facts in, a decision out.
import { domainOf, localPartOf } from '../mail/address.js';
import { bestDomainMatch, certNameMatches, parseIp } from './match.js';
import { DomainIndex, IpIndex, memo } from './index.js';
import type { IpRange } from './match.js';
import { replies, type Reply } from './replies.js';
import { PUBLIC_ROOTS, type AcceptedDomain, type InboundConnector, type OutboundConnector, type Policy } from './types.js';
import { routeRecipientDomain, type Route } from './outbound.js';
import { acceptedDomainFor } from './accepted.js';

/** What the SMTP layer knows at MAIL FROM. */
export interface SenderFacts {
  ip: string;
  tls: boolean;
  /** CN and DNS SANs of a *verified* client certificate; empty when none or unverified. */
  certNames: readonly string[];
  /**
   * The trust anchors that certificate's chain reached: the operator's CA files it chains to, or
   * PUBLIC_ROOTS. Absent: the public roots (explain's default, and tests that name none).
   */
  certAnchors?: readonly string[];
  /** Envelope sender address; "" for the null sender. */
  sender: string;
}

export type IdentifiedBy = 'certificate' | 'ip' | 'senderDomain';

export interface Attribution {
  connector: InboundConnector | null;
  identifiedBy: IdentifiedBy | null;
  /** The range or certificate pattern that identified it, for logs and `explain`. */
  matched: string | null;
  /** Rule 1: an onPremises connector identified by IP or certificate may relay anywhere. */
  mayRelay: boolean;
}

export type InboundRule =
  | 'tls-required'
  | 'claim-ip'
  | 'claim-certificate'
  | 'relay'
  | 'direct-send'
  | 'no-route'
  | 'recipient-syntax'
  | 'recipient-limit'
  | 'unknown-recipient'
  | 'unverified-recipient'
  | 'size'
  | 'header-size'
  | 'header-syntax'
  | 'bare-lf'
  | 'bare-cr'
  | 'nul'
  | 'parameter'
  | 'hop-count'
  | 'spool'
  | 'throttle'
  | 'error-limit'
  | 'data-rate'
  | 'transport-rule'
  | 'dmarc';

export interface Refusal {
  rule: InboundRule;
  connector: string | null;
  reply: Reply;
}

export interface SenderDecision {
  attribution: Attribution;
  /** null = accept the MAIL FROM. */
  refusal: Refusal | null;
  /** Refusals a connector in audit mode would have made; logged and counted, not enforced. */
  audits: Refusal[];
  /** Human-readable steps, for logs and `explain`. */
  trace: string[];
}

interface Candidate {
  connector: InboundConnector;
  domainScore: number;
  range: IpRange | null;
  byCertificate: boolean;
  position: number;
}

/**
 * A verified certificate carries the connector's name, and was vouched for by an anchor the
 * connector accepts (its own CA file; only the public roots for a name in our accepted domains).
 */
function certificateCarries(c: InboundConnector, certNames: readonly string[], anchors: readonly string[]): boolean {
  const p = c.tlsSenderCertificateName;
  if (p === null || !certNames.some((n) => certNameMatches(p, n))) return false;
  return c.certificateAnchors === null || anchors.some((a) => c.certificateAnchors!.includes(a));
}

interface InboundIndex {
  position: Map<InboundConnector, number>;
  /** Enabled connectors that list IP ranges, by range. */
  ip: IpIndex<InboundConnector>;
  /** Enabled connectors without IP ranges, by sender domain pattern. */
  withoutIp: DomainIndex<InboundConnector>;
  /** Enabled restricting partner connectors, by the sender domains they claim. */
  claimants: DomainIndex<InboundConnector>;
}

const inboundIndexes = new WeakMap<readonly InboundConnector[], InboundIndex>();

export function inboundIndex(connectors: readonly InboundConnector[]): InboundIndex {
  return memo(inboundIndexes, connectors, () => {
    const enabled = connectors.filter((c) => c.enabled);
    const withoutIp = new DomainIndex<InboundConnector>();
    const claimants = new DomainIndex<InboundConnector>();
    for (const c of enabled) {
      if (!c.senderIPAddresses.length) withoutIp.add(c, c.senderDomains);
      if (c.connectorType === 'partner' && (c.restrictDomainsToIPAddresses || c.restrictDomainsToCertificate)) claimants.add(c, c.senderDomains);
    }
    return {
      position: new Map(connectors.map((c, i) => [c, i])),
      ip: new IpIndex(enabled.flatMap((c) => c.senderIPAddresses.map((range) => ({ item: c, range })))),
      withoutIp,
      claimants,
    };
  });
}

/** For each connector whose ranges contain ip, its smallest containing range. */
function rangesContaining(idx: InboundIndex, ip: ReturnType<typeof parseIp>): Map<InboundConnector, IpRange> {
  const out = new Map<InboundConnector, IpRange>();
  if (!ip) return out;
  for (const { item, range } of idx.ip.lookup(ip)) {
    const had = out.get(item);
    if (!had || range.size < had.size) out.set(item, range);
  }
  return out;
}

function candidates(idx: InboundIndex, byIp: Map<InboundConnector, IpRange>, domain: string, certNames: readonly string[], anchors: readonly string[]): Candidate[] {
  const out: Candidate[] = [];
  for (const [c, range] of byIp) {
    const domainScore = bestDomainMatch(c.senderDomains, domain);
    if (domainScore < 0) continue;
    if (c.tlsSenderCertificateName && !certificateCarries(c, certNames, anchors)) continue;
    out.push({ connector: c, domainScore, range, byCertificate: c.tlsSenderCertificateName !== null, position: idx.position.get(c)! });
  }
  for (const { item: c, score } of idx.withoutIp.lookup(domain)) {
    if (c.tlsSenderCertificateName && !certificateCarries(c, certNames, anchors)) continue;
    out.push({ connector: c, domainScore: score, range: null, byCertificate: c.tlsSenderCertificateName !== null, position: idx.position.get(c)! });
  }
  return out;
}

/** Orders candidates most specific first: certificate > smallest IP range > sender domain score > listed first. */
function moreSpecific(a: Candidate, b: Candidate): number {
  if (a.byCertificate !== b.byCertificate) return a.byCertificate ? -1 : 1;
  if (a.range && b.range) {
    if (a.range.size !== b.range.size) return a.range.size < b.range.size ? -1 : 1;
  } else if (a.range || b.range) {
    return a.range ? -1 : 1;
  }
  return b.domainScore - a.domainScore || a.position - b.position;
}

function describe(c: Candidate): { identifiedBy: IdentifiedBy; matched: string } {
  if (c.byCertificate) return { identifiedBy: 'certificate', matched: c.connector.tlsSenderCertificateName!.text };
  if (c.range) return { identifiedBy: 'ip', matched: c.range.text };
  return { identifiedBy: 'senderDomain', matched: c.connector.senderDomains.map((d) => d.text).join(', ') };
}

/** Whether an enabled connector lists this client IP (its sessions may use the reserved connections). */
export function listedByConnector(connectors: readonly InboundConnector[], ip: string): boolean {
  const parsed = parseIp(ip);
  return !!parsed && inboundIndex(connectors).ip.lookup(parsed).length > 0;
}

/** SPEC §3 rules 1–4, evaluated at MAIL FROM. */
export function evaluateSender(connectors: readonly InboundConnector[], facts: SenderFacts): SenderDecision {
  const trace: string[] = [];
  const audits: Refusal[] = [];
  const ip = parseIp(facts.ip);
  const domain = domainOf(facts.sender);
  const certNames = facts.certNames;
  const anchors = facts.certAnchors ?? [PUBLIC_ROOTS];

  const idx = inboundIndex(connectors);
  const byIp = rangesContaining(idx, ip);
  const applicable = candidates(idx, byIp, domain, certNames, anchors);

  // Rule 1: an onPremises connector that applies by IP or certificate wins.
  const onPrem = applicable.filter((c) => c.connector.connectorType === 'onPremises' && (c.byCertificate || c.range));
  let chosen: Candidate | null = null;
  let mayRelay = false;
  if (onPrem.length) {
    chosen = onPrem.sort(moreSpecific)[0]!;
    mayRelay = true;
    trace.push(`rule 1: onPremises connector "${chosen.connector.name}" applies by ${describe(chosen).identifiedBy} (${describe(chosen).matched})`);
  } else {
    // Rule 2: the most specific applicable partner connector.
    const partners = applicable.filter((c) => c.connector.connectorType === 'partner').sort(moreSpecific);
    chosen = partners[0] ?? null;
    if (chosen) trace.push(`rule 2: partner connector "${chosen.connector.name}" applies by ${describe(chosen).identifiedBy} (${describe(chosen).matched})`);
    else trace.push('rule 2: no connector applies; the transaction is unattributed');
  }

  // Rule 3: restricting partner connectors claim their sender domains (not for rule 1 winners).
  // The claim is met when the transaction satisfies at least one claimant; when none is met,
  // the most specific claimant refuses.
  let claimRefusal: Refusal | null = null;
  let claimAudits: Refusal[] = [];
  const claimants: InboundConnector[] = [];
  if (!mayRelay) {
    const byDomain = idx.claimants.lookup(domain).sort((a, b) => b.score - a.score || idx.position.get(a.item)! - idx.position.get(b.item)!);
    for (const { item } of byDomain) claimants.push(item);
    const failures: Array<{ refusal: Refusal; mode: InboundConnector['mode'] }> = [];
    let met = false;
    for (const c of claimants) {
      if (c.restrictDomainsToIPAddresses && !byIp.has(c)) {
        failures.push({ refusal: { rule: 'claim-ip', connector: c.name, reply: replies.ipNotAllowed(c.name) }, mode: c.mode });
      } else if (c.restrictDomainsToCertificate && !certificateCarries(c, certNames, anchors)) {
        failures.push({ refusal: { rule: 'claim-certificate', connector: c.name, reply: replies.certificateRequired(c.name) }, mode: c.mode });
      } else {
        met = true;
        trace.push(`rule 3: claim of connector "${c.name}" is met`);
      }
    }
    if (!met && failures.length) {
      const enforcing = failures.filter((f) => f.mode === 'enforce');
      claimRefusal = enforcing[0]?.refusal ?? null;
      claimAudits = enforcing.length ? [] : failures.map((f) => f.refusal);
      for (const f of failures) trace.push(`rule 3: connector "${f.refusal.connector}" claims the sender domain: ${f.refusal.reply.text}`);
    }
  }

  // Rule 4: TLS first.
  let refusal: Refusal | null = null;
  if (!facts.tls) {
    const needTls = [chosen?.connector, ...claimants].filter(
      (c): c is InboundConnector => !!c && (c.requireTls || c.restrictDomainsToCertificate),
    );
    const unique = [...new Set(needTls)];
    if (unique.length) {
      const enforcing = unique.filter((c) => c.mode === 'enforce');
      const tlsRefusals = unique.map((c) => ({ rule: 'tls-required' as const, connector: c.name, reply: replies.tlsRequired() }));
      trace.push(`rule 4: TLS required by connector "${unique[0]!.name}" and the session is not TLS`);
      if (enforcing.length) refusal = tlsRefusals.find((r) => r.connector === enforcing[0]!.name)!;
      else audits.push(...tlsRefusals);
    }
  }
  if (!refusal) {
    refusal = claimRefusal;
    audits.push(...claimAudits);
  }

  const d = chosen ? describe(chosen) : null;
  return {
    attribution: {
      connector: chosen?.connector ?? null,
      identifiedBy: d?.identifiedBy ?? null,
      matched: d?.matched ?? null,
      mayRelay,
    },
    refusal,
    audits,
    trace,
  };
}

/** The RCPT TO decision: refused with a reply, or accepted with its route. */
export type RecipientDecision =
  | { refusal: Refusal; domain: string; accepted: AcceptedDomain | null }
  | {
      refusal: null;
      domain: string;
      accepted: AcceptedDomain | null;
      route: Route;
      /**
       * SPEC §3 recipientVerification: callout — ask this connector's next hops whether the
       * recipient exists before accepting it. Only for authoritative domains, and never for
       * on-premises sessions (they are the directory being asked).
       */
      verifyWith: OutboundConnector | null;
    };

// Sender-specified routing in a local part: user%host, host!user, "user@host", source routes.
const ROUTING_IN_LOCAL_PART = /[%!@]/;

/** SPEC §3 RCPT TO checks: open-relay prevention and routability of accepted domains. */
export function evaluateRecipient(policy: Policy, attribution: Attribution, recipient: string): RecipientDecision {
  const at = recipient.lastIndexOf('@');
  if (at <= 0 || at === recipient.length - 1) {
    return { refusal: { rule: 'recipient-syntax', connector: null, reply: replies.badRecipientSyntax() }, domain: '', accepted: null };
  }
  const domain = domainOf(recipient);
  const accepted = domain.startsWith('[') ? null : acceptedDomainFor(policy.acceptedDomains, domain);
  const connectorName = attribution.connector?.name ?? null;
  if (!attribution.mayRelay && (!accepted || ROUTING_IN_LOCAL_PART.test(localPartOf(recipient)))) {
    return { refusal: { rule: 'relay', connector: connectorName, reply: replies.relayDenied() }, domain, accepted };
  }
  const route = routeRecipientDomain(policy, domain);
  if (route.kind === 'none') {
    return { refusal: { rule: 'no-route', connector: connectorName, reply: replies.noRoute(domain) }, domain, accepted };
  }
  const verify = accepted?.domainType === 'authoritative' && accepted.recipientVerification === 'callout' && route.kind === 'connector' && !attribution.mayRelay;
  return { refusal: null, domain, accepted, route, verifyWith: verify ? route.connector : null };
}
