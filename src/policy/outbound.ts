// PURE. Outbound routing of SPEC §4: recipient domain in, the outbound connector (or MX) out.
import { domainMatchScore } from './match.js';
import type { OutboundConnector, Policy } from './types.js';
import { acceptedDomainFor } from './accepted.js';

export type Route =
  | { kind: 'connector'; connector: OutboundConnector; matchedBy: string }
  | { kind: 'mx'; domain: string };

// Scores: exact > longest wildcard > allAcceptedDomains > "*".
const ALL_ACCEPTED_SCORE = 0.5;

export function connectorScore(c: OutboundConnector, domain: string, isAccepted: boolean): { score: number; matchedBy: string } {
  let best = { score: -1, matchedBy: '' };
  for (const p of c.recipientDomains) {
    const s = domainMatchScore(p, domain);
    if (s > best.score) best = { score: s, matchedBy: p.text };
  }
  if (c.allAcceptedDomains && isAccepted && ALL_ACCEPTED_SCORE > best.score) {
    best = { score: ALL_ACCEPTED_SCORE, matchedBy: 'allAcceptedDomains' };
  }
  return best;
}

/** The outbound connector for a recipient domain; ties go to the connector listed first. */
export function routeDomain(policy: Policy, domain: string): Route {
  const isAccepted = acceptedDomainFor(policy.acceptedDomains, domain) !== null;
  let best: { connector: OutboundConnector; score: number; matchedBy: string } | null = null;
  for (const c of policy.outboundConnectors) {
    if (!c.enabled) continue;
    const { score, matchedBy } = connectorScore(c, domain, isAccepted);
    if (score >= 0 && (!best || score > best.score)) best = { connector: c, score, matchedBy };
  }
  return best ? { kind: 'connector', connector: best.connector, matchedBy: best.matchedBy } : { kind: 'mx', domain };
}
