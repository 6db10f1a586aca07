import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadPolicyText, formatDiagnostics, loadPolicyFile } from '../../src/config/load.js';
import { issueCertificate } from '../../src/tls/issue.js';

const head = `gateway:
  hostname: mx1.contoso.com
  listeners:
    - name: mx
      port: 2525
  tls:
    certificate: gw.crt
    key: gw.key
`;

const lines = (text: string, opts = {}) => formatDiagnostics(loadPolicyText(text, 'p.yaml', { checkFiles: false, ...opts }));

describe('policy loading: errors name file, line and column', () => {
  it('unknown keys point at the key', () => {
    const out = lines(head + `inboundConnectors:\n  - name: A\n    connectorType: partner\n    requireTLS: true\n`);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^p\.yaml:12:5: error: inboundConnectors\[0\]\.requireTLS: unknown key "requireTLS"/);
  });
  it('wrong types and enum values', () => {
    const out = lines(head + `inboundConnectors:\n  - name: A\n    connectorType: partners\n    requireTls: "yes"\n`);
    expect(out.some((l) => l.startsWith('p.yaml:11:20: error: inboundConnectors[0].connectorType'))).toBe(true);
    expect(out.some((l) => l.startsWith('p.yaml:12:17: error: inboundConnectors[0].requireTls'))).toBe(true);
  });
  it('bad CIDRs, ranges and wildcards point at the list item', () => {
    const out = lines(
      head + `inboundConnectors:\n  - name: A\n    connectorType: partner\n    senderIPAddresses: [10.0.0.0/8, 10.0.0.0/33, 10.0.0.9-10.0.0.1]\n    senderDomains: ["a.*.com"]\n`,
    );
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:12:37: error: .*senderIPAddresses\[1\]: "10\.0\.0\.0\/33": \/33 is not a prefix length for IPv4/));
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:12:50: error: .*senderIPAddresses\[2\]: .*ends before it starts/));
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:13:21: error: .*senderDomains\[0\]: .*not a valid pattern/));
  });
  it('YAML syntax errors carry a position', () => {
    const out = lines(head + `acceptedDomains:\n  - domain: [unclosed\n`);
    expect(out[0]).toMatch(/^p\.yaml:\d+:\d+: error: YAML:/);
  });
  it('an unclosed [ is one error at its place, not a cascade (issue 21)', () => {
    const out = lines(head + `acceptedDomains: [contoso.com\ninboundConnectors:\n  - name: A\n    connectorType: partner\n`);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^p\.yaml:10:1: error: YAML: .*end with a \]/);
  });
  it('missing required keys point at the parent', () => {
    const out = lines(`gateway:\n  hostname: x.com\n  listeners: []\n`);
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:2:3: error: gateway\.tls:/));
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:3:14: error: gateway\.listeners:/));
  });
  it('an accepted domain of "*" is refused (open relay)', () => {
    expect(lines(head + `acceptedDomains:\n  - domain: "*"\n`)[0]).toMatch(/^p\.yaml:10:13: error: .*open relay/);
  });
});

describe('cross-field checks (SPEC §2)', () => {
  const one = (yaml: string) => lines(head + yaml);
  it('restrict without list, IP+certificate mix, tlsDomain without domainValidation, no smart hosts', () => {
    const out = one(`inboundConnectors:
  - name: A
    connectorType: partner
    restrictDomainsToIPAddresses: true
  - name: B
    connectorType: partner
    restrictDomainsToCertificate: true
  - name: C
    connectorType: partner
    senderIPAddresses: [192.0.2.1]
    tlsSenderCertificateName: mail.c.com
outboundConnectors:
  - name: O
    connectorType: partner
    recipientDomains: [x.com]
    tlsDomain: x.com
`);
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:12:35: error: .*restrictDomainsToIPAddresses needs senderIPAddresses .*fix:/));
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:15:35: error: .*restrictDomainsToCertificate needs tlsSenderCertificateName/));
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:19:31: error: .*not both/));
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:24:16: error: .*tlsDomain only applies with tlsSettings: domainValidation/));
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:21:5: error: .*useMXRecord: false needs smartHosts/));
  });
  it('duplicate inbound scope and shadowed outbound connectors', () => {
    const out = one(`inboundConnectors:
  - name: A
    connectorType: partner
    senderDomains: [x.com]
  - name: B
    connectorType: partner
    senderDomains: [X.com]
outboundConnectors:
  - name: O1
    connectorType: partner
    recipientDomains: [x.com, y.com]
    smartHosts: [h1.x.com]
  - name: O2
    connectorType: partner
    recipientDomains: [y.com]
    smartHosts: [h2.x.com]
`);
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:13:5: error: inboundConnectors\[1\]: duplicate of connector "A"/));
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:23:24: error: .*already routed by connector "O1"/));
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:21:5: error: outboundConnectors\[1\]: this connector is shadowed/));
  });
  it('PROXY on an implicit-TLS listener is refused', () => {
    const out = lines(`gateway:\n  hostname: mx1.contoso.com\n  listeners:\n    - name: lb\n      port: 465\n      implicitTls: true\n      proxyProtocol: [10.0.0.0/8]\n  tls:\n    certificate: gw.crt\n    key: gw.key\n`);
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:7:22: error: gateway\.listeners\[0\]\.proxyProtocol: the PROXY protocol is supported on STARTTLS listeners only/));
  });
  it('warnings: audit mode, identifying-only certificate name', () => {
    const r = loadPolicyText(head + `inboundConnectors:\n  - name: A\n    connectorType: partner\n    mode: audit\n    tlsSenderCertificateName: a.com\n`, 'p.yaml', { checkFiles: false });
    expect(r.policy).not.toBeNull();
    expect(r.diagnostics.map((d) => d.severity)).toEqual(['warning', 'warning']);
  });
  it('warning: callout on an internalRelay domain does nothing', () => {
    const out = lines(head + `acceptedDomains:\n  - domain: contoso.com\n    domainType: internalRelay\n    recipientVerification: callout\n`);
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:\d+:\d+: warning: acceptedDomains\[0\]\.recipientVerification: callout has no effect on an internalRelay domain/));
  });
});

describe('certificate files', () => {
  const dir = fs.mkdtempSync(path.join(process.env.CG_TEST_TMP ?? os.tmpdir(), 'cg-cfg-'));
  const good = issueCertificate({ commonName: 'mx1.contoso.com' });
  const other = issueCertificate({ commonName: 'other' });
  const expired = issueCertificate({ commonName: 'old', notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
  fs.writeFileSync(path.join(dir, 'gw.crt'), good.certPem);
  fs.writeFileSync(path.join(dir, 'gw.key'), good.keyPem);
  fs.writeFileSync(path.join(dir, 'other.key'), other.keyPem);
  fs.writeFileSync(path.join(dir, 'old.crt'), expired.certPem);
  fs.writeFileSync(path.join(dir, 'old.key'), expired.keyPem);
  const withFiles = (crt: string, key: string) =>
    formatDiagnostics(loadPolicyText(head.replace('gw.crt', crt).replace('gw.key', key), 'p.yaml', { baseDir: dir }));
  it('accepts a matching, valid pair', () => {
    expect(withFiles('gw.crt', 'gw.key')).toEqual([]);
  });
  it('reports missing, expired and mismatched files at their keys', () => {
    expect(withFiles('missing.crt', 'gw.key')[0]).toMatch(/^p\.yaml:7:18: error: gateway\.tls\.certificate: certificate .*missing\.crt: no such file/);
    expect(withFiles('old.crt', 'old.key')[0]).toMatch(/^p\.yaml:7:18: error: .*expired on/);
    expect(withFiles('gw.crt', 'other.key')[0]).toMatch(/^p\.yaml:8:10: error: gateway\.tls\.key: key .* does not match certificate/);
  });
  it('an unreadable policy file is a clear error', () => {
    const r = loadPolicyFile(path.join(dir, 'nope.yaml'));
    expect(formatDiagnostics(r)[0]).toMatch(/nope\.yaml:1:1: error: cannot read the policy file \(ENOENT\)/);
  });
});

describe('the bundled policy', () => {
  it('has no errors and no warnings (files aside)', () => {
    const r = loadPolicyFile(path.resolve(import.meta.dirname, '../../config/gateway.yaml'), { checkFiles: false });
    expect(formatDiagnostics(r)).toEqual([]);
    expect(r.policy!.inboundConnectors.length).toBeGreaterThanOrEqual(7);
  });
  it('sends nothing off the machine: DNS to loopback only, every smart host on loopback, other domains to a local sink (issue 21)', async () => {
    const { routeDomain } = await import('../../src/policy/outbound.js');
    const p = loadPolicyFile(path.resolve(import.meta.dirname, '../../config/gateway.yaml'), { checkFiles: false }).policy!;
    expect(p.gateway.dns.servers.length).toBeGreaterThan(0);
    for (const s of p.gateway.dns.servers) expect(s).toMatch(/^127\./);
    for (const c of p.outboundConnectors) for (const h of c.smartHosts) expect(h.literal && h.host.startsWith('127.'), `${c.name}: ${h.text}`).toBe(true);
    const internet = routeDomain(p, 'gmail.com');
    expect(internet.kind === 'connector' && internet.connector.smartHosts.map((h) => h.text)).toEqual(['[127.0.0.1]:2627']);
    // MX routes (a partner that names useMXRecord) resolve through the loopback DNS only.
    for (const c of p.outboundConnectors.filter((x) => x.useMXRecord)) expect(c.smartHosts).toEqual([]);
  });
});

describe('addresses in the policy are read strictly (issue 20, item 4)', () => {
  it('an octal-looking range on an onPremises connector is an error at its line and column, with the canonical form', () => {
    const out = lines(head + `inboundConnectors:\n  - name: OnPrem\n    connectorType: onPremises\n    senderIPAddresses: ["010.020.0.0/22", "10.20/16", "0x0a.0x14.0.0", "169090560"]\n`);
    expect(out).toContainEqual(expect.stringMatching(/^p\.yaml:12:25: error: inboundConnectors\[0\]\.senderIPAddresses\[0\]: "010\.020\.0\.0" is not a decimal dotted-quad IPv4 address: it is read as 8\.16\.0\.0.*write 10\.20\.0\.0/));
    expect(out.filter((l) => l.includes('error:'))).toHaveLength(4);
  });
  it('host bits set: a warning naming the network meant', () => {
    const out = lines(head + `inboundConnectors:\n  - name: P\n    connectorType: partner\n    senderIPAddresses: [10.20.0.5/22]\n`);
    expect(out).toContainEqual(expect.stringMatching(/warning: inboundConnectors\[0\]\.senderIPAddresses\[0\]: "10\.20\.0\.5\/22" has host bits set: it means the network 10\.20\.0\.0\/22.*write 10\.20\.0\.0\/22/));
  });
  it('smart hosts, listener and admin addresses too', () => {
    const out = lines(head.replace('      port: 2525', '      port: 2525\n      address: "127.1"') + `  admin:\n    address: 0177.0.0.1\n    port: 8025\noutboundConnectors:\n  - name: O\n    connectorType: onPremises\n    recipientDomains: [contoso.com]\n    smartHosts: ["[010.000.000.005]:25", "10.0.5"]\n`);
    expect(out).toContainEqual(expect.stringMatching(/error: gateway\.listeners\[0\]\.address: "127\.1" is not a decimal dotted-quad IPv4 address: it is read as 127\.0\.0\.1/));
    expect(out).toContainEqual(expect.stringMatching(/error: gateway\.admin\.address: "0177\.0\.0\.1" .*read as 127\.0\.0\.1/));
    expect(out).toContainEqual(expect.stringMatching(/error: outboundConnectors\[0\]\.smartHosts\[0\]: "\[010\.000\.000\.005\]:25": the address in brackets is not a decimal dotted-quad.*read as 8\.0\.0\.5/));
    expect(out).toContainEqual(expect.stringMatching(/error: outboundConnectors\[0\]\.smartHosts\[1\]: "10\.0\.5": 10\.0\.5 is not a decimal dotted-quad.*read as 10\.0\.0\.5/));
  });
});


describe('gateway.admin.tokenFile (issue 20, item 7)', () => {
  it('a missing or short token file is an error at its line and column', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-token-'));
    fs.writeFileSync(path.join(dir, 'short.token'), 'abc\n');
    const policy = (f: string) => head + `  admin:\n    port: 8025\n    tokenFile: ${f}\n`;
    const short = formatDiagnostics(loadPolicyText(policy(path.join(dir, 'short.token')), 'p.yaml', { checkFiles: true }));
    expect(short).toContainEqual(expect.stringMatching(/^p\.yaml:11:16: error: gateway\.admin\.tokenFile: admin token file .*short\.token: the token is shorter than 16 characters.*openssl rand -hex 32/));
    const missing = formatDiagnostics(loadPolicyText(policy(path.join(dir, 'none.token')), 'p.yaml', { checkFiles: true }));
    expect(missing).toContainEqual(expect.stringMatching(/^p\.yaml:11:16: error: gateway\.admin\.tokenFile: admin token file .*none\.token: no such file/));
  });
});

describe('per-connector trust anchors (issue 20, item 3)', () => {
  const onprem = (extra: string) => `acceptedDomains:\n  - domain: contoso.com\ninboundConnectors:\n  - name: OnPrem cert\n    connectorType: onPremises\n    tlsSenderCertificateName: exchange.contoso.com\n${extra}`;
  const withCas = head.replace('    key: gw.key\n', '    key: gw.key\n    clientCertificateAuthorities: partners.pem\n');
  it('our own name, trusted only through the partners\' CAs: a warning that only a public CA vouches for it now', () => {
    const out = lines(withCas + onprem(''));
    expect(out).toContainEqual(expect.stringMatching(/warning: inboundConnectors\[0\]\.tlsSenderCertificateName: exchange\.contoso\.com is in an accepted domain: only a certificate from a public CA is accepted for it.*tlsCertificateAuthorities on this connector/));
  });
  it('one CA file for our own name and for the partners: a warning', () => {
    const out = lines(withCas + onprem('    tlsCertificateAuthorities: partners.pem\n'));
    expect(out).toContainEqual(expect.stringMatching(/warning: inboundConnectors\[0\]\.tlsCertificateAuthorities: .*partners\.pem vouches for our own exchange\.contoso\.com and for every partner/));
  });
  it('its own CA file: no warning, and the connector accepts only that anchor', () => {
    const r = loadPolicyText(withCas + onprem('    tlsCertificateAuthorities: onprem-ca.pem\n'), 'p.yaml', { checkFiles: false });
    expect(formatDiagnostics(r)).toEqual([]);
    expect(r.policy!.inboundConnectors[0]!.certificateAnchors).toEqual([path.resolve('onprem-ca.pem')]);
  });
  it('a partner name outside our domains: any anchor the listener trusts', () => {
    const r = loadPolicyText(withCas + `inboundConnectors:\n  - name: F\n    connectorType: partner\n    senderDomains: [fabrikam.com]\n    restrictDomainsToCertificate: true\n    tlsSenderCertificateName: mail.fabrikam.com\n`, 'p.yaml', { checkFiles: false });
    expect(r.policy!.inboundConnectors[0]!.certificateAnchors).toBeNull();
  });
});

describe('what an operator writes by habit (issue 21)', () => {
  it('requireTls: yes (YAML 1.1) — the error says YAML 1.2 reads a string, and to write true', () => {
    const out = lines(head + `inboundConnectors:\n  - name: A\n    connectorType: partner\n    requireTls: yes\n`);
    expect(out).toEqual([expect.stringMatching(/^p\.yaml:12:17: error: inboundConnectors\[0\]\.requireTls: "yes" is a string here, not a boolean: YAML 1\.2 reads only true and false as booleans \(fix: write true\)$/)]);
  });
  it('a missing required key is named, not "received undefined"', () => {
    const out = lines(head.replace('  hostname: mx1.contoso.com\n', ''));
    expect(out).toEqual([expect.stringMatching(/error: gateway\.hostname: hostname is required \(fix: add it/)]);
  });
  it('a UTF-16 policy (what PowerShell\'s > writes) is read as text, its positions too', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-utf16-'));
    const text = head + `inboundConnectors:\n  - name: A\n    connectorType: partner\n    requireTls: yes\n`;
    const file = path.join(dir, 'p.yaml');
    fs.writeFileSync(file, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
    const out = formatDiagnostics(loadPolicyFile(file, { checkFiles: false }));
    expect(out).toEqual([expect.stringMatching(/p\.yaml:12:17: error: inboundConnectors\[0\]\.requireTls: "yes" is a string/)]);
  });
});
