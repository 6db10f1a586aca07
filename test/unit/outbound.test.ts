import { describe, expect, it } from 'vitest';
import { routeDomain } from '../../src/policy/outbound.js';
import { policyOf } from './policy-helpers.js';

describe('outbound selection (SPEC §4, seed 004 example)', () => {
  const p = policyOf({
    acceptedDomains: [{ domain: 'contoso.com' }, { domain: 'fabrikam.com' }, { domain: '*.contoso.com' }],
    outboundConnectors: [
      { name: 'All accepted', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['hub.contoso.local'] },
      { name: 'Contoso', connectorType: 'onPremises', recipientDomains: ['contoso.com'], smartHosts: ['exch1.contoso.local'] },
      { name: 'Contoso subdomains', connectorType: 'onPremises', recipientDomains: ['*.contoso.com'], smartHosts: ['exch2.contoso.local'] },
      { name: 'Sales', connectorType: 'onPremises', recipientDomains: ['*.sales.contoso.com'], smartHosts: ['sales.contoso.local'] },
      { name: 'Everything else', connectorType: 'partner', recipientDomains: ['*'], smartHosts: ['[192.0.2.1]:2525'] },
    ],
  });
  const name = (d: string) => {
    const r = routeDomain(p, d);
    return r.kind === 'connector' ? r.connector.name : 'mx';
  };
  it('exact > longest wildcard > allAcceptedDomains > *', () => {
    expect(name('fabrikam.com')).toBe('All accepted');
    expect(name('contoso.com')).toBe('Contoso');
    expect(name('sales.contoso.com')).toBe('Contoso subdomains');
    expect(name('eu.sales.contoso.com')).toBe('Sales');
    expect(name('gmail.com')).toBe('Everything else');
  });
  it('without a matching connector: MX', () => {
    const q = policyOf({ outboundConnectors: [{ name: 'C', connectorType: 'partner', recipientDomains: ['x.com'], smartHosts: ['h.x.com'] }] });
    expect(routeDomain(q, 'y.com')).toEqual({ kind: 'mx', domain: 'y.com' });
  });
  it('parses smart hosts: host, host:port, [ip]:port', () => {
    const c = policyOf({
      outboundConnectors: [{ name: 'C', connectorType: 'partner', recipientDomains: ['x.com'], smartHosts: ['exch1.contoso.local', 'relay.x.com:2525', '[10.0.0.5]:2526', '[2001:db8::5]'] }],
    }).outboundConnectors[0]!;
    expect(c.smartHosts.map((h) => [h.host, h.port, h.literal])).toEqual([
      ['exch1.contoso.local', 25, false],
      ['relay.x.com', 2525, false],
      ['10.0.0.5', 2526, true],
      ['2001:db8::5', 25, true],
    ]);
  });
});
