// What is signed on the way out (SPEC §11), decided: the message's header From domain and the
// route in, the DKIM keys and ARC seal to apply out. Delivery performs it (auth/sign.ts), as
// the last change before the message leaves; `explain` shows the same plan.
import { normalizeDomain } from '../mail/address.js';
import type { Route } from './outbound.js';
import type { AuthenticationSettings, DkimSigningConfig, Policy } from './types.js';

export interface SigningPlan {
  /** DKIM keys that sign (RSA and Ed25519 of one domain both do, RFC 8463). */
  dkim: DkimSigningConfig[];
  /** The ARC seal added, for a message that came from outside and was authenticated here. */
  arcSeal: NonNullable<AuthenticationSettings['arcSeal']> | null;
}

/**
 * DKIM: every enabled config of the From domain, toward any connector that is not onPremises
 * (our own servers need no signature, and the header firewall has had its say by then).
 * ARC: every message authenticated at the edge, whatever its route.
 */
export function signingPlan(policy: Policy, fromDomain: string | null, route: Route, authenticated: boolean): SigningPlan {
  const domain = fromDomain === null ? null : normalizeDomain(fromDomain);
  return {
    dkim: domain && dkimMaySign(policy, route) ? policy.dkimSigningConfigs.filter((c) => c.enabled && c.domainName === domain) : [],
    arcSeal: authenticated ? (policy.gateway.authentication?.arcSeal ?? null) : null,
  };
}

/** Whether any DKIM key may sign toward `route`: the From domain is worth reading only then. */
export function dkimMaySign(policy: Policy, route: Route): boolean {
  const toOurServers = route.kind === 'connector' && route.connector.connectorType === 'onPremises';
  return !toOurServers && policy.dkimSigningConfigs.some((c) => c.enabled);
}

/**
 * The header fields a DKIM signature covers, those present of RFC 6376 §5.4.1's recommendation.
 * Not oversigned: mailauth signs each present field once and has no way to list one more From;
 * a From added later makes two From fields, which DMARC receivers refuse (RFC 7489 §6.6.1).
 */
export const SIGNED_HEADERS = [
  'From',
  'Reply-To',
  'Subject',
  'Date',
  'To',
  'Cc',
  'Resent-Date',
  'Resent-From',
  'Resent-To',
  'Resent-Cc',
  'In-Reply-To',
  'References',
  'List-Id',
  'List-Help',
  'List-Unsubscribe',
  'List-Unsubscribe-Post',
  'List-Subscribe',
  'List-Post',
  'List-Owner',
  'List-Archive',
  'Message-ID',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
];
