// connector-gateway import --exchange: fixtures in the cmdlets' real field names (ConvertTo-Json
// of Get-InboundConnector, Get-OutboundConnector, Get-AcceptedDomain, Get-SendConnector,
// Get-ReceiveConnector; single objects and arrays; enums as names and numbers; UTF-16 with BOM)
// → a policy that passes `check`, with every unmapped parameter listed.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT, runCli, tmpDir } from '../helpers/gateway.js';
import { addressSpaceDomain, certificateName, importExchange, kindOf } from '../../src/config/exchange-import.js';

const fixture = (f: string) => path.join(ROOT, 'test/fixtures/exchange', f);
const FILES = ['inbound.json', 'outbound.json', 'outbound-onprem.json', 'accepted-utf16.json', 'send-receive.json'];

describe('import --exchange', () => {
  it('writes a policy that passes check, with the unmapped parameters as comments', async () => {
    const dir = tmpDir('import');
    const r = await runCli(['import', ...FILES.flatMap((f) => ['--exchange', fixture(f)])], dir);
    expect(r.code, r.stderr).toBe(0);
    fs.writeFileSync(path.join(dir, 'imported.yaml'), r.stdout);
    expect((await runCli(['dev-certs', '--dir', 'certs'], dir)).code).toBe(0);
    const c = await runCli(['check', '--config', 'imported.yaml'], dir);
    expect(c.code, c.stdout).toBe(0);
    expect(c.stdout).toContain('0 error(s)');
    // What could not be mapped is said, at its entry.
    expect(r.stdout).toContain('# not mapped: EFSkipIPs = ["198.51.100.99"]');
    expect(r.stdout).toContain('# not mapped: TrustedOrganizations = ["fabrikam.com"]');
    expect(r.stdout).toContain('# not mapped: SenderRewritingEnabled = true');
    expect(r.stdout).toMatch(/# skipped: receive connector "Default Frontend EXCH1": accepts every address/);
    expect(r.stdout).toMatch(/# skipped: inbound connector "Hybrid without identity"/);
    const p = parse(r.stdout);
    expect(p.acceptedDomains).toEqual([
      { domain: 'contoso.com', domainType: 'authoritative' },
      { domain: 'sales.contoso.com', domainType: 'internalRelay' },
      { domain: '*.sales.contoso.com', domainType: 'internalRelay' },
    ]);
    const inbound = Object.fromEntries(p.inboundConnectors.map((x: { name: string }) => [x.name, x]));
    expect(inbound['ContosoBank TLS']).toMatchObject({ connectorType: 'partner', senderDomains: ['contosobank.com'], requireTls: true });
    expect(inbound['Woodgrove Bank (by IP)']).toMatchObject({ senderIPAddresses: ['203.0.113.0/24', '198.51.100.7'], restrictDomainsToIPAddresses: true });
    expect(inbound['Woodgrove Bank (by certificate)']).toMatchObject({ tlsSenderCertificateName: '*.woodgrovebank.com', restrictDomainsToCertificate: true });
    expect(inbound['From on-premises Exchange']).toMatchObject({ connectorType: 'onPremises', senderIPAddresses: ['10.0.0.0/24'], cloudServicesMailEnabled: true });
    expect(inbound['Application relay']).toMatchObject({ connectorType: 'onPremises', senderIPAddresses: ['10.0.1.10-10.0.1.20', '10.0.2.5'] });
    const outbound = Object.fromEntries(p.outboundConnectors.map((x: { name: string }) => [x.name, x]));
    expect(outbound['To Fabrikam']).toMatchObject({ useMXRecord: true, recipientDomains: ['fabrikam.com'], tlsSettings: 'domainValidation', tlsDomain: '*.fabrikam.com' });
    expect(outbound['To on-premises Exchange']).toMatchObject({ connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: ['exch1.contoso.local', '[10.0.0.5]'], tlsSettings: 'domainValidation' });
    expect(outbound['Archive relay']).toMatchObject({ isTransportRuleScoped: true, tlsSettings: 'certificateValidation' });
    expect(outbound['To the internet']).toMatchObject({ recipientDomains: ['*'], useMXRecord: true });
  });
  it('refuses what is not JSON, and says which file', async () => {
    const dir = tmpDir('import2');
    fs.writeFileSync(path.join(dir, 'bad.json'), 'Name : To Fabrikam\n');
    const r = await runCli(['import', '--exchange', 'bad.json'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.json: not JSON/);
    expect((await runCli(['import'], dir)).code).toBe(2);
  });
  it('the forms Exchange prints', () => {
    expect(addressSpaceDomain('smtp:*;1')).toBe('*');
    expect(addressSpaceDomain('SMTP:contoso.com;10')).toBe('contoso.com');
    expect(addressSpaceDomain('fabrikam.com')).toBe('fabrikam.com');
    expect(certificateName('<I>CN=Issuing CA, O=X<S>CN=mail.fabrikam.com, O=Fabrikam')).toBe('mail.fabrikam.com');
    expect(certificateName('*.fabrikam.com')).toBe('*.fabrikam.com');
    expect(kindOf({ Name: 'x', Foo: 1 })).toBeNull();
    const r = importExchange([{ Name: 'odd', Foo: 1 }]);
    expect(r.skipped).toHaveLength(1);
  });
  it("Exchange Server's SmartHost objects (an IPAddress object, a domain object) and SmartHostsString — never [object Object] (issue 21)", () => {
    const send = (extra: Record<string, unknown>) =>
      importExchange([{ Name: 'To the internet', AddressSpaces: ['SMTP:*;1'], DNSRoutingEnabled: false, ...extra }]).policy.outboundConnectors[0] as { smartHosts: string[] };
    const objects = send({
      SmartHosts: [
        { Domain: null, Address: { AddressFamily: 2, IPAddressToString: '10.0.0.5' }, IsIPAddress: true },
        { Domain: { HostnameString: 'relay.contoso.com', Domain: 'relay.contoso.com' }, Address: null, IsIPAddress: false },
      ],
    });
    expect(objects.smartHosts).toEqual(['[10.0.0.5]', 'relay.contoso.com']);
    expect(send({ SmartHosts: [{ IsIPAddress: false }], SmartHostsString: '[10.0.0.6],relay2.contoso.com' }).smartHosts).toEqual(['[10.0.0.6]', 'relay2.contoso.com']);
    expect(JSON.stringify(objects)).not.toContain('[object Object]');
  });
});
