// PURE. Which security policy applies to a route's delivery (SPEC §8): DANE for MX routes when a
// trusted validating resolver is configured, else the connector's tlsSettings (or opportunistic
// TLS for MX without a connector). explain and delivery both ask here.
import type { Route } from './outbound.js';
import type { DaneMode, MtaStsMode, Policy } from './types.js';

const LOOPBACK = /^(127\.|\[?::1\]?(:|$)|localhost\b)/;

/** Whether the AD bit of gateway.dns.servers can be believed: all on loopback, or declared trusted. */
export function dnssecTrust(policy: Policy): { trusted: true } | { trusted: false; why: string } {
  const d = policy.gateway.dns;
  if (!d.servers.length) return { trusted: false, why: 'gateway.dns.servers is empty (the system resolvers are not asked for DNSSEC)' };
  if (d.dnssecTrusted) return { trusted: true };
  const remote = d.servers.filter((s) => !LOOPBACK.test(s));
  return remote.length ? { trusted: false, why: `${remote.join(', ')} is not on loopback and gateway.dns.dnssecTrusted is false` } : { trusted: true };
}

/** The DANE mode for a route: MX routes only (no connector, or a connector with useMXRecord). */
export function daneModeFor(policy: Policy, route: Route): DaneMode {
  if (route.kind === 'mx') return policy.gateway.outbound.smtpDaneMode;
  if (!route.connector.useMXRecord) return 'none'; // smart hosts keep their tlsSettings (SPEC §8)
  return route.connector.smtpDaneMode ?? policy.gateway.outbound.smtpDaneMode;
}

export type OutboundSecurity = { policy: 'dane'; mode: Exclude<DaneMode, 'none'> } | { policy: 'tlsSettings'; why: string };

/** What secures a route's delivery, and why. */
export function outboundSecurity(policy: Policy, route: Route): OutboundSecurity {
  const mode = daneModeFor(policy, route);
  if (route.kind === 'connector' && !route.connector.useMXRecord) return { policy: 'tlsSettings', why: 'smart hosts: the connector\'s tlsSettings' };
  if (mode === 'none') return { policy: 'tlsSettings', why: 'smtpDaneMode: none' };
  const trust = dnssecTrust(policy);
  if (!trust.trusted) return { policy: 'tlsSettings', why: `DANE not in effect: ${trust.why}` };
  return { policy: 'dane', mode };
}

/** The MTA-STS mode for a route (MX routes only); it applies where DANE does not. */
export function mtaStsModeFor(policy: Policy, route: Route): MtaStsMode {
  if (route.kind === 'mx') return policy.gateway.outbound.mtaStsMode;
  if (!route.connector.useMXRecord) return 'none';
  return route.connector.mtaStsMode ?? policy.gateway.outbound.mtaStsMode;
}
