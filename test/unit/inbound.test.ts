import { describe, expect, it } from 'vitest';
import { evaluateRecipient, evaluateSender, type SenderFacts } from '../../src/policy/inbound.js';
import { formatReply } from '../../src/policy/replies.js';
import { policyOf } from './policy-helpers.js';

const policy = policyOf({
  acceptedDomains: [
    { domain: 'contoso.com' },
    { domain: '*.contoso.com', domainType: 'internalRelay' },
  ],
  inboundConnectors: [
    { name: 'ContosoBank TLS', connectorType: 'partner', senderDomains: ['contosobank.com'], requireTls: true },
    {
      name: 'Fabrikam cert',
      connectorType: 'partner',
      senderDomains: ['fabrikam.com'],
      requireTls: true,
      restrictDomainsToCertificate: true,
      tlsSenderCertificateName: '*.fabrikam.com',
    },
    { name: 'Woodgrove IP', connectorType: 'partner', senderDomains: ['woodgrovebank.com'], senderIPAddresses: ['198.51.100.0/24', '192.0.2.10-192.0.2.20'], restrictDomainsToIPAddresses: true },
    { name: 'Woodgrove IP narrow', connectorType: 'partner', senderDomains: ['woodgrovebank.com'], senderIPAddresses: ['198.51.100.7'] },
    { name: 'Tailspin by IP', connectorType: 'partner', senderIPAddresses: ['203.0.113.0/24'], requireTls: true },
    { name: 'Audited', connectorType: 'partner', senderDomains: ['audited.example'], senderIPAddresses: ['192.0.2.200'], restrictDomainsToIPAddresses: true, mode: 'audit' },
    { name: 'OnPrem IP', connectorType: 'onPremises', senderIPAddresses: ['10.0.0.0/24'] },
    { name: 'OnPrem cert', connectorType: 'onPremises', tlsSenderCertificateName: 'exchange.contoso.com' },
  ],
  outboundConnectors: [
    { name: 'To on-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[10.0.0.5]:25'] },
  ],
});

const facts = (f: Partial<SenderFacts>): SenderFacts => ({ ip: '192.0.2.99', tls: true, certNames: [], sender: 'someone@example.org', ...f });
const send = (f: Partial<SenderFacts>) => evaluateSender(policy.inboundConnectors, facts(f));
const reply = (f: Partial<SenderFacts>) => {
  const d = send(f);
  return d.refusal ? formatReply(d.refusal.reply) : 'accept';
};

describe('seed example 1: requireTls by sender domain', () => {
  it('plaintext is refused 530 5.7.0, TLS is accepted', () => {
    expect(reply({ sender: 'a@contosobank.com', tls: false })).toBe('530 5.7.0 Must issue a STARTTLS command first');
    expect(reply({ sender: 'a@ContosoBank.COM', tls: true })).toBe('accept');
    expect(send({ sender: 'a@contosobank.com' }).attribution.connector!.name).toBe('ContosoBank TLS');
  });
});

describe('seed example 2: certificate claim', () => {
  it('TLS comes first, then the certificate', () => {
    expect(reply({ sender: 'a@fabrikam.com', tls: false })).toMatch(/^530 5\.7\.0/);
    expect(reply({ sender: 'a@fabrikam.com', certNames: [] })).toBe('550 5.7.51 TenantInboundAttribution; certificate required by connector Fabrikam cert');
    expect(reply({ sender: 'a@fabrikam.com', certNames: ['mail.evil.example'] })).toMatch(/^550 5\.7\.51 .*certificate required/);
  });
  it('a verified certificate with a matching name (or cert wildcard) is accepted and attributed by certificate', () => {
    const d = send({ sender: 'a@fabrikam.com', certNames: ['mail.fabrikam.com'] });
    expect(d.refusal).toBeNull();
    expect(d.attribution).toMatchObject({ identifiedBy: 'certificate', mayRelay: false });
    expect(reply({ sender: 'a@fabrikam.com', certNames: ['*.fabrikam.com'] })).toBe('accept');
  });
  it('mail from other domains with the fabrikam certificate is not claimed', () => {
    expect(reply({ sender: 'a@example.org', certNames: [] })).toBe('accept');
  });
});

describe('seed example 3: IP restriction', () => {
  it('outside the ranges is refused 5.7.51; inside (CIDR or dash range) is accepted', () => {
    expect(reply({ sender: 'a@woodgrovebank.com', ip: '203.0.113.9' })).toBe('550 5.7.51 TenantInboundAttribution; sender IP not allowed by connector Woodgrove IP');
    expect(reply({ sender: 'a@woodgrovebank.com', ip: '198.51.100.200' })).toBe('accept');
    expect(reply({ sender: 'a@woodgrovebank.com', ip: '192.0.2.15', tls: false })).toBe('accept');
  });
  it('the smallest matching range chooses the connector', () => {
    expect(send({ sender: 'a@woodgrovebank.com', ip: '198.51.100.7' }).attribution.connector!.name).toBe('Woodgrove IP narrow');
    expect(send({ sender: 'a@woodgrovebank.com', ip: '198.51.100.8' }).attribution.connector!.name).toBe('Woodgrove IP');
  });
  it('other sender domains from outside are unaffected', () => {
    expect(reply({ sender: 'a@example.org', ip: '203.0.113.250', tls: true })).toBe('accept');
  });
});

describe('seed example 4: every sender must come from the filtering service', () => {
  const p4 = policyOf({
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [{ name: 'Filter only', connectorType: 'partner', senderIPAddresses: ['203.0.113.0/24'], restrictDomainsToIPAddresses: true }],
  });
  it('refuses any sender outside the range, including the null sender; accepts from inside', () => {
    for (const sender of ['a@example.org', 'b@contoso.com', '']) {
      const d = evaluateSender(p4.inboundConnectors, facts({ sender, ip: '192.0.2.1' }));
      expect(d.refusal?.reply.enhanced, sender).toBe('5.7.51');
    }
    expect(evaluateSender(p4.inboundConnectors, facts({ ip: '203.0.113.1' })).refusal).toBeNull();
  });
});

describe('seed example 5: partner by IP with requireTls', () => {
  it('plaintext from the range is refused; TLS accepted; plaintext elsewhere accepted', () => {
    expect(reply({ ip: '203.0.113.5', tls: false })).toMatch(/^530 5\.7\.0/);
    expect(reply({ ip: '203.0.113.5', tls: true })).toBe('accept');
    expect(reply({ ip: '192.0.2.99', tls: false })).toBe('accept');
  });
});

describe('rule 1: on-premises connectors', () => {
  it('win by IP or certificate, may relay, and are exempt from partner claims', () => {
    const byIp = send({ ip: '10.0.0.7', sender: 'a@woodgrovebank.com', tls: false });
    expect(byIp.refusal).toBeNull();
    expect(byIp.attribution).toMatchObject({ mayRelay: true, identifiedBy: 'ip' });
    const byCert = send({ ip: '198.18.0.1', certNames: ['exchange.contoso.com'], sender: 'x@contoso.com' });
    expect(byCert.attribution).toMatchObject({ mayRelay: true, identifiedBy: 'certificate' });
    expect(byCert.attribution.connector!.name).toBe('OnPrem cert');
  });
  it('an unverified certificate name identifies nothing', () => {
    expect(send({ ip: '198.18.0.1', certNames: [] }).attribution.mayRelay).toBe(false);
  });
});

describe('audit mode', () => {
  it('records the refusal it would have made and refuses nothing', () => {
    const d = send({ sender: 'a@audited.example', ip: '192.0.2.1' });
    expect(d.refusal).toBeNull();
    expect(d.audits.map((a) => a.reply.enhanced)).toEqual(['5.7.51']);
  });
});

describe('recipients: open relay and routing', () => {
  const unattributed = send({ ip: '192.0.2.99' }).attribution;
  const onprem = send({ ip: '10.0.0.9' }).attribution;
  const rcpt = (a: typeof unattributed, to: string) => {
    const d = evaluateRecipient(policy, a, to);
    return d.refusal ? formatReply(d.refusal.reply) : 'accept';
  };
  it('only accepted domains from the internet; relay denied with 5.7.64', () => {
    expect(rcpt(unattributed, 'user@contoso.com')).toBe('accept');
    expect(rcpt(unattributed, 'user@Sales.Contoso.com.')).toBe('accept');
    expect(rcpt(unattributed, 'user@gmail.com')).toBe('550 5.7.64 TenantAttribution; Relay Access Denied');
    expect(rcpt(unattributed, 'user@contoso.com.evil.example')).toMatch(/^550 5\.7\.64/);
  });
  it('refuses sender-specified routing and IP literals from untrusted clients', () => {
    for (const to of ['user%gmail.com@contoso.com', 'gmail.com!user@contoso.com', '"user@gmail.com"@contoso.com', 'user@[192.0.2.1]', 'user@[127.0.0.1]']) {
      expect(rcpt(unattributed, to), to).toMatch(/^550 5\.7\.64/);
    }
  });
  it('on-premises may relay anywhere', () => {
    expect(rcpt(onprem, 'user@gmail.com')).toBe('accept');
    expect(evaluateRecipient(policy, onprem, 'user@gmail.com').route).toEqual({ kind: 'mx', domain: 'gmail.com' });
  });
  it('an accepted domain without an outbound connector has no route (451 4.4.0)', () => {
    const p = policyOf({ acceptedDomains: [{ domain: 'contoso.com' }] });
    const d = evaluateRecipient(p, unattributed, 'user@contoso.com');
    expect(formatReply(d.refusal!.reply)).toBe('451 4.4.0 No route to contoso.com');
  });
  it('a recipient without a domain is a syntax error, not a relay', () => {
    expect(rcpt(unattributed, 'postmaster')).toMatch(/^501 5\.1\.3/);
  });
});

describe('recipientVerification: callout', () => {
  const p = policyOf({
    acceptedDomains: [
      { domain: 'contoso.com', recipientVerification: 'callout' },
      { domain: 'fabrikam.com' },
      { domain: 'relay.contoso.net', domainType: 'internalRelay', recipientVerification: 'callout' },
    ],
    inboundConnectors: [{ name: 'OnPrem IP', connectorType: 'onPremises', senderIPAddresses: ['10.0.0.0/24'] }],
    outboundConnectors: [{ name: 'To on-prem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['[10.0.0.5]:25'] }],
  });
  const internet = evaluateSender(p.inboundConnectors, facts({ ip: '192.0.2.99' })).attribution;
  const onprem = evaluateSender(p.inboundConnectors, facts({ ip: '10.0.0.9' })).attribution;
  const verifyWith = (a: typeof internet, to: string) => evaluateRecipient(p, a, to).verifyWith?.name ?? null;
  it('recipients of an authoritative callout domain are verified with the connector that routes them', () => {
    expect(verifyWith(internet, 'alice@contoso.com')).toBe('To on-prem');
    expect(verifyWith(internet, 'Alice@CONTOSO.com.')).toBe('To on-prem');
  });
  it('not without callout, not for internalRelay domains, not for on-premises sessions, not for refused recipients', () => {
    expect(verifyWith(internet, 'alice@fabrikam.com')).toBeNull();
    expect(verifyWith(internet, 'alice@relay.contoso.net')).toBeNull();
    expect(verifyWith(onprem, 'alice@contoso.com')).toBeNull();
    expect(verifyWith(internet, 'alice@gmail.com')).toBeNull();
  });
});

describe('per-connector trust anchors (issue 20, item 3)', async () => {
  const { evaluateSender } = await import('../../src/policy/inbound.js');
  const { PUBLIC_ROOTS } = await import('../../src/policy/types.js');
  const { policyOf } = await import('./policy-helpers.js');
  const p = policyOf({
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [
      { name: 'OnPrem by its CA', connectorType: 'onPremises', tlsSenderCertificateName: 'exchange.contoso.com', tlsCertificateAuthorities: '/ca/onprem.pem' },
      { name: 'OnPrem public', connectorType: 'onPremises', tlsSenderCertificateName: 'relay.contoso.com' },
      { name: 'Fabrikam', connectorType: 'partner', senderDomains: ['fabrikam.com'], restrictDomainsToCertificate: true, tlsSenderCertificateName: 'mail.fabrikam.com' },
    ],
  });
  const who = (certNames: string[], certAnchors: string[], sender = 'app@contoso.com') => evaluateSender(p.inboundConnectors, { ip: '192.0.2.1', tls: true, certNames, certAnchors, sender });
  it.each([
    [['exchange.contoso.com'], ['/ca/onprem.pem'], 'OnPrem by its CA'],
    [['exchange.contoso.com'], ['/ca/partner.pem'], null], // a partner's CA minted our name
    [['exchange.contoso.com'], [PUBLIC_ROOTS], null], // even a public CA: this connector named its own
    [['relay.contoso.com'], [PUBLIC_ROOTS], 'OnPrem public'],
    [['relay.contoso.com'], ['/ca/partner.pem'], null], // our name without a CA of its own: public roots only
  ] as const)('%j under %j → %s', (names, anchors, connector) => {
    expect(who([...names], [...anchors]).attribution.connector?.name ?? null).toBe(connector);
  });
  it("a partner's name: its CA in the gateway-wide list vouches for it (its claim is met)", () => {
    const d = who(['mail.fabrikam.com'], ['/ca/partner.pem'], 'x@fabrikam.com');
    expect(d.attribution.connector?.name).toBe('Fabrikam');
    expect(d.refusal).toBeNull();
  });
});
