// What delivery needs of a policy, built in one place for every caller (the daemon at start and at
// each reload, `validate`, `tls-report`): the client identity, the resolver of gateway.dns.servers,
// the DNSSEC-aware resolver only where its AD bit can be trusted (SPEC §8), the connector CA files
// read once, the DKIM and ARC signing keys, and a connection cache.
import { parseDnsServers } from '../mail/dns-server.js';
import { dnssecTrust } from '../policy/outbound-security.js';
import type { Policy } from '../policy/types.js';
import { cachedPemReader, readIdentity } from '../tls/files.js';
import type { DeliveryDeps } from './client.js';
import { SecureResolver } from './dnssec-resolver.js';
import { ConnectionPool } from './pool.js';
import { readSigningKeys } from '../auth/sign.js';
import { HopResolver } from './resolve.js';

export type BuiltDeliveryDeps = DeliveryDeps & { pool: ConnectionPool; resolver: HopResolver };

/** The parts that are not the policy's: MTA-STS cache, reports of policy failures and TLS results. */
export type DeliveryExtras = Pick<DeliveryDeps, 'sts' | 'report' | 'tlsResult' | 'timeouts'>;

/** The DNSSEC-aware resolver of gateway.dns.servers, or none where DANE cannot be in effect. */
export function secureResolverFor(policy: Policy): SecureResolver | undefined {
  const servers = parseDnsServers(policy.gateway.dns.servers);
  return dnssecTrust(policy).trusted && servers.length ? new SecureResolver(servers) : undefined;
}

/**
 * Delivery's view of a policy. `identity: false` for callers that never present the gateway's
 * certificate (tls-report: its HTTPS posts and DNS only), so that they run without the key.
 */
export function buildDeliveryDeps(policy: Policy, extras: DeliveryExtras = {}, opts: { identity?: boolean } = {}): BuiltDeliveryDeps {
  return {
    policy,
    pool: new ConnectionPool(),
    identity: opts.identity === false ? { key: '', cert: '' } : readIdentity(policy),
    resolver: new HopResolver(policy.gateway.dns.servers),
    readCa: cachedPemReader(),
    secureResolver: secureResolverFor(policy),
    ...(opts.identity === false ? {} : { signingKeys: readSigningKeys(policy) }),
    ...extras,
  };
}
