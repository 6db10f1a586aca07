// Sender authentication at the edge (SPEC §11), decided: plain facts in (what SPF, DKIM, ARC and
// DMARC found — the auth adapter gathers them), a verdict out. No DNS, no message bytes here;
// the session and `explain --message` call the same functions.
import type { ConnectorType, DmarcMode } from './types.js';
import { replies, type Reply } from './replies.js';

/** RFC 8601 result words, as the checks report them. */
export type AuthResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror' | 'policy';
export type DmarcPolicy = 'none' | 'quarantine' | 'reject';

export interface DmarcFacts {
  /** The header From domain; null when DMARC could not be evaluated (see `unevaluable`). */
  domain: string | null;
  result: AuthResult;
  /** The policy that applies to the domain (p, or sp for a subdomain), when a record was found. */
  policy: DmarcPolicy | null;
  /** The record's pct= (RFC 7489 §6.6.4); 100 when absent. */
  pct: number;
  /**
   * What made a pass: an aligned SPF pass, an aligned DKIM pass, and the body bytes that aligned
   * DKIM signature left unsigned (its l= tag stopped short of the body: content appended later).
   */
  passedBy: { spf: boolean; dkim: boolean; unsignedBytes: number };
  /**
   * Why DMARC could not be evaluated (two From fields, several author domains, no domain): the
   * message cannot pass. `policies` are those of the From domains found, strictest first.
   */
  unevaluable: { reason: string; policies: Array<{ domain: string; policy: DmarcPolicy }> } | null;
}

export interface ArcFacts {
  /** The chain's validation: none (no chain), pass, fail. */
  result: AuthResult;
  /** The d= of the newest ARC-Seal, lower case; null without a chain. */
  sealer: string | null;
  /** What the newest ARC-Authentication-Results says the sealer found: DMARC, DKIM or SPF pass. */
  sealerSawPass: boolean;
}

export interface AuthFacts {
  spf: { result: AuthResult; domain: string };
  dkim: Array<{ result: AuthResult; domain: string; selector: string }>;
  arc: ArcFacts;
  dmarc: DmarcFacts;
}

/** Which sessions are checked: every one but our own servers' (an `onPremises` connector). */
export function authenticationApplies(settings: { dmarc: DmarcMode } | null, connectorType: ConnectorType | null): boolean {
  return settings !== null && connectorType !== 'onPremises';
}

/** What a quarantine verdict adds to the message: Exchange's junk-folder mark (SCL 5), kept toward on-premises by the header firewall. */
export const QUARANTINE_FIELD = 'X-MS-Exchange-Organization-SCL: 5';

export type AuthVerdict =
  | { action: 'accept'; why: string }
  /** p=quarantine: accepted, marked for the junk folder (SCL 5 toward on-premises). */
  | { action: 'quarantine'; why: string }
  | { action: 'reject'; why: string; reply: Reply; domain: string };

/**
 * The DMARC verdict. `sample` is a number in [0, 100) drawn per message for pct= (a message
 * outside the percentage gets the next policy down, RFC 7489 §6.6.4); tests pass it fixed.
 * A temporary error never refuses and never counts as a pass; an intact ARC chain sealed by a
 * trusted sealer that saw a pass rescues a failure (forwarders and mailing lists).
 */
export function authVerdict(mode: DmarcMode, trustedSealers: readonly string[], facts: AuthFacts, sample: number): AuthVerdict {
  if (mode === 'off') return { action: 'accept', why: 'dmarc: off' };
  const d = { ...facts.dmarc, result: dmarcResult(facts.dmarc) };
  let domain: string;
  let policy: DmarcPolicy | null;
  if (d.unevaluable) {
    const strictest = d.unevaluable.policies[0];
    if (!strictest) return { action: 'accept', why: `DMARC not evaluable (${d.unevaluable.reason}), no policy found` };
    domain = strictest.domain;
    policy = strictest.policy;
  } else {
    if (d.result !== 'fail') return { action: 'accept', why: `dmarc=${d.result}` };
    domain = d.domain ?? '';
    policy = d.policy;
  }
  if (policy === null || policy === 'none') return { action: 'accept', why: `DMARC fails for ${domain}, policy none` };
  if (!d.unevaluable && sample >= d.pct) policy = policy === 'reject' ? 'quarantine' : 'none';
  if (policy === 'none') return { action: 'accept', why: `DMARC fails for ${domain}, outside pct=${d.pct}` };
  const rescue = arcRescue(trustedSealers, facts.arc);
  if (rescue) return { action: 'accept', why: `DMARC fails for ${domain}, ${rescue}` };
  const what = d.unevaluable ? `DMARC cannot pass (${d.unevaluable.reason}) for ${domain}` : `DMARC fails for ${domain}`;
  if (mode === 'audit') return { action: 'accept', why: `${what}, policy ${policy} (audit: nothing done)` };
  if (policy === 'quarantine') return { action: 'quarantine', why: `${what}, policy quarantine` };
  return { action: 'reject', why: `${what}, policy reject`, reply: replies.dmarcReject(domain), domain };
}

/**
 * The DMARC result we stand by. A pass that rests only on a DKIM signature whose l= left part of
 * the body unsigned is a fail: what was appended after the signed part is the attacker's
 * (RFC 6376 §8.2), and the signature vouches for none of it.
 */
export function dmarcResult(d: DmarcFacts): AuthResult {
  return d.result === 'pass' && !d.passedBy.spf && d.passedBy.dkim && d.passedBy.unsignedBytes > 0 ? 'fail' : d.result;
}

/** Why an ARC chain rescues a DMARC failure, or null: intact, newest seal by a trusted sealer, who saw a pass. */
export function arcRescue(trustedSealers: readonly string[], arc: ArcFacts): string | null {
  if (arc.result !== 'pass' || !arc.sealer || !arc.sealerSawPass) return null;
  const sealer = arc.sealer;
  return trustedSealers.some((t) => t === sealer) ? `rescued by the ARC chain sealed by ${sealer} (a trusted sealer)` : null;
}

/** The header firewall for authentication results: a field from outside that claims our authserv-id could only be forged. */
export function claimsOurAuthservId(name: string, value: string, authservId: string): boolean {
  const n = name.toLowerCase();
  let v = value.replace(/\([^)]*\)/g, ' ').trim(); // CFWS comments
  if (n === 'arc-authentication-results') v = v.replace(/^i\s*=\s*\d+\s*;/i, '').trim();
  else if (n !== 'authentication-results') return false;
  const id = /^"?([^\s;"]+)"?/.exec(v)?.[1];
  return !!id && id.toLowerCase() === authservId.toLowerCase();
}
