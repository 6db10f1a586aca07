// Who may send as the organization (policy/organization.ts, SPEC §11): Reject Direct Send and the
// relay of on-premises connectors.
import { describe, expect, it } from 'vitest';
import { evaluateSender, type SenderFacts } from '../../src/policy/inbound.js';
import { applyOrganizationRules, inOurDomains } from '../../src/policy/organization.js';
import { loadPolicyText } from '../../src/config/load.js';
import { stringify } from 'yaml';
import { baseGateway } from './policy-helpers.js';

const policy = (rejectDirectSend: boolean) =>
  loadPolicyText(
    stringify({
      gateway: { ...baseGateway, rejectDirectSend },
      acceptedDomains: [{ domain: 'contoso.com' }, { domain: '*.fabrikam.net' }],
      inboundConnectors: [
        { name: 'OnPrem IP', connectorType: 'onPremises', senderIPAddresses: ['10.0.0.0/24'] },
        { name: 'App servers', connectorType: 'onPremises', senderIPAddresses: ['10.0.1.0/24'], relayAnySenderDomain: true },
        { name: 'OnPrem cert', connectorType: 'onPremises', tlsSenderCertificateName: 'exchange.contoso.com' },
        { name: 'Partner', connectorType: 'partner', senderDomains: ['partner.test'] },
      ],
    }),
    'p.yaml',
    { checkFiles: false },
  ).policy!;
const decide = (p: ReturnType<typeof policy>, f: Partial<SenderFacts>) => {
  const facts: SenderFacts = { ip: '192.0.2.1', tls: true, certNames: [], sender: 'a@example.org', ...f };
  return applyOrganizationRules(p, facts, evaluateSender(p.inboundConnectors, facts));
};

describe('Reject Direct Send', () => {
  it.each([
    ['ceo@contoso.com from the internet', { sender: 'ceo@contoso.com' }, '550 5.7.68'],
    ['ceo@CONTOSO.com, any case', { sender: 'ceo@CONTOSO.com' }, '550 5.7.68'],
    ['x@eu.fabrikam.net (a wildcard accepted domain)', { sender: 'x@eu.fabrikam.net' }, '550 5.7.68'],
    ['a stranger\'s domain', { sender: 'a@example.org' }, 'accept'],
    ['the null sender', { sender: '' }, 'accept'],
    ['ceo@contoso.com from on-premises', { sender: 'ceo@contoso.com', ip: '10.0.0.5' }, 'accept'],
    ['a partner connector claims the session', { sender: 'p@partner.test' }, 'accept'],
  ] as const)('%s → %s', (_what, f, want) => {
    const d = decide(policy(true), f);
    expect(d.refusal ? `${d.refusal.reply.code} ${d.refusal.reply.enhanced}` : 'accept').toBe(want);
  });
  it('off by default (Exchange Online\'s default): our domain from the internet is attributed to nothing and accepted at MAIL FROM', () => {
    expect(decide(policy(false), { sender: 'ceo@contoso.com' }).refusal).toBeNull();
  });
});

describe('the relay of on-premises connectors', () => {
  it.each([
    ['by IP, our sender', { ip: '10.0.0.5', sender: 'app@contoso.com' }, true],
    ['by IP, a foreign sender', { ip: '10.0.0.5', sender: 'spam@random.example' }, false],
    ['by IP, the null sender (its own delivery reports)', { ip: '10.0.0.5', sender: '' }, true],
    ['by IP with relayAnySenderDomain', { ip: '10.0.1.5', sender: 'noreply@saas.example' }, true],
    ['by certificate in our domains, a foreign sender', { certNames: ['exchange.contoso.com'], sender: 'x@random.example' }, true],
  ] as const)('%s: may relay %s', (_what, f, relay) => {
    const d = decide(policy(true), f);
    expect(d.refusal).toBeNull();
    expect(d.attribution.mayRelay).toBe(relay);
  });
  it('namespaces: a name below an accepted domain is ours', () => {
    const p = policy(true);
    expect(inOurDomains('exchange.contoso.com', p.acceptedDomains)).toBe(true);
    expect(inOurDomains('contoso.com.', p.acceptedDomains)).toBe(true);
    expect(inOurDomains('notcontoso.com', p.acceptedDomains)).toBe(false);
  });
});
