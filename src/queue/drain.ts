// PURE. Draining a node (SPEC §12), decided: the route every queued message takes to the rest
// of the cluster, and what a hand-over's replies do to a message. The daemon performs it
// (daemon/drain.ts); the queue is the hand-off, as between Postfix's qmgr and smtp.
import type { OutboundConnector, SmartHost } from '../policy/types.js';
import type { Route } from '../policy/outbound.js';
import type { Envelope } from './spool.js';
import type { RecipientOutcome } from '../delivery/status.js';

/**
 * The peer (a named node, or the balancer in front of the others) as an onPremises connector:
 * the message goes as it is — its Exchange headers kept, not DKIM-signed here (the node that
 * delivers it signs) — with opportunistic TLS; DSN parameters and REQUIRETLS go along as on
 * every delivery.
 */
export function drainRoute(peer: SmartHost): Route {
  const connector: OutboundConnector = {
    name: `drain to ${peer.text}`,
    connectorType: 'onPremises',
    enabled: true,
    recipientDomains: [],
    allAcceptedDomains: false,
    useMXRecord: false,
    smartHosts: [peer],
    tlsSettings: null,
    tlsDomain: null,
    tlsCertificateAuthorities: null,
    cloudServicesMailEnabled: true,
    isTransportRuleScoped: true,
    smtpDaneMode: null,
    mtaStsMode: null,
    comment: 'connector-gateway drain',
  };
  return { kind: 'connector', connector, matchedBy: 'drain' };
}

/** The recipients still to hand over: pending ones (delivered and failed ones are settled here). */
export function toHandOver(env: Envelope): string[] {
  return env.recipients.filter((r) => r.status === 'pending').map((r) => r.address);
}

/**
 * After one hand-over: every recipient the peer took (250) is settled — never sent again, by a
 * later drain either — and the message is done when none is left. A refusal or no answer keeps
 * the recipient for the next drain: nothing bounces for a hand-over.
 */
export function afterHandOver(env: Envelope, outcomes: ReadonlyMap<string, RecipientOutcome>): { envelope: Envelope; handed: string[]; left: string[] } {
  const handed: string[] = [];
  const left: string[] = [];
  const recipients = env.recipients.map((r) => {
    if (r.status !== 'pending') return r;
    const o = outcomes.get(r.address);
    if (o?.status === 'delivered') {
      handed.push(r.address);
      return { ...r, status: 'delivered' as const, lastResult: `handed over: ${o.detail}` };
    }
    left.push(r.address);
    return o ? { ...r, lastResult: `not handed over: ${o.code} ${o.detail}` } : r;
  });
  return { envelope: { ...env, recipients }, handed, left };
}
