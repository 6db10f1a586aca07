// The indexed mail flow rule engine agrees with a naive reading of SPEC §9 on random rule sets
// and random messages: every rule tested, every predicate as it reads.
import { describe, expect, it } from 'vitest';
import { evaluateRules, type MessageFacts } from '../../src/policy/rules.js';
import type { Policy, RulePredicates, TransportRule } from '../../src/policy/types.js';
import { policySchema } from '../../src/config/schema.js';
import { normalize } from '../../src/config/normalize.js';
import { Diagnostics } from '../../src/config/diagnostics.js';
import { baseGateway } from './policy-helpers.js';

function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
}

const CONNECTORS = ['P0', 'P1', 'P2', 'OnPrem'];
const DOMAINS = ['contoso.com', 'sales.contoso.com', 'partner.test', 'mx.partner.test', 'other.test', 'x.other.test'];
const PATTERNS = ['contoso.com', '*.contoso.com', 'partner.test', '*.partner.test', 'other.test', '*.test', '*'];
const LOCALS = ['a', 'b', 'ceo'];

function policyOf(rules: unknown[]): Policy {
  const d = new Diagnostics();
  const p = normalize(
    policySchema.parse({
      gateway: baseGateway,
      acceptedDomains: [{ domain: 'contoso.com' }, { domain: '*.contoso.com' }],
      inboundConnectors: CONNECTORS.map((name) => ({ name, connectorType: 'partner', senderDomains: ['*'] })),
      outboundConnectors: [{ name: 'Out', connectorType: 'partner', recipientDomains: ['partner.test'], smartHosts: ['[192.0.2.1]'] }],
      transportRules: rules,
    }),
    d,
    '/',
  );
  if (d.errorCount) throw new Error(JSON.stringify(d.list));
  return p;
}

function randomPredicates(r: () => number, pick: <T>(a: readonly T[]) => T, density: number): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  const some = <T,>(a: readonly T[]) => Array.from({ length: 1 + Math.floor(r() * 2) }, () => pick(a));
  if (r() < density) p.fromConnector = some(CONNECTORS);
  if (r() < density) p.senderDomains = some(PATTERNS);
  if (r() < density) p.senderAddresses = some(LOCALS.flatMap((l) => DOMAINS.map((d) => `${l}@${d}`)));
  if (r() < density) p.recipientDomains = some(PATTERNS);
  if (r() < density) p.recipientAddresses = some(LOCALS.flatMap((l) => DOMAINS.map((d) => `${l}@${d}`)));
  if (r() < density / 2) p.sentToScope = pick(['inOrganization', 'notInOrganization']);
  if (r() < density / 2) p.messageSizeOver = pick([1000, 50_000]);
  if (r() < density / 2) p.headerMatches = [{ name: 'X-Class', pattern: pick(['^conf', 'public$', 'secret']) }];
  return p;
}

/** SPEC §9 as it reads, testing every rule and every predicate. */
function reference(policy: Policy, m: MessageFacts) {
  const dom = (a: string) => (a.includes('@') ? a.slice(a.lastIndexOf('@') + 1).toLowerCase() : '');
  const matchDomain = (pats: NonNullable<RulePredicates['senderDomains']>, d: string) => pats.some((p) => p.kind === 'any' || (p.kind === 'exact' ? p.name === d : d.endsWith(p.suffix)));
  const accepted = (d: string) => d === 'contoso.com' || d.endsWith('.contoso.com');
  const msgPreds = (p: RulePredicates): boolean[] => [
    ...(p.fromConnector ? [m.connector !== null && p.fromConnector.includes(m.connector)] : []),
    ...(p.senderDomains ? [matchDomain(p.senderDomains, dom(m.sender))] : []),
    ...(p.senderAddresses ? [p.senderAddresses.includes(m.sender.toLowerCase())] : []),
    ...(p.messageSizeOver !== null ? [m.size > p.messageSizeOver] : []),
    ...(p.headerMatches ? [p.headerMatches.some((h) => m.headers.some((f) => f.name.toLowerCase() === h.name && h.pattern.test(f.value)))] : []),
  ];
  const rcptPreds = (p: RulePredicates, rcpt: string): boolean[] => [
    ...(p.recipientDomains ? [matchDomain(p.recipientDomains, dom(rcpt))] : []),
    ...(p.recipientAddresses ? [p.recipientAddresses.includes(rcpt.toLowerCase())] : []),
    ...(p.sentToScope ? [accepted(dom(rcpt)) === (p.sentToScope === 'inOrganization')] : []),
  ];
  const fired: Array<{ rule: string; recipients: string[] }> = [];
  const routes = new Map<string, string>();
  let reject: string | null = null;
  const rules = [...policy.transportRules].sort((a: TransportRule, b: TransportRule) => a.priority - b.priority || a.position - b.position);
  for (const rule of rules) {
    if (!rule.enabled) continue;
    if (!msgPreds(rule.conditions).every(Boolean) || msgPreds(rule.exceptions).some(Boolean)) continue;
    const recipients = m.recipients.filter((x) => rcptPreds(rule.conditions, x).every(Boolean) && !rcptPreds(rule.exceptions, x).some(Boolean));
    if (!recipients.length) continue;
    fired.push({ rule: rule.name, recipients });
    if (rule.mode === 'audit') continue;
    if (rule.actions.reject) {
      reject = rule.name;
      break;
    }
    if (rule.actions.routeMessageOutboundConnector) for (const x of recipients) if (!routes.has(x)) routes.set(x, rule.name);
    if (rule.actions.stopRuleProcessing) break;
  }
  return { fired, routes: [...routes], reject };
}

describe('mail flow rules: the indexed engine agrees with the naive reading', () => {
  it('on 60 random rule sets × 100 random messages', () => {
    const r = rng(14);
    const pick = <T,>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
    let firedTotal = 0;
    let compared = 0;
    for (let s = 0; s < 60; s++) {
      const rules = Array.from({ length: 1 + Math.floor(r() * 25) }, (_, i) => ({
        name: `R${i}`,
        priority: Math.floor(r() * 10),
        enabled: r() > 0.1,
        mode: r() > 0.8 ? 'audit' : 'enforce',
        conditions: randomPredicates(r, pick, 0.35),
        exceptions: r() > 0.6 ? randomPredicates(r, pick, 0.2) : {},
        actions: {
          ...(r() > 0.5 ? { routeMessageOutboundConnector: 'Out' } : {}),
          ...(r() > 0.9 ? { reject: { code: 550, enhanced: '5.7.1', text: 'no' } } : {}),
          stopRuleProcessing: r() > 0.85,
        },
      }));
      const policy = policyOf(rules);
      for (let k = 0; k < 100; k++) {
        const m: MessageFacts = {
          connector: r() > 0.1 ? pick(CONNECTORS) : null,
          sender: r() > 0.05 ? `${pick(LOCALS)}@${pick(DOMAINS)}` : '',
          recipients: Array.from({ length: 1 + Math.floor(r() * 3) }, () => `${pick(LOCALS)}@${pick(DOMAINS)}`).filter((x, i, a) => a.indexOf(x) === i),
          headers: r() > 0.5 ? [{ name: 'X-Class', value: pick(['Confidential', 'public', 'top secret']) }] : [],
          size: pick([500, 5000, 100_000]),
        };
        const fast = evaluateRules(policy, m);
        const slow = reference(policy, m);
        const got = { fired: fast.fired.map((f) => ({ rule: f.rule, recipients: f.recipients })), routes: [...fast.routes].map(([x, v]) => [x, v.rule]), reject: fast.reject?.rule ?? null };
        expect(got, JSON.stringify({ rules, m })).toEqual(slow);
        firedTotal += slow.fired.length;
        compared++;
      }
    }
    expect(compared).toBe(6000);
    expect(firedTotal).toBeGreaterThan(1000); // the random sets do fire: the comparison is not vacuous
  });
});
