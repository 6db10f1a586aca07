// PURE. Mail flow rules (SPEC §9), evaluated at end of DATA in priority order: the facts of
// one message in, what the rules do to it out. Conditions must all hold; each list means "any
// of". Any exception that holds skips the rule. Recipient predicates (recipientDomains,
// recipientAddresses, sentToScope) are judged per recipient: a rule applies to the recipients
// that meet them, and its route applies to those only (the message splits). Header actions and
// reject act on the whole message. An audit rule is reported, never performed.
import { domainOf } from '../mail/address.js';
import type { DomainPattern } from './match.js';
import { memo } from './index.js';
import { acceptedDomainFor } from './accepted.js';
import type { Reply } from './replies.js';
import type { Policy, RulePredicates, TransportRule } from './types.js';

/** A header value longer than this is matched on its first MAX_HEADER_SCAN characters only. */
export const MAX_HEADER_SCAN = 64 * 1024;

/** One header pattern examines at most this many characters of one message, over all its fields. */
export const MAX_HEADER_SCAN_PER_MESSAGE = 256 * 1024;

export interface MessageFacts {
  /** The inbound connector the session was attributed to, or null. */
  connector: string | null;
  sender: string;
  recipients: readonly string[];
  /** The message's header fields, unfolded, in order; names as written. */
  headers: ReadonlyArray<{ name: string; value: string }>;
  size: number;
}

export type RuleAction = 'route' | 'reject' | 'setHeaders' | 'removeHeaders' | 'stop';

export interface FiredRule {
  rule: string;
  mode: 'enforce' | 'audit';
  recipients: string[];
  actions: RuleAction[];
}

export interface RulesDecision {
  fired: FiredRule[];
  /** Refuse the whole message at end of DATA with this reply. */
  reject: { rule: string; reply: Reply } | null;
  /** Recipient → the outbound connector a rule sends it to (the first rule to route it wins). */
  routes: Map<string, { rule: string; connector: string }>;
  /** In order: removals first, then headers set (a set replaces fields of the same name). */
  removeHeaders: string[];
  setHeaders: Array<[string, string]>;
}

const lower = (s: string): string => s.toLowerCase();

/** A list of domain patterns as a matcher: exact names in a set, then the suffixes. */
interface DomainSet {
  any: boolean;
  exact: Set<string>;
  suffixes: string[];
}
function domainSet(list: readonly DomainPattern[]): DomainSet {
  const d: DomainSet = { any: false, exact: new Set(), suffixes: [] };
  for (const p of list) {
    if (p.kind === 'any') d.any = true;
    else if (p.kind === 'exact') d.exact.add(p.name);
    else d.suffixes.push(p.suffix);
  }
  return d;
}
function inDomainSet(d: DomainSet, domain: string): boolean {
  if (d.any || d.exact.has(domain)) return true;
  for (const s of d.suffixes) if (domain.endsWith(s)) return true;
  return false;
}

/** Predicates compiled for evaluation: sets instead of lists; null = not given. */
interface Compiled {
  fromConnector: Set<string> | null;
  senderDomains: DomainSet | null;
  senderAddresses: Set<string> | null;
  headerMatches: RulePredicates['headerMatches'];
  messageSizeOver: number | null;
  recipientDomains: DomainSet | null;
  recipientAddresses: Set<string> | null;
  sentToScope: RulePredicates['sentToScope'];
  /** Whether any message-level / recipient-level predicate is given. */
  hasMessage: boolean;
  hasRecipient: boolean;
}
function compile(p: RulePredicates): Compiled {
  const c: Compiled = {
    fromConnector: p.fromConnector && new Set(p.fromConnector),
    senderDomains: p.senderDomains && domainSet(p.senderDomains),
    senderAddresses: p.senderAddresses && new Set(p.senderAddresses),
    headerMatches: p.headerMatches,
    messageSizeOver: p.messageSizeOver,
    recipientDomains: p.recipientDomains && domainSet(p.recipientDomains),
    recipientAddresses: p.recipientAddresses && new Set(p.recipientAddresses),
    sentToScope: p.sentToScope,
    hasMessage: false,
    hasRecipient: false,
  };
  c.hasMessage = !!(c.fromConnector || c.senderDomains || c.senderAddresses || c.headerMatches || c.messageSizeOver !== null);
  c.hasRecipient = !!(c.recipientDomains || c.recipientAddresses || c.sentToScope);
  return c;
}

interface CompiledRule {
  rule: TransportRule;
  conditions: Compiled;
  exceptions: Compiled;
  actions: RuleAction[];
}

/**
 * Which rules a message can possibly meet. Each rule is filed under one condition that must hold
 * (its connector, sender, recipient address, or a domain list without "*"); a rule with none is
 * always a candidate. A message then looks up its own keys instead of testing every rule, and
 * only the candidates are evaluated in full — in priority order.
 */
class RuleIndex {
  readonly rules: CompiledRule[];
  private always: number[] = [];
  private byConnector = new Map<string, number[]>();
  private bySender = new Map<string, number[]>();
  private byRecipient = new Map<string, number[]>();
  private bySenderDomain = new Map<string, number[]>(); // "x.com" (exact) and "*.x.com" under ".x.com"
  private byRecipientDomain = new Map<string, number[]>();

  constructor(rules: readonly TransportRule[]) {
    this.rules = rules.filter((r) => r.enabled).map((rule) => ({ rule, conditions: compile(rule.conditions), exceptions: compile(rule.exceptions), actions: actionsOf(rule) }));
    this.rules.forEach(({ conditions: c }, i) => {
      const file = (m: Map<string, number[]>, keys: Iterable<string>): void => {
        for (const k of keys) {
          const l = m.get(k);
          if (l) {
            if (l[l.length - 1] !== i) l.push(i);
          } else m.set(k, [i]);
        }
      };
      const domains = (d: DomainSet): string[] => [...d.exact, ...d.suffixes];
      if (c.fromConnector) file(this.byConnector, c.fromConnector);
      else if (c.senderAddresses) file(this.bySender, c.senderAddresses);
      else if (c.recipientAddresses) file(this.byRecipient, c.recipientAddresses);
      else if (c.senderDomains && !c.senderDomains.any) file(this.bySenderDomain, domains(c.senderDomains));
      else if (c.recipientDomains && !c.recipientDomains.any) file(this.byRecipientDomain, domains(c.recipientDomains));
      else this.always.push(i);
    });
  }

  /** Candidate rule positions for a message, ascending (= evaluation order). */
  candidates(m: Prepared): number[] {
    const hit = new Set<number>(this.always);
    const add = (l: number[] | undefined): void => {
      if (l) for (const i of l) hit.add(i);
    };
    const addDomain = (map: Map<string, number[]>, domain: string): void => {
      if (!map.size) return;
      add(map.get(domain));
      for (let i = domain.indexOf('.'); i >= 0; i = domain.indexOf('.', i + 1)) add(map.get(domain.slice(i)));
    };
    if (m.facts.connector !== null) add(this.byConnector.get(m.facts.connector));
    add(this.bySender.get(m.sender));
    addDomain(this.bySenderDomain, m.senderDomain);
    for (const r of m.recipients) {
      add(this.byRecipient.get(r.lower));
      addDomain(this.byRecipientDomain, r.domain);
    }
    return [...hit].sort((a, b) => a - b);
  }
}

const indexes = new WeakMap<readonly TransportRule[], RuleIndex>();

/** The message's facts, normalized once for all rules. */
interface Prepared {
  facts: MessageFacts;
  senderDomain: string;
  sender: string;
  recipients: PreparedRecipient[];
}

/** One recipient, normalized once; whether it is in an accepted domain is asked only when a rule needs it. */
class PreparedRecipient {
  readonly lower: string;
  readonly domain: string;
  private org: boolean | undefined;
  constructor(
    readonly address: string,
    private readonly policy: Policy,
  ) {
    this.lower = lower(address);
    this.domain = domainOf(address);
  }
  get inOrganization(): boolean {
    return (this.org ??= acceptedDomainFor(this.policy.acceptedDomains, this.domain) !== null);
  }
}

/**
 * Whether a field named by a pattern matches it. Bounded per message: each value on its first
 * MAX_HEADER_SCAN characters, each pattern on MAX_HEADER_SCAN_PER_MESSAGE characters in all (80
 * fields of 64 KB are not 80 scans of 64 KB).
 */
function headerMatches(p: NonNullable<RulePredicates['headerMatches']>, facts: MessageFacts): boolean {
  return p.some((h) => {
    let budget = MAX_HEADER_SCAN_PER_MESSAGE;
    for (const f of facts.headers) {
      if (budget <= 0) return false;
      if (lower(f.name) !== h.name) continue;
      const take = Math.min(f.value.length, MAX_HEADER_SCAN, budget);
      budget -= take;
      if (h.pattern.test(take < f.value.length ? f.value.slice(0, take) : f.value)) return true;
    }
    return false;
  });
}

/** Message-level predicates: whether all given hold (conditions). Cheap ones first, header patterns last. */
function messageAll(c: Compiled, m: Prepared): boolean {
  if (!c.hasMessage) return true;
  if (c.fromConnector && (m.facts.connector === null || !c.fromConnector.has(m.facts.connector))) return false;
  // The null sender has the domain "": only "*" matches it, as in attribution.
  if (c.senderDomains && !inDomainSet(c.senderDomains, m.senderDomain)) return false;
  if (c.senderAddresses && !c.senderAddresses.has(m.sender)) return false;
  if (c.messageSizeOver !== null && m.facts.size <= c.messageSizeOver) return false;
  if (c.headerMatches && !headerMatches(c.headerMatches, m.facts)) return false;
  return true;
}

/** Message-level predicates: whether any given holds (exceptions). */
function messageAny(c: Compiled, m: Prepared): boolean {
  if (!c.hasMessage) return false;
  if (c.fromConnector && m.facts.connector !== null && c.fromConnector.has(m.facts.connector)) return true;
  if (c.senderDomains && inDomainSet(c.senderDomains, m.senderDomain)) return true;
  if (c.senderAddresses && c.senderAddresses.has(m.sender)) return true;
  if (c.messageSizeOver !== null && m.facts.size > c.messageSizeOver) return true;
  if (c.headerMatches && headerMatches(c.headerMatches, m.facts)) return true;
  return false;
}

/** Recipient-level predicates for one recipient: all given hold (conditions). */
function recipientAll(c: Compiled, r: PreparedRecipient): boolean {
  if (!c.hasRecipient) return true;
  if (c.recipientDomains && !inDomainSet(c.recipientDomains, r.domain)) return false;
  if (c.recipientAddresses && !c.recipientAddresses.has(r.lower)) return false;
  if (c.sentToScope && r.inOrganization !== (c.sentToScope === 'inOrganization')) return false;
  return true;
}

/** Recipient-level predicates for one recipient: any given holds (exceptions). */
function recipientAny(c: Compiled, r: PreparedRecipient): boolean {
  if (!c.hasRecipient) return false;
  if (c.recipientDomains && inDomainSet(c.recipientDomains, r.domain)) return true;
  if (c.recipientAddresses && c.recipientAddresses.has(r.lower)) return true;
  if (c.sentToScope && r.inOrganization === (c.sentToScope === 'inOrganization')) return true;
  return false;
}

function prepare(policy: Policy, facts: MessageFacts): Prepared {
  return {
    facts,
    senderDomain: domainOf(facts.sender),
    sender: lower(facts.sender),
    recipients: facts.recipients.map((address) => new PreparedRecipient(address, policy)),
  };
}

const NONE: string[] = [];

function applies(cond: Compiled, exc: Compiled, m: Prepared): string[] {
  if (!messageAll(cond, m) || messageAny(exc, m)) return NONE;
  let out: string[] | null = null;
  for (const r of m.recipients) if (recipientAll(cond, r) && !recipientAny(exc, r)) (out ??= []).push(r.address);
  return out ?? NONE;
}

function actionsOf(rule: TransportRule): RuleAction[] {
  const a = rule.actions;
  const out: RuleAction[] = [];
  if (a.routeMessageOutboundConnector !== null) out.push('route');
  if (a.reject) out.push('reject');
  if (a.setHeaders.length) out.push('setHeaders');
  if (a.removeHeaders.length) out.push('removeHeaders');
  if (a.stopRuleProcessing) out.push('stop');
  return out;
}

export function evaluateRules(policy: Policy, facts: MessageFacts): RulesDecision {
  const d: RulesDecision = { fired: [], reject: null, routes: new Map(), removeHeaders: [], setHeaders: [] };
  if (!policy.transportRules.length) return d;
  const index = memo(indexes, policy.transportRules, () => new RuleIndex(policy.transportRules));
  const m = prepare(policy, facts);
  for (const i of index.candidates(m)) {
    const { rule, conditions, exceptions, actions } = index.rules[i]!;
    const recipients = applies(conditions, exceptions, m);
    if (!recipients.length) continue;
    d.fired.push({ rule: rule.name, mode: rule.mode, recipients, actions });
    if (rule.mode === 'audit') continue;
    const a = rule.actions;
    if (a.reject) {
      d.reject = { rule: rule.name, reply: { code: a.reject.code, enhanced: a.reject.enhanced, text: a.reject.text } };
      break; // nothing else matters for a refused message
    }
    if (a.routeMessageOutboundConnector !== null) {
      for (const r of recipients) if (!d.routes.has(r)) d.routes.set(r, { rule: rule.name, connector: a.routeMessageOutboundConnector });
    }
    for (const h of a.removeHeaders) d.removeHeaders.push(h);
    for (const h of a.setHeaders) d.setHeaders.push(h);
    if (a.stopRuleProcessing) break;
  }
  return d;
}
