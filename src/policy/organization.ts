// PURE. Who may send as the organization (SPEC §11), applied to the attribution of SPEC §3:
//   Reject Direct Send — a transaction no connector claims, whose MAIL FROM domain is one of our
//     accepted domains, is refused 550 5.7.68 at MAIL FROM (Exchange Online's
//     Set-OrganizationConfig -RejectDirectSend): only our own servers send as us.
//   the relay of on-premises connectors — one identified by IP relays to other domains only for
//     a MAIL FROM in our accepted domains (or the null sender: its own delivery reports), one
//     identified by certificate only with a certificate name in our domains (Exchange Online's
//     rule since 2023); relayAnySenderDomain on the connector lifts it for applications that must
//     send as other domains. Without relay, RCPT outside our domains gets 550 5.7.64.
import { domainOf } from '../mail/address.js';
import { acceptedDomainFor } from './accepted.js';
import type { SenderDecision, SenderFacts } from './inbound.js';
import { replies } from './replies.js';
import type { AcceptedDomain, Policy } from './types.js';

/** A name in the namespace of one of our accepted domains (the domain itself or below it). */
export function inOurDomains(name: string, accepted: readonly AcceptedDomain[]): boolean {
  const host = name.toLowerCase().replace(/\.$/, '');
  return accepted.some(({ pattern: p }) => {
    if (p.kind === 'any') return true;
    const base = p.kind === 'exact' ? p.name.toLowerCase() : p.suffix.slice(1).toLowerCase();
    return host === base || host.endsWith(`.${base}`);
  });
}

export function applyOrganizationRules(policy: Pick<Policy, 'acceptedDomains'> & { gateway: Pick<Policy['gateway'], 'rejectDirectSend'> }, facts: SenderFacts, d: SenderDecision): SenderDecision {
  if (d.refusal) return d;
  const domain = facts.sender ? domainOf(facts.sender) : '';
  const ours = domain !== '' && acceptedDomainFor(policy.acceptedDomains, domain) !== null;
  const a = d.attribution;
  if (policy.gateway.rejectDirectSend && a.connector === null && ours) {
    return { ...d, refusal: { rule: 'direct-send', connector: null, reply: replies.directSendRejected() }, trace: [...d.trace, `Reject Direct Send: ${domain} is ours and no connector claims this session`] };
  }
  if (a.mayRelay && a.connector && !a.connector.relayAnySenderDomain) {
    const byCertificate = a.identifiedBy === 'certificate' && facts.certNames.some((n) => inOurDomains(n, policy.acceptedDomains));
    if (!byCertificate && facts.sender !== '' && !ours) {
      return {
        ...d,
        attribution: { ...a, mayRelay: false },
        trace: [...d.trace, `relay: connector "${a.connector.name}" relays only for senders in our accepted domains (${domain || 'none'} is not; relayAnySenderDomain lifts this)`],
      };
    }
  }
  return d;
}
