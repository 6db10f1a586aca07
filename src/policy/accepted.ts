// PURE. Accepted domains (SPEC §2/§3).
import { bestDomainMatch } from './match.js';
import type { AcceptedDomain } from './types.js';

/** The accepted domain entry a domain falls in (most specific), or null. */
export function acceptedDomainFor(accepted: readonly AcceptedDomain[], domain: string): AcceptedDomain | null {
  let best: AcceptedDomain | null = null;
  let bestScore = -1;
  for (const a of accepted) {
    const s = bestDomainMatch([a.pattern], domain);
    if (s > bestScore) {
      best = a;
      bestScore = s;
    }
  }
  return best;
}
