// The command line as an operator meets it: check, serve refusing a bad policy, explain, dev-certs.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { runCli, startGateway, tmpDir } from '../helpers/gateway.js';

describe('connector-gateway check', () => {
  it('prints errors with file:line:column and exits 1', async () => {
    const dir = tmpDir('check');
    fs.writeFileSync(
      path.join(dir, 'bad.yaml'),
      `gateway:\n  hostname: mx1.contoso.com\n  listeners:\n    - name: mx\n      port: 2525\n  tls:\n    certificate: nope.crt\n    key: nope.key\ninboundConnectors:\n  - name: A\n    connectorType: partner\n    senderIPAddreses: [10.0.0.0/8]\n`,
    );
    const r = await runCli(['check', '--config', 'bad.yaml'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('bad.yaml:12:5: error: inboundConnectors[0].senderIPAddreses: unknown key "senderIPAddreses"');
  });
  it('reports missing certificate files with a fix hint', async () => {
    const dir = tmpDir('check2');
    fs.writeFileSync(path.join(dir, 'p.yaml'), `gateway:\n  hostname: mx1.contoso.com\n  listeners:\n    - name: mx\n      port: 2525\n  tls:\n    certificate: nope.crt\n    key: nope.key\n`);
    const r = await runCli(['check', '--config', 'p.yaml'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/p\.yaml:7:18: error: gateway\.tls\.certificate: certificate .*nope\.crt: no such file \(fix: run `connector-gateway dev-certs`/);
  });
  it('the daemon refuses to start on an invalid policy, with the same diagnostics', async () => {
    const dir = tmpDir('serve-bad');
    fs.writeFileSync(path.join(dir, 'p.yaml'), `gateway:\n  hostname: [oops\n`);
    await expect(startGateway(path.join(dir, 'p.yaml'))).rejects.toThrow(/exited 1[\s\S]*p\.yaml:\d+:\d+: error: YAML/);
  });
  it('dev-certs creates a CA and gateway certificate, then the bundled policy checks clean', async () => {
    const dir = tmpDir('devcerts');
    const r = await runCli(['dev-certs', '--dir', path.join(dir, 'certs')], dir);
    expect(r.code).toBe(0);
    for (const f of ['dev-ca.crt', 'gateway.crt', 'gateway.key', 'onprem.crt', 'fabrikam.key']) expect(fs.existsSync(path.join(dir, 'certs', f)), f).toBe(true);
    fs.mkdirSync(path.join(dir, 'config'));
    fs.copyFileSync(path.resolve(import.meta.dirname, '../../config/gateway.yaml'), path.join(dir, 'config/gateway.yaml'));
    const c = await runCli(['check'], dir);
    expect(c.stdout).toContain('0 error(s), 0 warning(s)');
    expect(c.code).toBe(0);
    const again = await runCli(['dev-certs', '--dir', path.join(dir, 'certs')], dir);
    expect(again.stdout).toContain('exists; leaving');
  });
});

describe('connector-gateway explain', () => {
  const cfg = path.resolve(import.meta.dirname, '../../config/gateway.yaml');
  it('tells which connector applies and the reply at each step', async () => {
    const r = await runCli(['explain', '--config', cfg, '--ip', '198.51.100.20', '--from', 'x@woodgrovebank.com', '--to', 'user@contoso.com', '--to', 'user@gmail.com']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('inbound connector: Woodgrove Bank by IP (partner, by ip: 198.51.100.0/24)');
    expect(r.stdout).toContain('outbound connector: To on-premises Exchange (matched allAcceptedDomains)');
    expect(r.stdout).toContain('reply: 550 5.7.64 TenantAttribution; Relay Access Denied');
  });
  it('exits 3 when the sender would be refused', async () => {
    const r = await runCli(['explain', '--config', cfg, '--ip', '203.0.113.1', '--from', 'x@woodgrovebank.com', '--to', 'user@contoso.com']);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('reply: 550 5.7.51 TenantInboundAttribution; sender IP not allowed by connector Woodgrove Bank by IP');
  });
});
