import { stringify } from 'yaml';
import { loadPolicyText } from '../../src/config/load.js';
import type { Policy } from '../../src/policy/types.js';

export const baseGateway = {
  hostname: 'mx1.contoso.com',
  listeners: [{ name: 'mx', address: '127.0.0.1', port: 2525 }],
  tls: { certificate: 'gw.crt', key: 'gw.key' },
};

/** A policy built from a plain object by the real loader (files are not checked). */
export function policyOf(p: { acceptedDomains?: unknown[]; inboundConnectors?: unknown[]; outboundConnectors?: unknown[] }): Policy {
  const r = loadPolicyText(stringify({ gateway: baseGateway, ...p }), 'test.yaml', { checkFiles: false });
  if (!r.policy) throw new Error(r.diagnostics.map((d) => `${d.line}:${d.column} ${d.message}`).join('\n'));
  return r.policy;
}
