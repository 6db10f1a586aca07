// `connector-gateway dev-certs`: development CAs, the gateway's certificate and two client
// certificates for trying the bundled connectors. Two CAs, as in production: dev-ca stands for
// a partner's CA (and signs the gateway's certificate); dev-onprem-ca for the CA of our own
// servers, named only on the on-premises connector — a partner's CA cannot vouch for our names.
// node-forge is loaded only here.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

export async function devCerts(args: string[]): Promise<void> {
  // node-forge is only needed here: the daemon does not load it.
  const { issueCertificate } = await import('../tls/issue.js');
  const { values } = parseArgs({
    args,
    options: { dir: { type: 'string', default: 'certs' }, hostname: { type: 'string', default: 'localhost' }, force: { type: 'boolean', default: false } },
  });
  const dir = values.dir!;
  const crt = path.join(dir, 'gateway.crt');
  const onpremCa = path.join(dir, 'dev-onprem-ca.crt');
  const write = (name: string, ...pems: string[]): void => fs.writeFileSync(path.join(dir, name), pems.join(''), { mode: name.endsWith('.key') ? 0o600 : 0o644 });
  /** Our own servers' CA and the on-premises client certificate it issues. */
  const onprem = (): void => {
    const ca = issueCertificate({ commonName: 'connector-gateway development on-premises CA', isCA: true, organization: 'connector-gateway dev' });
    const c = issueCertificate({ commonName: 'exchange.contoso.com', issuer: ca });
    write('dev-onprem-ca.crt', ca.certPem);
    write('onprem.key', c.keyPem);
    write('onprem.crt', c.certPem, ca.certPem);
  };
  /** Development DKIM keys (RSA 2048 and Ed25519) and an ARC sealing key for contoso.com, with the DNS records to publish. */
  const signingKeys = (): boolean => {
    const keys: Array<[string, 'rsa' | 'ed25519', string]> = [
      ['dkim-contoso.com-rsa.key', 'rsa', 'rsa2026._domainkey.contoso.com'],
      ['dkim-contoso.com-ed25519.key', 'ed25519', 'ed2026._domainkey.contoso.com'],
      ['arc-contoso.com.key', 'rsa', 'arc2026._domainkey.contoso.com'],
    ];
    if (!values.force && keys.every(([f]) => fs.existsSync(path.join(dir, f)))) return false;
    const records: string[] = [];
    for (const [file, type, name] of keys) {
      const { privateKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
      write(file, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
      const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
      records.push(`${name}. IN TXT "v=DKIM1; k=${type}; p=${(type === 'rsa' ? spki : spki.subarray(spki.length - 32)).toString('base64')}"`);
    }
    write('dkim-records.txt', `; publish these for the keys in ${dir}/ (zone-file syntax; split a long text into strings of 255)\n${records.join('\n')}\n`);
    return true;
  };
  if (fs.existsSync(crt) && !values.force) {
    const keysWritten = signingKeys();
    if (keysWritten) process.stdout.write(`wrote development DKIM and ARC keys to ${dir}/ (their DNS records: ${dir}/dkim-records.txt)\n`);
    if (fs.existsSync(onpremCa)) {
      process.stdout.write(`${crt} exists; leaving the certificates as they are (--force to replace)\n`);
      return;
    }
    onprem(); // certificates from an earlier release: one CA signed both client certificates
    process.stdout.write(`wrote ${onpremCa} and a new onprem certificate issued by it; the other certificates are left as they are\n`);
    return;
  }
  fs.mkdirSync(dir, { recursive: true });
  const ca = issueCertificate({ commonName: 'connector-gateway development CA', isCA: true, organization: 'connector-gateway dev' });
  const gw = issueCertificate({
    commonName: values.hostname!,
    altNames: [values.hostname!, 'localhost', '127.0.0.1'],
    issuer: ca,
    crlUrl: 'http://localhost/connector-gateway-dev-ca.crl',
  });
  fs.writeFileSync(path.join(dir, 'dev-ca.crt'), ca.certPem);
  fs.writeFileSync(path.join(dir, 'dev-ca.key'), ca.keyPem, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'gateway.key'), gw.keyPem, { mode: 0o600 });
  fs.writeFileSync(crt, gw.certPem + ca.certPem);
  // Client certificates for trying the bundled connectors by certificate.
  const fabrikam = issueCertificate({ commonName: 'mail.fabrikam.com', issuer: ca });
  write('fabrikam.key', fabrikam.keyPem);
  write('fabrikam.crt', fabrikam.certPem, ca.certPem);
  onprem();
  signingKeys();
  process.stdout.write(`wrote development certificates to ${dir}/: dev-ca (partners), dev-onprem-ca (our servers), gateway, onprem, fabrikam (.crt/.key); DKIM and ARC keys for contoso.com (records: ${dir}/dkim-records.txt)\n`);
}
