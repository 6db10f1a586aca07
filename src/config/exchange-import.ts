// PURE. Exchange's connectors → a policy (`connector-gateway import --exchange`). The input is
// what `Get-InboundConnector`, `Get-OutboundConnector`, `Get-AcceptedDomain` (Exchange Online)
// and `Get-SendConnector`, `Get-ReceiveConnector` (Exchange Server) print through
// `ConvertTo-Json`: one object or an array, enums as names or numbers, address spaces like
// "smtp:*;1", IP ranges and smart hosts as strings or objects. Each object becomes policy
// entries; every parameter that has no equivalent is listed, so nothing is dropped silently.
import { decodeTextFile } from '../mail/text-file.js';

export type ExchangeObject = Record<string, unknown>;

export interface Imported {
  policy: {
    acceptedDomains: Array<Record<string, unknown>>;
    inboundConnectors: Array<Record<string, unknown>>;
    outboundConnectors: Array<Record<string, unknown>>;
  };
  /** Per policy entry ("inboundConnectors[0]"): what could not be mapped, or was mapped with a caveat. */
  notes: Map<string, string[]>;
  /** Objects not recognised, with why. */
  skipped: string[];
}

/** Parameters that carry no policy meaning here (identity, bookkeeping, defaults). */
const IGNORED = new Set([
  'Identity', 'Guid', 'Id', 'DistinguishedName', 'ObjectCategory', 'ObjectClass', 'WhenChanged', 'WhenCreated', 'WhenChangedUTC', 'WhenCreatedUTC',
  'OrganizationId', 'OriginatingServer', 'IsValid', 'ExchangeVersion', 'ObjectState', 'ExchangeObjectId', 'PSComputerName', 'RunspaceId', 'PSShowComputerName',
  'AdminDisplayName', 'ConnectorSource', 'IsValidated', 'LastValidationTimestamp', 'ValidationRecipients', 'LinkForModifiedConnector', 'PSSourceJobInstanceId',
]);

const text = (v: unknown): string => (v === null || v === undefined ? '' : typeof v === 'string' ? v : typeof v === 'object' && v && 'Domain' in v ? String((v as { Domain: unknown }).Domain) : String(v));
const list = (v: unknown): unknown[] => (v === null || v === undefined ? [] : Array.isArray(v) ? v : [v]);
const isEmpty = (v: unknown): boolean => v === null || v === undefined || v === '' || v === false || (Array.isArray(v) && v.length === 0);

/** "smtp:contoso.com;1", "SMTP:*;1", "contoso.com" → "contoso.com" / "*". */
export function addressSpaceDomain(v: unknown): string {
  let s = text(v).trim();
  const colon = s.indexOf(':');
  if (colon > 0 && /^[a-z0-9]+$/i.test(s.slice(0, colon))) s = s.slice(colon + 1);
  return s.split(';')[0]!.trim();
}

/** An IP range as Exchange prints it: "10.0.0.0/24", "10.0.0.1-10.0.0.9", or an object. */
function ipRange(v: unknown): string {
  if (typeof v === 'string') return v.trim();
  const o = v as { Expression?: string; LowerBound?: unknown; UpperBound?: unknown; CIDRLength?: number };
  if (o?.Expression) return o.Expression;
  if (o?.LowerBound && o.UpperBound) return text(o.LowerBound) === text(o.UpperBound) ? text(o.LowerBound) : `${text(o.LowerBound)}-${text(o.UpperBound)}`;
  return text(v);
}

/** A smart host: a name or an address (an object with Domain or Address). IP addresses in brackets. */
function smartHost(v: unknown): string {
  const o = v as { Address?: unknown; Domain?: unknown; IsIPAddress?: boolean };
  const s = typeof v === 'string' ? v.trim() : (hostOf(o?.IsIPAddress === false ? null : o?.Address) || hostOf(o?.Domain) || hostOf(o?.Address));
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) || s.includes(':') ? `[${s.replace(/^\[|\]$/g, '')}]` : s;
}

/**
 * A host as Exchange Server's SmartHost prints it through ConvertTo-Json: a string, an
 * IPAddress object (IPAddressToString), or a domain object (HostnameString, or Domain).
 */
function hostOf(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v.trim();
  if (typeof v !== 'object') return String(v);
  const o = v as { IPAddressToString?: unknown; HostnameString?: unknown; Domain?: unknown; Address?: unknown };
  for (const x of [o.IPAddressToString, o.HostnameString, o.Domain, o.Address]) if (typeof x === 'string' && x.trim()) return x.trim();
  return '';
}

/** An enum printed as its name or its number. */
function enumName(v: unknown, numbers: Record<number, string>): string {
  if (typeof v === 'number') return numbers[v] ?? String(v);
  return text(v);
}

const CONNECTOR_TYPE: Record<number, string> = { 1: 'OnPremises', 2: 'Partner' };
const DOMAIN_TYPE: Record<number, string> = { 0: 'Authoritative', 1: 'ExternalRelay', 2: 'InternalRelay' };
const TLS_SETTINGS: Record<number, string> = { 1: 'EncryptionOnly', 2: 'CertificateValidation', 3: 'DomainValidation' };

function connectorType(v: unknown): 'partner' | 'onPremises' {
  return /^onpremises$/i.test(enumName(v, CONNECTOR_TYPE)) ? 'onPremises' : 'partner';
}

function tlsSettings(v: unknown): string | null {
  const n = enumName(v, TLS_SETTINGS).toLowerCase();
  return n === 'encryptiononly' ? 'encryptionOnly' : n === 'certificatevalidation' ? 'certificateValidation' : n === 'domainvalidation' ? 'domainValidation' : null;
}

/**
 * TlsSenderCertificateName: a name ("*.fabrikam.com"), or "<I>issuer<S>subject" where the
 * subject's CN is the name. null when there is none.
 */
export function certificateName(v: string): string | null {
  const s = v.trim();
  if (!s) return null;
  const subject = s.includes('<S>') ? s.slice(s.indexOf('<S>') + 3) : s;
  const cn = /(?:^|,)\s*CN=([^,]+)/i.exec(subject);
  return (cn ? cn[1]! : subject).trim() || null;
}

type Kind = 'inbound' | 'outbound' | 'accepted' | 'send' | 'receive';

/** Which cmdlet printed an object, by the parameters only that cmdlet has. */
export function kindOf(o: ExchangeObject): Kind | null {
  if ('DomainName' in o && 'DomainType' in o) return 'accepted';
  if ('AddressSpaces' in o && ('DNSRoutingEnabled' in o || 'SmartHosts' in o)) return 'send';
  if ('Bindings' in o && 'RemoteIPRanges' in o) return 'receive';
  if ('RecipientDomains' in o && ('UseMXRecord' in o || 'SmartHosts' in o)) return 'outbound';
  if ('SenderDomains' in o || 'SenderIPAddresses' in o || 'RestrictDomainsToIPAddresses' in o) return 'inbound';
  return null;
}

/** The parameters of `o` not in `used` and not empty: listed as not mapped. */
function unmapped(o: ExchangeObject, used: readonly string[]): string[] {
  return Object.entries(o)
    .filter(([k, v]) => !used.includes(k) && !IGNORED.has(k) && !isEmpty(v))
    .map(([k, v]) => `not mapped: ${k} = ${JSON.stringify(v)}`);
}

export function importExchange(objects: readonly ExchangeObject[]): Imported {
  const out: Imported = { policy: { acceptedDomains: [], inboundConnectors: [], outboundConnectors: [] }, notes: new Map(), skipped: [] };
  const names = new Set<string>();
  const unique = (name: string): string => {
    let n = name || 'Imported connector';
    for (let i = 2; names.has(n); i++) n = `${name} (${i})`;
    names.add(n);
    return n;
  };
  const note = (section: keyof Imported['policy'], lines: string[]): void => {
    if (lines.length) out.notes.set(`${section}[${out.policy[section].length - 1}]`, lines);
  };
  const seenDomains = new Set<string>();

  for (const o of objects) {
    const kind = kindOf(o);
    const name = text(o.Name ?? o.Identity);
    if (kind === 'accepted') {
      const domain = text(o.DomainName).toLowerCase();
      const type = enumName(o.DomainType, DOMAIN_TYPE).toLowerCase();
      const domains = [domain, ...(o.MatchSubDomains === true ? [`*.${domain}`] : [])];
      for (const d of domains) {
        if (seenDomains.has(d)) continue;
        seenDomains.add(d);
        out.policy.acceptedDomains.push({ domain: d, domainType: type === 'authoritative' ? 'authoritative' : 'internalRelay' });
        const lines = unmapped(o, ['DomainName', 'DomainType', 'Name', 'MatchSubDomains', 'Default']);
        if (type === 'externalrelay') lines.unshift('DomainType ExternalRelay: imported as internalRelay (mail for it is relayed to its outbound connector)');
        note('acceptedDomains', lines);
      }
      continue;
    }
    if (kind === 'inbound') {
      const type = connectorType(o.ConnectorType);
      const base = {
        connectorType: type,
        enabled: o.Enabled !== false,
        senderDomains: list(o.SenderDomains).map(addressSpaceDomain).filter(Boolean),
        requireTls: o.RequireTls === true,
        ...(type === 'onPremises' && o.CloudServicesMailEnabled === true ? { cloudServicesMailEnabled: true } : {}),
        ...(text(o.Comment) ? { comment: text(o.Comment) } : {}),
      };
      if (!base.senderDomains.length) base.senderDomains = ['*'];
      const ips = list(o.SenderIPAddresses).map(ipRange).filter(Boolean);
      const cert = certificateName(text(o.TlsSenderCertificateName));
      const used = ['Name', 'ConnectorType', 'Enabled', 'SenderDomains', 'RequireTls', 'CloudServicesMailEnabled', 'Comment', 'SenderIPAddresses', 'TlsSenderCertificateName', 'RestrictDomainsToIPAddresses', 'RestrictDomainsToCertificate'];
      const lines = unmapped(o, used);
      if (type === 'partner' && ips.length && cert) {
        // A partner identified by IP and by certificate is two connectors here (one way each).
        out.policy.inboundConnectors.push({ name: unique(`${name} (by IP)`), ...base, senderIPAddresses: ips, restrictDomainsToIPAddresses: o.RestrictDomainsToIPAddresses === true });
        note('inboundConnectors', ['split: this Exchange connector names both IP addresses and a certificate; here that is two connectors', ...lines]);
        out.policy.inboundConnectors.push({ name: unique(`${name} (by certificate)`), ...base, tlsSenderCertificateName: cert, restrictDomainsToCertificate: o.RestrictDomainsToCertificate === true });
        note('inboundConnectors', ['split: see the connector above']);
        continue;
      }
      if (type === 'onPremises' && !ips.length && !cert) {
        out.skipped.push(`inbound connector "${name}": onPremises without IP addresses or a certificate name cannot identify your servers here: not mapped (add one and import again)`);
        continue;
      }
      out.policy.inboundConnectors.push({
        name: unique(name),
        ...base,
        ...(ips.length ? { senderIPAddresses: ips, ...(o.RestrictDomainsToIPAddresses === true && type === 'partner' ? { restrictDomainsToIPAddresses: true } : {}) } : {}),
        ...(cert ? { tlsSenderCertificateName: cert, ...(o.RestrictDomainsToCertificate === true && type === 'partner' ? { restrictDomainsToCertificate: true } : {}) } : {}),
      });
      note('inboundConnectors', lines);
      continue;
    }
    if (kind === 'outbound' || kind === 'send') {
      const send = kind === 'send';
      const domains = list(send ? o.AddressSpaces : o.RecipientDomains).map(addressSpaceDomain).filter(Boolean).map((d) => d.toLowerCase());
      // Exchange Server also prints SmartHostsString ("[10.0.0.5],mail.contoso.com"): the plainest form when present.
      const hostsString = typeof o.SmartHostsString === 'string' && o.SmartHostsString.trim() ? o.SmartHostsString.split(',').map((h: string) => h.trim()).filter(Boolean) : null;
      const hosts = (hostsString ?? list(o.SmartHosts)).map(smartHost).filter(Boolean);
      const mx = send ? o.DNSRoutingEnabled === true || !hosts.length : o.UseMXRecord === true || !hosts.length;
      const tls = send ? (o.RequireTLS === true ? (tlsSettings(o.TlsAuthLevel) ?? 'encryptionOnly') : null) : tlsSettings(o.TlsSettings);
      const tlsDomain = text(o.TlsDomain) || null;
      const type = send ? 'partner' : connectorType(o.ConnectorType);
      const entry: Record<string, unknown> = {
        name: unique(name),
        connectorType: type,
        enabled: o.Enabled !== false,
        ...(o.AllAcceptedDomains === true ? { allAcceptedDomains: true } : {}),
        ...(domains.length ? { recipientDomains: domains } : {}),
        ...(mx ? { useMXRecord: true } : { smartHosts: hosts }),
        ...(tls ? { tlsSettings: tls } : {}),
        ...(tls === 'domainValidation' && tlsDomain ? { tlsDomain } : {}),
        ...(o.IsTransportRuleScoped === true ? { isTransportRuleScoped: true } : {}),
        ...(type === 'onPremises' && o.CloudServicesMailEnabled === true ? { cloudServicesMailEnabled: true } : {}),
        ...(text(o.Comment) ? { comment: text(o.Comment) } : {}),
      };
      const used = ['Name', 'ConnectorType', 'Enabled', 'AllAcceptedDomains', 'RecipientDomains', 'AddressSpaces', 'SmartHosts', 'UseMXRecord', 'DNSRoutingEnabled', 'TlsSettings', 'TlsAuthLevel', 'RequireTLS', 'TlsDomain', 'IsTransportRuleScoped', 'CloudServicesMailEnabled', 'Comment'];
      const lines = unmapped(o, used);
      if (!domains.length && o.AllAcceptedDomains !== true) {
        entry.isTransportRuleScoped = true; // nothing routes to it by domain: keep it, only rules may use it
        lines.unshift('no recipient domains: imported as rule-scoped (isTransportRuleScoped)');
      }
      if (mx && hosts.length) lines.unshift(`smart hosts not used with MX routing: ${hosts.join(', ')}`);
      if (tls !== 'domainValidation' && tlsDomain) lines.unshift(`TlsDomain ${tlsDomain} only applies with domainValidation`);
      out.policy.outboundConnectors.push(entry);
      note('outboundConnectors', lines);
      continue;
    }
    if (kind === 'receive') {
      const ranges = list(o.RemoteIPRanges).map(ipRange).filter(Boolean);
      const everyone = ranges.some((r) => /^0\.0\.0\.0-255\.255\.255\.255$|^::-ffff(:ffff){7}$|^0\.0\.0\.0\/0$/i.test(r));
      if (everyone || !ranges.length) {
        out.skipped.push(`receive connector "${name}": accepts every address (the gateway's listeners and accepted domains do that job): not mapped`);
        continue;
      }
      out.policy.inboundConnectors.push({ name: unique(name), connectorType: 'onPremises', senderIPAddresses: ranges, requireTls: o.RequireTLS === true });
      note('inboundConnectors', [
        'review: a receive connector for specific addresses is imported as an onPremises connector (they may relay anywhere)',
        ...unmapped(o, ['Name', 'RemoteIPRanges', 'RequireTLS', 'Enabled']),
      ]);
      continue;
    }
    out.skipped.push(`an object with ${Object.keys(o).slice(0, 6).join(', ')}…: not a connector or accepted domain`);
  }
  return out;
}

/** JSON as PowerShell writes it: UTF-8 (with or without BOM) or UTF-16 with BOM. */
export const decodeJsonFile = decodeTextFile;
