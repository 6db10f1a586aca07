// Mail flow rules (policy/rules.ts), the header firewall (policy/headers.ts), header blocks
// (mail/headers.ts) and what `check` says about rules (config/normalize.ts, lint.ts).
import { describe, expect, it } from 'vitest';
import { evaluateRules, type MessageFacts } from '../../src/policy/rules.js';
import { isExchangeTrustedHeader } from '../../src/policy/headers.js';
import { editHeaderBlock, filterHeaderBlock, parseHeaderBlock } from '../../src/mail/headers.js';
import { formatDiagnostics, loadPolicyText } from '../../src/config/load.js';
import { stringify } from 'yaml';
import { baseGateway, policyOf } from './policy-helpers.js';

const connectors = {
  acceptedDomains: [{ domain: 'contoso.com' }, { domain: '*.contoso.com' }],
  inboundConnectors: [
    { name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: ['10.0.0.0/24'], cloudServicesMailEnabled: true },
    { name: 'Partner', connectorType: 'partner', senderDomains: ['partner.test'] },
  ],
  outboundConnectors: [
    { name: 'To OnPrem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[10.0.0.5]'] },
    { name: 'Archive relay', connectorType: 'partner', isTransportRuleScoped: true, smartHosts: ['[10.0.0.9]'] },
    { name: 'Legal relay', connectorType: 'partner', isTransportRuleScoped: true, smartHosts: ['[10.0.0.10]'] },
  ],
};

const facts = (f: Partial<MessageFacts> = {}): MessageFacts => ({ connector: 'OnPrem', sender: 'ceo@contoso.com', recipients: ['a@partner.test'], headers: [], size: 1000, ...f });
const fired = (rules: unknown[], f: Partial<MessageFacts> = {}) => evaluateRules(policyOf({ ...connectors, transportRules: rules } as never), facts(f));
const route = (extra: Record<string, unknown> = {}) => ({ name: 'R', actions: { routeMessageOutboundConnector: 'Archive relay' }, ...extra });

describe('conditions, one at a time', () => {
  const cases: Array<[string, Record<string, unknown>, Partial<MessageFacts>, Partial<MessageFacts>]> = [
    ['fromConnector', { fromConnector: ['OnPrem'] }, { connector: 'OnPrem' }, { connector: 'Partner' }],
    ['senderDomains', { senderDomains: ['*.contoso.com'] }, { sender: 'x@legal.contoso.com' }, { sender: 'x@contoso.com' }],
    ['senderAddresses', { senderAddresses: ['CEO@contoso.com'] }, { sender: 'ceo@Contoso.com' }, { sender: 'cfo@contoso.com' }],
    ['recipientDomains', { recipientDomains: ['partner.test'] }, { recipients: ['a@PARTNER.test'] }, { recipients: ['a@other.test'] }],
    ['recipientAddresses', { recipientAddresses: ['a@partner.test'] }, { recipients: ['A@partner.test'] }, { recipients: ['b@partner.test'] }],
    ['headerMatches', { headerMatches: [{ name: 'X-Classification', pattern: '^Confidential' }] }, { headers: [{ name: 'x-classification', value: 'confidential; legal' }] }, { headers: [{ name: 'X-Classification', value: 'Public, Confidential' }] }],
    ['sentToScope inOrganization', { sentToScope: 'inOrganization' }, { recipients: ['u@sales.contoso.com'] }, { recipients: ['u@partner.test'] }],
    ['sentToScope notInOrganization', { sentToScope: 'notInOrganization' }, { recipients: ['u@partner.test'] }, { recipients: ['u@contoso.com'] }],
    ['messageSizeOver', { messageSizeOver: '10KB' }, { size: 10 * 1024 + 1 }, { size: 10 * 1024 }],
  ];
  for (const [what, conditions, yes, no] of cases) {
    it(`${what}: matches, and does not`, () => {
      expect(fired([route({ conditions })], yes).fired.map((f) => f.rule)).toEqual(['R']);
      expect(fired([route({ conditions })], no).fired).toEqual([]);
    });
    it(`${what} as an exception skips the rule`, () => {
      expect(fired([route({ exceptions: conditions })], yes).fired).toEqual([]);
      expect(fired([route({ exceptions: conditions })], no).fired.map((f) => f.rule)).toEqual(['R']);
    });
  }
  it('the null sender matches senderDomains "*" only', () => {
    expect(fired([route({ conditions: { senderDomains: ['*'] } })], { sender: '' }).fired).toHaveLength(1);
    expect(fired([route({ conditions: { senderDomains: ['*.test'] } })], { sender: '' }).fired).toHaveLength(0);
  });
});

describe('combinations and actions', () => {
  it('conditions must all hold; each list is "any of"', () => {
    const r = route({ conditions: { fromConnector: ['OnPrem', 'Partner'], senderDomains: ['contoso.com'], recipientDomains: ['partner.test', 'other.test'] } });
    expect(fired([r], { recipients: ['x@other.test'] }).fired).toHaveLength(1);
    expect(fired([r], { sender: 'x@else.test', recipients: ['x@other.test'] }).fired).toHaveLength(0);
  });
  it('recipient predicates split the message: the route applies to the matching recipients only', () => {
    const d = fired([route({ conditions: { recipientAddresses: ['b@partner.test'] } })], { recipients: ['a@partner.test', 'b@partner.test', 'c@contoso.com'] });
    expect([...d.routes]).toEqual([['b@partner.test', { rule: 'R', connector: 'Archive relay' }]]);
    expect(d.fired[0]!.recipients).toEqual(['b@partner.test']);
  });
  it('a recipient exception removes that recipient only', () => {
    const d = fired([route({ exceptions: { recipientDomains: ['contoso.com'] } })], { recipients: ['a@partner.test', 'c@contoso.com'] });
    expect([...d.routes.keys()]).toEqual(['a@partner.test']);
  });
  it('priority order; the first rule to route a recipient wins; stopRuleProcessing stops', () => {
    const rules = [
      { name: 'late', priority: 5, actions: { routeMessageOutboundConnector: 'Legal relay' } },
      { name: 'early', priority: 1, actions: { routeMessageOutboundConnector: 'Archive relay', setHeaders: { 'X-Routed-By': 'early' } } },
      { name: 'stopper', priority: 7, actions: { stopRuleProcessing: true } },
      { name: 'never reached', priority: 9, actions: { removeHeaders: ['X-Internal'] } },
    ];
    const d = fired(rules);
    expect(d.fired.map((f) => f.rule)).toEqual(['early', 'late', 'stopper']);
    expect(d.routes.get('a@partner.test')).toEqual({ rule: 'early', connector: 'Archive relay' });
    expect(d.setHeaders).toEqual([['X-Routed-By', 'early']]);
    expect(d.removeHeaders).toEqual([]);
  });
  it('reject refuses the whole message and ends evaluation; in audit mode it is only reported', () => {
    const reject = { name: 'block', actions: { reject: { code: 550, enhanced: '5.7.1', text: 'Delivery not authorized' } } };
    const d = fired([reject, route()]);
    expect(d.reject).toEqual({ rule: 'block', reply: { code: 550, enhanced: '5.7.1', text: 'Delivery not authorized' } });
    expect(d.fired.map((f) => f.rule)).toEqual(['block']);
    const a = fired([{ ...reject, mode: 'audit' }, route()]);
    expect(a.reject).toBeNull();
    expect(a.fired.map((f) => [f.rule, f.mode])).toEqual([['block', 'audit'], ['R', 'enforce']]);
    expect(a.routes.size).toBe(1);
  });
  it('a disabled rule does nothing', () => {
    expect(fired([route({ enabled: false })]).fired).toEqual([]);
  });
  it('a 1 MB header against the allowed patterns is answered in bounded time', () => {
    const big = 'a'.repeat(1024 * 1024) + '!';
    const r = route({ conditions: { headerMatches: [{ name: 'Subject', pattern: '^(a|b)+c' }, { name: 'Subject', pattern: '\\\\s*x$' }] } });
    const t = process.hrtime.bigint();
    const d = fired([r], { headers: [{ name: 'Subject', value: big }] });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    expect(d.fired).toEqual([]);
    expect(ms).toBeLessThan(1000);
  });
});

describe('the header firewall and header blocks', () => {
  it('names the Exchange organization headers', () => {
    for (const n of ['X-MS-Exchange-Organization-SCL', 'x-ms-exchange-crosspremises-authas', 'X-MS-Exchange-Forest-RulesExecuted']) expect(isExchangeTrustedHeader(n), n).toBe(true);
    for (const n of ['X-MS-Exchange-Transport-CrossTenantHeadersStamped', 'X-MS-Has-Attach', 'Subject']) expect(isExchangeTrustedHeader(n), n).toBe(false);
  });
  const block = 'Subject: hi\r\nX-MS-Exchange-Organization-SCL: -1\r\n\tfolded\r\nX-Internal: 1\r\nFrom: a@b\r\n';
  it('filters folded fields whole, and counts them', () => {
    expect(filterHeaderBlock(block, isExchangeTrustedHeader)).toEqual({ block: 'Subject: hi\r\nX-Internal: 1\r\nFrom: a@b\r\n', removed: 1 });
  });
  it('parses unfolded values; edits remove then set', () => {
    expect(parseHeaderBlock(block)[1]).toEqual({ name: 'X-MS-Exchange-Organization-SCL', value: '-1\tfolded' });
    expect(editHeaderBlock(block, ['x-internal'], [['Subject', 'new'], ['X-Routed-By', 'gw']])).toBe('X-MS-Exchange-Organization-SCL: -1\r\n\tfolded\r\nFrom: a@b\r\nSubject: new\r\nX-Routed-By: gw\r\n');
  });
});

describe('check: rules', () => {
  const check = (rules: unknown[], extra: Record<string, unknown> = {}) =>
    formatDiagnostics(loadPolicyText(stringify({ gateway: baseGateway, ...connectors, ...extra, transportRules: rules }), 'p.yaml', { checkFiles: false }));
  it('a clean rule set has nothing to say', () => {
    expect(check([route(), { name: 'L', actions: { routeMessageOutboundConnector: 'Legal relay' } }])).toEqual([]);
  });
  it('unknown connectors, bad replies, bad header names: errors with their position', () => {
    const out = check([
      { name: 'A', conditions: { fromConnector: ['Nobody'] }, actions: { routeMessageOutboundConnector: 'Nowhere' } },
      { name: 'B', actions: { reject: { code: 550, enhanced: '4.7.1', text: 'x' }, setHeaders: { 'X-Gateway-Connector': 'forged', 'Bad Name': 'x' } } },
    ]);
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:\d+:\d+: error: transportRules\[0\]\.conditions\.fromConnector\[0\]: no inbound connector is named "Nobody"/));
    expect(out).toContainEqual(expect.stringMatching(/error: transportRules\[0\]\.actions\.routeMessageOutboundConnector: no outbound connector is named "Nowhere"/));
    expect(out).toContainEqual(expect.stringMatching(/error: transportRules\[1\]\.actions\.reject\.enhanced: enhanced code 4\.7\.1 does not agree with reply code 550/));
    expect(out).toContainEqual(expect.stringMatching(/error: .*X-Gateway-\* headers are the gateway's own/));
    expect(out).toContainEqual(expect.stringMatching(/error: .*"Bad Name" is not a header field name/));
  });
  it('invalid patterns, backreferences and lookaround are refused (RE2 syntax); nested repetition is safe with RE2', () => {
    const out = check([route({ conditions: { headerMatches: [{ name: 'Subject', pattern: '(unclosed' }, { name: 'Subject', pattern: '(a)\\1' }, { name: 'Subject', pattern: '(?=x)y' }, { name: 'Subject', pattern: '^(a+)+$' }] } })]);
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:\d+:\d+: error: transportRules\[0\]\.conditions\.headerMatches\[0\]\.pattern: not a valid RE2 regular expression/));
    expect(out).toContainEqual(expect.stringMatching(/error: transportRules\[0\]\.conditions\.headerMatches\[1\]\.pattern: not a valid RE2 regular expression: .*\\1.*no backreferences/));
    expect(out).toContainEqual(expect.stringMatching(/error: transportRules\[0\]\.conditions\.headerMatches\[2\]\.pattern: not a valid RE2 regular expression: .*\(\?=/));
    expect(out.filter((l) => l.includes('headerMatches[3]'))).toEqual([]); // linear in RE2: allowed
  });
  it("the attacker's patterns match a 64 KB header in linear time: each is accepted and answers", () => {
    // Each took over 20 s with backtracking on one 64 KB header (issue 20, item 9).
    const long = 'a'.repeat(64 * 1024);
    for (const pattern of ['(a|a)*$', '(a|aa)+$', '.*.*.*=', '\\s*\\s*\\s*x', '\\s+$']) {
      const hit = fired([route({ conditions: { headerMatches: [{ name: 'Subject', pattern }] } })], { headers: [{ name: 'Subject', value: pattern.includes('s') ? `${' '.repeat(64 * 1024 - 1)}y` : long }] });
      expect(hit.fired.length, pattern).toBe(/[$]$/.test(pattern) && !pattern.includes('s') ? 1 : 0);
    }
  });
  it('one pattern examines at most 256 KB of a message: 80 fields of 64 KB are not 80 scans', () => {
    const filler = { name: 'X-Note', value: 'n'.repeat(64 * 1024) };
    const rule = [route({ conditions: { headerMatches: [{ name: 'X-Note', pattern: 'secret' }] } })];
    const early = [filler, { name: 'X-Note', value: 'top secret' }, ...Array(78).fill(filler)];
    const late = [...Array(79).fill(filler), { name: 'X-Note', value: 'top secret' }];
    expect(fired(rule, { headers: early }).fired).toHaveLength(1);
    expect(fired(rule, { headers: late }).fired).toHaveLength(0); // past the budget: not examined
  });
  it('warnings: rules that can never match, a scoped connector no rule uses, duplicate names are errors', () => {
    const out = check([
      route({ conditions: { recipientDomains: [] } }),
      route({ name: 'S', conditions: { sentToScope: 'inOrganization', recipientDomains: ['partner.test'] } }),
      route({ name: 'S' }),
    ]);
    expect(out).toContainEqual(expect.stringMatching(/warning: transportRules\[0\]\.conditions: the rule can never match: recipientDomains is an empty list/));
    expect(out).toContainEqual(expect.stringMatching(/warning: transportRules\[1\]\.conditions: the rule can never match: sentToScope is inOrganization/));
    expect(out).toContainEqual(expect.stringMatching(/error: transportRules\[2\]\.name: rule name "S" is used twice/));
    expect(out).toContainEqual(expect.stringMatching(/warning: outboundConnectors\[2\]\.isTransportRuleScoped: no enabled rule routes to "Legal relay"/));
  });
});
