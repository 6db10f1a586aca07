// The command line as an operator meets it: check, serve refusing a bad policy, explain, dev-certs.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { CLI, runCli, startGateway, tmpDir } from '../helpers/gateway.js';

describe('connector-gateway check', () => {
  it('an older Node.js gets one line saying what to do, and exit 1 — never a stack trace (every command)', async () => {
    const dir = tmpDir('old-node');
    // Node 20 as the machine has it, simulated on any Node: process.versions says 20 from the start.
    const pre = path.join(dir, 'node20.mjs');
    fs.writeFileSync(pre, "Object.defineProperty(process.versions, 'node', { value: '20.20.2' }); Object.defineProperty(process, 'version', { value: 'v20.20.2' });\n");
    for (const args of [['trace'], ['serve'], ['--version']]) {
      const r = await new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
        execFile(process.execPath, ['--import', pre, CLI, ...args], { cwd: dir }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      });
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toEqual(['connector-gateway needs Node.js 24 or newer; this is v20.20.2. In this shell run `. scripts/node24.sh` (it fetches Node 24 from the npm registry), or install Node.js 24.']);
    }
  });
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

describe('CLI manners', () => {
  const head = `gateway:\n  hostname: mx1.contoso.com\n  listeners:\n    - name: mx\n      port: 2525\n  tls:\n    certificate: nope.crt\n    key: nope.key\n`;
  it('--version, help COMMAND and COMMAND --help', async () => {
    const v = await runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^connector-gateway \d+\.\d+\.\d+ \(Node\.js v\d+\.\d+\.\d+\)\n$/);
    for (const args of [['check', '--help'], ['help', 'check']]) {
      const h = await runCli(args);
      expect(h.code, args.join(' ')).toBe(0);
      expect(h.stdout).toMatch(/^usage: connector-gateway check \[--config FILE\]/);
    }
    const all = await runCli(['help']);
    expect(all.stdout).toContain('Exit codes: 0 success; 1 the policy has errors or the work failed; 2 a usage error;');
    expect((await runCli(['help', 'nosuch'])).code).toBe(2);
  });
  it('usage errors exit 2: two --config, explain --ip foo, a malformed queue id', async () => {
    const dir = tmpDir('manners');
    fs.writeFileSync(path.join(dir, 'p.yaml'), head);
    const twice = await runCli(['check', '--config', 'p.yaml', '--config', 'q.yaml'], dir);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('--config is given more than once');
    const ip = await runCli(['explain', '--ip', 'foo', '--from', 'a@b.c', '--to', 'd@e.f', '--config', 'p.yaml'], dir);
    expect(ip.code).toBe(2);
    expect(ip.stderr).toContain('explain --ip foo: not an IP address');
    const id = await runCli(['queue', 'show', 'not-an-id', '--config', 'p.yaml'], dir);
    expect(id.code).toBe(2);
    expect(id.stderr).toContain('"not-an-id" is not a queue id');
  });
  it('an empty policy, and an unquoted * (a YAML alias), are told in words', async () => {
    const dir = tmpDir('manners2');
    fs.writeFileSync(path.join(dir, 'empty.yaml'), '# nothing yet\n');
    expect((await runCli(['check', '--config', 'empty.yaml'], dir)).stdout).toContain('empty.yaml:1:1: error: the policy is empty');
    fs.writeFileSync(path.join(dir, 'alias.yaml'), head + 'inboundConnectors:\n  - name: A\n    connectorType: partner\n    senderDomains: [*]\n');
    expect((await runCli(['check', '--config', 'alias.yaml'], dir)).stdout).toMatch(/alias\.yaml:12:\d+: error: YAML: .*\(fix: quote it: "\*"/);
  });
  it('lint: two listeners on one address and port, a host name with a space, a domain listed twice, an onPremises range inside a partner range', async () => {
    const dir = tmpDir('manners3');
    fs.writeFileSync(
      path.join(dir, 'p.yaml'),
      `gateway:\n  hostname: mx1 contoso.com\n  listeners:\n    - { name: a, address: 127.0.0.1, port: 2525 }\n    - { name: b, address: 127.0.0.1, port: 2525 }\n  tls: { certificate: nope.crt, key: nope.key }\n` +
        `acceptedDomains:\n  - domain: contoso.com\n  - domain: Contoso.COM\n` +
        `inboundConnectors:\n  - name: P\n    connectorType: partner\n    senderDomains: [p.example]\n    senderIPAddresses: [10.0.0.0/24]\n  - name: O\n    connectorType: onPremises\n    senderIPAddresses: [10.0.0.5]\n`,
    );
    const r = await runCli(['check', '--config', 'p.yaml'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/p\.yaml:2:13: error: gateway\.hostname: "mx1 contoso\.com" is not a host name/);
    expect(r.stdout).toMatch(/p\.yaml:5:\d+: error: gateway\.listeners\[1\]\.port: listeners\[0\] already listens on 127\.0\.0\.1:2525/);
    expect(r.stdout).toMatch(/p\.yaml:9:\d+: error: acceptedDomains\[1\]\.domain: Contoso\.COM is already listed as acceptedDomains\[0\]/);
    expect(r.stdout).toMatch(/warning: inboundConnectors\[1\]\.senderIPAddresses: 10\.0\.0\.5 overlaps 10\.0\.0\.0\/24 of partner connector "P"/);
    fs.writeFileSync(path.join(dir, 'zero.yaml'), head.replace('port: 2525', 'port: 0'));
    expect((await runCli(['check', '--config', 'zero.yaml'], dir)).stdout).toMatch(/zero\.yaml:5:13: warning: gateway\.listeners\[0\]\.port: port 0: the listener gets a random free port/);
  });
});
