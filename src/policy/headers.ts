// PURE. The Exchange header firewall (SPEC §3). Exchange servers trust these headers (spam
// confidence, authentication results, …) on the connectors a gateway feeds; nobody but our own
// on-premises organization may set them.
import type { Attribution } from './inbound.js';
import type { Route } from './outbound.js';

/** X-MS-Exchange-Organization-*, X-MS-Exchange-CrossPremises-*, X-MS-Exchange-Forest-*. */
export function isExchangeTrustedHeader(name: string): boolean {
  return /^x-ms-exchange-(organization|crosspremises|forest)-/i.test(name);
}

/** Inbound: kept only from an onPremises connector (identified by IP or certificate) with cloudServicesMailEnabled. */
export function keepExchangeHeadersFrom(attribution: Attribution): boolean {
  const c = attribution.connector;
  return attribution.mayRelay && c !== null && c.connectorType === 'onPremises' && c.cloudServicesMailEnabled;
}

/** Outbound: kept only towards an onPremises connector with cloudServicesMailEnabled. */
export function keepExchangeHeadersTo(route: Route): boolean {
  return route.kind === 'connector' && route.connector.connectorType === 'onPremises' && route.connector.cloudServicesMailEnabled;
}
