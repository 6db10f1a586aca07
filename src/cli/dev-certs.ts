// `connector-gateway dev-certs`: a development CA, the gateway's certificate and two client
// certificates for trying the bundled connectors. node-forge is loaded only here.
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
  if (fs.existsSync(crt) && !values.force) {
    process.stdout.write(`${crt} exists; leaving the certificates as they are (--force to replace)\n`);
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
  for (const [file, name] of [['onprem', 'exchange.contoso.com'], ['fabrikam', 'mail.fabrikam.com']] as const) {
    const c = issueCertificate({ commonName: name, issuer: ca });
    fs.writeFileSync(path.join(dir, `${file}.key`), c.keyPem, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, `${file}.crt`), c.certPem + ca.certPem);
  }
  process.stdout.write(`wrote development certificates to ${dir}/: dev-ca, gateway, onprem, fabrikam (.crt/.key)\n`);
}
