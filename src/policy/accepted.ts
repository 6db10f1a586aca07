// PURE. Accepted domains (SPEC §2/§3).
import { DomainIndex, memo } from './index.js';
import type { AcceptedDomain } from './types.js';

const indexes = new WeakMap<readonly AcceptedDomain[], { index: DomainIndex<AcceptedDomain>; position: Map<AcceptedDomain, number> }>();

/** The accepted domain entry a domain falls in (most specific, then listed first), or null. */
export function acceptedDomainFor(accepted: readonly AcceptedDomain[], domain: string): AcceptedDomain | null {
  const { index, position } = memo(indexes, accepted, () => {
    const index = new DomainIndex<AcceptedDomain>();
    for (const a of accepted) index.add(a, [a.pattern]);
    return { index, position: new Map(accepted.map((a, i) => [a, i])) };
  });
  let best: AcceptedDomain | null = null;
  let bestScore = -1;
  for (const { item, score } of index.lookup(domain)) {
    if (score > bestScore || (score === bestScore && position.get(item)! < position.get(best!)!)) {
      best = item;
      bestScore = score;
    }
  }
  return best;
}
