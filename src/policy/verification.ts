// PURE. Recipient verification by callout (SPEC §3): what the next hop's answer means for RCPT TO.
// delivery/verify.ts asks the question (and remembers the answers); this decides, and `explain`
// tells the same rules.
//
// As Postfix's reject_unverified_recipient: a 5xx from the directory refuses the address
// (550 5.4.1); a 2xx accepts it. When the next hop cannot answer (on-premises down), an address
// verified within the positive lifetime (Postfix's address_verify_positive_expire_time, 31 days)
// is still accepted — the queue carries mail over the outage — and one never verified is
// deferred with 450 4.1.1 (Postfix's defer_if_permit), so that a dictionary attack during the
// outage does not become backscatter once on-premises is back. `unverifiedRecipients: accept`
// on the accepted domain queues those unverified instead.
import { replies } from './replies.js';
import type { Refusal } from './inbound.js';
import type { AcceptedDomain } from './types.js';

/** How long a positive answer vouches for an address while the next hop cannot be asked. */
export const POSITIVE_LIFETIME_MS = 31 * 86_400_000;

/** What the callout found: the next hop's answer, and the address's last positive answer (ms since epoch). */
export interface CalloutFacts {
  result: 'valid' | 'invalid' | 'unknown';
  lastValidAt: number | null;
}

export type CalloutDecision = { accept: true; why: 'verified' | 'verified-before' | 'accepted-unverified' } | { accept: false; refusal: Refusal };

export function calloutDecision(facts: CalloutFacts, domain: Pick<AcceptedDomain, 'unverifiedRecipients'>, connector: string | null, now: number): CalloutDecision {
  if (facts.result === 'valid') return { accept: true, why: 'verified' };
  if (facts.result === 'invalid') return { accept: false, refusal: { rule: 'unknown-recipient', connector, reply: replies.unknownRecipient() } };
  if (facts.lastValidAt !== null && now - facts.lastValidAt <= POSITIVE_LIFETIME_MS) return { accept: true, why: 'verified-before' };
  if (domain.unverifiedRecipients === 'accept') return { accept: true, why: 'accepted-unverified' };
  return { accept: false, refusal: { rule: 'unverified-recipient', connector, reply: replies.unverifiedRecipient() } };
}

/** For explain: the callout's rules in words. */
export function describeCallout(domain: Pick<AcceptedDomain, 'unverifiedRecipients'>, connector: string): string {
  const outage = domain.unverifiedRecipients === 'accept' ? 'other addresses are queued unverified' : `other addresses get ${replies.unverifiedRecipient().code} ${replies.unverifiedRecipient().enhanced}`;
  return `callout to the next hops of ${connector}: ${replies.unknownRecipient().code} ${replies.unknownRecipient().enhanced} if they refuse the address; while they cannot answer, an address verified in the last 31 days is accepted and ${outage} (explain does not call out)`;
}
