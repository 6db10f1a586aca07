// PURE. Outbound routing of SPEC §4: recipient domain in, the outbound connector (or MX) out.
import { domainMatchScore } from './match.js';
import { DomainIndex, memo } from './index.js';
import type { OutboundConnector, Policy } from './types.js';
import { acceptedDomainFor } from './accepted.js';

export type Route =
  | { kind: 'connector'; connector: OutboundConnector; matchedBy: string }
  | { kind: 'mx'; domain: string };

/** A recipient domain's routing: a route, or none (an accepted domain no connector routes). */
export type Routing = Route | { kind: 'none'; domain: string };

// Scores (as domainMatchScore): exact > longest wildcard > allAcceptedDomains (0.5) > "*" (0).
const ALL_ACCEPTED_SCORE = 0.5;

/** The recipientDomains pattern that matched best, for logs and `explain`. */
function matchedPattern(c: OutboundConnector, domain: string): string {
  let best = { score: -1, text: '' };
  for (const p of c.recipientDomains) {
    const score = domainMatchScore(p, domain);
    if (score > best.score) best = { score, text: p.text };
  }
  return best.text;
}

const indexes = new WeakMap<readonly OutboundConnector[], { index: DomainIndex<OutboundConnector>; position: Map<OutboundConnector, number>; allAccepted: OutboundConnector | null }>();

/** The outbound connector for a recipient domain; ties go to the connector listed first. */
export function routeDomain(policy: Policy, domain: string): Route {
  const { index, position, allAccepted } = memo(indexes, policy.outboundConnectors, () => {
    const index = new DomainIndex<OutboundConnector>();
    // A rule-scoped connector takes no part in domain routing (SPEC §9).
    const enabled = policy.outboundConnectors.filter((c) => c.enabled && !c.isTransportRuleScoped);
    for (const c of enabled) index.add(c, c.recipientDomains);
    return { index, position: new Map(policy.outboundConnectors.map((c, i) => [c, i])), allAccepted: enabled.find((c) => c.allAcceptedDomains) ?? null };
  });
  let best: { connector: OutboundConnector; score: number } | null = null;
  for (const { item, score } of index.lookup(domain)) {
    if (!best || score > best.score || (score === best.score && position.get(item)! < position.get(best.connector)!)) best = { connector: item, score };
  }
  if (allAccepted && (!best || best.score < ALL_ACCEPTED_SCORE) && acceptedDomainFor(policy.acceptedDomains, domain)) {
    return { kind: 'connector', connector: allAccepted, matchedBy: 'allAcceptedDomains' };
  }
  if (!best) return { kind: 'mx', domain };
  return { kind: 'connector', connector: best.connector, matchedBy: matchedPattern(best.connector, domain) };
}

/** The outbound connector of that name if it is in force (enabled): what a mail flow rule's route or a worker's callout names. */
export function enabledOutboundConnector(policy: Policy, name: string): OutboundConnector | null {
  return policy.outboundConnectors.find((c) => c.name === name && c.enabled) ?? null;
}

/**
 * SPEC §3/§4: the route for a recipient domain, where an accepted domain that no outbound
 * connector routes has none — its MX points at the gateway itself, so MX is never used for it.
 * The RCPT check and the queue both ask this one function.
 */
export function routeRecipientDomain(policy: Policy, domain: string): Routing {
  const route = routeDomain(policy, domain);
  if (route.kind === 'mx' && acceptedDomainFor(policy.acceptedDomains, domain)) return { kind: 'none', domain };
  return route;
}
