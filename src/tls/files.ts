// The PEM files a policy names, read once per use: the gateway's identity (presented to
// clients, and our client certificate outbound) and extra trust roots.
import fs from 'node:fs';
import type { Policy } from '../policy/types.js';

export interface Identity {
  key: string;
  cert: string;
}

/** gateway.tls.key and gateway.tls.certificate. */
export function readIdentity(policy: Policy): Identity {
  const t = policy.gateway.tls;
  return { key: fs.readFileSync(t.key, 'utf8'), cert: fs.readFileSync(t.certificate, 'utf8') };
}

/** A reader of CA files that reads each file once (connectors' tlsCertificateAuthorities). */
export function cachedPemReader(): (file: string) => string {
  const cache = new Map<string, string>();
  return (file) => {
    let pem = cache.get(file);
    if (pem === undefined) cache.set(file, (pem = fs.readFileSync(file, 'utf8')));
    return pem;
  };
}
