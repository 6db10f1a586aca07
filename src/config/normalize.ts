// Raw policy (schema-valid) → compiled Policy for the engine; value errors are reported with their path.
import { availableParallelism, hostname } from 'node:os';
import path from 'node:path';
import { parseDomainPattern, parseIpRange, parseStrictAddress, type DomainPattern, type IpRange } from '../policy/match.js';
import { normalizeDomain } from '../mail/address.js';
import { RE2JS } from 're2js';
import { inOurDomains } from '../policy/organization.js';
import { PUBLIC_ROOTS, type AcceptedDomain, type InboundConnector, type ListenerSettings, type OutboundConnector, type Policy, type RulePredicates, type SmartHost, type TransportRule } from '../policy/types.js';
import type { RawPolicy } from './schema.js';
import { Diagnostics, type Path } from './diagnostics.js';
import { parseDuration, parseSize } from './units.js';

function patterns(list: readonly string[], at: Path, d: Diagnostics): DomainPattern[] {
  const out: DomainPattern[] = [];
  list.forEach((text, i) => {
    const p = parseDomainPattern(text);
    if (typeof p === 'string') d.error([...at, i], p);
    else out.push(p);
  });
  return out;
}

function pattern(text: string | null, at: Path, d: Diagnostics): DomainPattern | null {
  if (text === null || text === '') return null;
  const p = parseDomainPattern(text);
  if (typeof p === 'string') {
    d.error(at, p);
    return null;
  }
  return p;
}

function ranges(list: readonly string[], at: Path, d: Diagnostics): IpRange[] {
  const out: IpRange[] = [];
  list.forEach((text, i) => {
    const r = parseIpRange(text);
    if ('error' in r) return d.error([...at, i], r.error, r.fix);
    if (r.network) d.warn([...at, i], `"${text}" has host bits set: it means the network ${r.network}`, `write ${r.network}`);
    out.push(r);
  });
  return out;
}

/** An address the policy names (a listener's, the admin's): strict, as parseStrictAddress says. */
function address(text: string, at: Path, d: Diagnostics): void {
  const a = parseStrictAddress(text);
  if ('error' in a) d.error(at, `"${text}" ${a.error}`, a.fix);
}

/** A node's name in the cluster: what its counters and trace events are kept under. */
function nodeName(text: string, at: Path, d: Diagnostics): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(text)) d.error(at, `"${text}" is not a node name`, 'use letters, digits, dots, hyphens and underscores, e.g. mx1 (each gateway its own)');
  return text;
}

/** An engine's URL (redis://…, postgres://…), or null. */
function engineUrl(text: string | null, schemes: readonly string[], at: Path, d: Diagnostics, example: string): string | null {
  if (text === null) return null;
  let u: URL | null = null;
  try {
    u = new URL(text);
  } catch {
    /* reported below */
  }
  if (!u || !schemes.includes(u.protocol) || !u.hostname) d.error(at, `"${text}" is not a ${schemes[0]!.replace(':', '')} URL`, `write e.g. ${example}`);
  return text;
}

/** A domain name, not a pattern (a signing or sealing domain): lower case. */
function exactDomain(text: string, at: Path, d: Diagnostics): string {
  const p = parseDomainPattern(text);
  if (typeof p === 'string') d.error(at, p);
  else if (p.kind !== 'exact') d.error(at, `"${text}" is a pattern: a domain name is needed here`, 'write the domain itself, e.g. contoso.com');
  return normalizeDomain(text);
}

/** A DKIM selector (RFC 6376 §3.1): dot-separated labels of letters, digits and hyphens. */
function selector(text: string, at: Path, d: Diagnostics): string {
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(text)) {
    d.error(at, `"${text}" is not a DKIM selector`, 'use letters, digits and hyphens, e.g. s2026');
  }
  return text;
}

function duration(value: string | number, at: Path, d: Diagnostics): number {
  const ms = parseDuration(value);
  if (ms === null) d.error(at, `"${value}" is not a duration`, 'write a number with a unit: 30s, 15m, 4h, 2d');
  return ms ?? 0;
}

/** "host", "host:port", "[ip]", "[ip]:port"; port defaults to 25. */
export function parseSmartHost(text: string): SmartHost | string {
  const t = text.trim();
  const bad = `"${text}" is not a smart host: use host, host:port, [ip] or [ip]:port`;
  let host: string;
  let portText: string | undefined;
  let literal = false;
  const br = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (br) {
    host = br[1]!;
    portText = br[2];
    literal = true;
    const a = parseStrictAddress(host);
    if ('error' in a) return `"${text}": the address in brackets ${a.error}; ${a.fix}`;
  } else {
    const m = /^([A-Za-z0-9._-]+)(?::(\d+))?$/.exec(t);
    if (!m) return bad;
    host = m[1]!;
    portText = m[2];
    const a = parseStrictAddress(host);
    if (!('error' in a)) literal = true;
    else if (a.loose) return `"${text}": ${host} ${a.error}; ${a.fix}`;
    else if (typeof parseDomainPattern(host) === 'string' || host.includes('*')) return bad;
  }
  const port = portText === undefined ? 25 : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return `"${text}": port must be 1-65535`;
  return { host: host.toLowerCase(), port, literal, text };
}

export function normalize(raw: RawPolicy, d: Diagnostics, baseDir: string): Policy {
  const file = (p: string | null) => (p === null ? null : path.resolve(baseDir, p));
  const g = raw.gateway;

  const listeners: ListenerSettings[] = g.listeners.map((l, i) => ({
    name: l.name,
    address: l.address,
    port: l.port,
    implicitTls: l.implicitTls,
    proxyProtocol: l.proxyProtocol === false ? false : ranges(l.proxyProtocol, ['gateway', 'listeners', i, 'proxyProtocol'], d),
  }));
  g.listeners.forEach((l, i) => address(l.address, ['gateway', 'listeners', i, 'address'], d));
  if (g.admin) address(g.admin.address, ['gateway', 'admin', 'address'], d);

  const maxMessageSize = parseSize(g.limits.maxMessageSize);
  if (maxMessageSize === null || maxMessageSize < 1024) {
    d.error(['gateway', 'limits', 'maxMessageSize'], `"${g.limits.maxMessageSize}" is not a size of at least 1KB`, 'write e.g. 35MB');
  }

  const q = g.queue;
  const policy: Policy = {
    gateway: {
      hostname: g.hostname,
      rejectDirectSend: g.rejectDirectSend,
      // auto: the first process (queue, delivery) keeps a core; the SMTP workers get the others.
      workers: g.workers === 'auto' ? availableParallelism() - 1 : g.workers,
      listeners,
      tls: {
        certificate: file(g.tls.certificate)!,
        key: file(g.tls.key)!,
        clientCertificateAuthorities: file(g.tls.clientCertificateAuthorities),
        minVersion: g.tls.minVersion,
      },
      queue: {
        directory: file(q.directory)!,
        retryIntervals: q.retryIntervals.map((v, i) => duration(v, ['gateway', 'queue', 'retryIntervals', i], d)),
        messageExpiration: duration(q.messageExpiration, ['gateway', 'queue', 'messageExpiration'], d),
        delayNotification: duration(q.delayNotification, ['gateway', 'queue', 'delayNotification'], d),
      },
      limits: {
        ...g.limits,
        maxMessageSize: maxMessageSize ?? 0,
        idleTimeout: duration(g.limits.idleTimeout, ['gateway', 'limits', 'idleTimeout'], d),
        // Default: a tenth of the slots are kept for the servers the connectors list (at least one).
        reservedConnections: Math.min(g.limits.reservedConnections ?? Math.max(1, Math.floor(g.limits.maxConnections / 10)), g.limits.maxConnections - 1),
        tlsHandshakeTimeout: duration(g.limits.tlsHandshakeTimeout, ['gateway', 'limits', 'tlsHandshakeTimeout'], d),
        minDataRate: parseSize(g.limits.minDataRate) ?? 0,
      },
      dns: g.dns,
      outbound: { smtpDaneMode: g.outbound.smtpDaneMode ?? 'opportunistic', smtpDaneModeExplicit: g.outbound.smtpDaneMode !== undefined, mtaStsMode: g.outbound.mtaStsMode, tlsReporting: g.outbound.tlsReporting },
      admin: g.admin ? { ...g.admin, tokenFile: file(g.admin.tokenFile) } : null,
      authentication: g.authentication
        ? {
            authservId: g.authentication.authservId ?? g.hostname,
            dmarc: g.authentication.dmarc,
            arcTrustedSealers: g.authentication.arcTrustedSealers.map((s, i) => exactDomain(s, ['gateway', 'authentication', 'arcTrustedSealers', i], d)),
            arcSeal: g.authentication.arcSeal
              ? { domain: exactDomain(g.authentication.arcSeal.domain, ['gateway', 'authentication', 'arcSeal', 'domain'], d), selector: selector(g.authentication.arcSeal.selector, ['gateway', 'authentication', 'arcSeal', 'selector'], d), privateKey: file(g.authentication.arcSeal.privateKey)! }
              : null,
          }
        : null,
      cluster: g.cluster
        ? {
            node: nodeName(g.cluster.node ?? hostname(), ['gateway', 'cluster', 'node'], d),
            redis: engineUrl(g.cluster.redis, ['redis:', 'rediss:'], ['gateway', 'cluster', 'redis'], d, 'redis://127.0.0.1:6379/0'),
            traceDatabase: engineUrl(g.cluster.traceDatabase, ['postgres:', 'postgresql:'], ['gateway', 'cluster', 'traceDatabase'], d, 'postgres://gateway@127.0.0.1/gateway'),
          }
        : null,
      trace: { retention: duration(g.trace.retention, ['gateway', 'trace', 'retention'], d) },
      log: g.log,
    },
    acceptedDomains: raw.acceptedDomains.map((a, i): AcceptedDomain => {
      const p = pattern(a.domain, ['acceptedDomains', i, 'domain'], d) ?? { kind: 'exact', name: '', text: a.domain };
      if (p.kind === 'any') d.error(['acceptedDomains', i, 'domain'], '"*" would make the gateway an open relay', 'list the domains you own');
      return { pattern: p, domainType: a.domainType, recipientVerification: a.recipientVerification, unverifiedRecipients: a.unverifiedRecipients };
    }),
    inboundConnectors: [],
    outboundConnectors: [],
    transportRules: [],
    dkimSigningConfigs: raw.dkimSigningConfigs.map((c, i) => ({
      domainName: exactDomain(c.domainName, ['dkimSigningConfigs', i, 'domainName'], d),
      selector: selector(c.selector, ['dkimSigningConfigs', i, 'selector'], d),
      privateKey: file(c.privateKey)!,
      enabled: c.enabled,
    })),
  };
  policy.inboundConnectors = raw.inboundConnectors.map((c, i): InboundConnector => {
    const at = ['inboundConnectors', i];
    const tlsSenderCertificateName = pattern(c.tlsSenderCertificateName, [...at, 'tlsSenderCertificateName'], d);
    const tlsCertificateAuthorities = file(c.tlsCertificateAuthorities);
    return {
      ...c,
      senderDomains: patterns(c.senderDomains, [...at, 'senderDomains'], d),
      senderIPAddresses: ranges(c.senderIPAddresses, [...at, 'senderIPAddresses'], d),
      tlsSenderCertificateName,
      tlsCertificateAuthorities,
      certificateAnchors: certificateAnchors(tlsSenderCertificateName, tlsCertificateAuthorities, policy.acceptedDomains),
    };
  });
  Object.assign(policy, {
    outboundConnectors: raw.outboundConnectors.map((c, i): OutboundConnector => {
      const at = ['outboundConnectors', i];
      const smartHosts: SmartHost[] = [];
      c.smartHosts.forEach((s, j) => {
        const h = parseSmartHost(s);
        if (typeof h === 'string') d.error([...at, 'smartHosts', j], h);
        else smartHosts.push(h);
      });
      return {
        ...c,
        recipientDomains: patterns(c.recipientDomains, [...at, 'recipientDomains'], d),
        smartHosts,
        tlsDomain: pattern(c.tlsDomain, [...at, 'tlsDomain'], d),
        tlsCertificateAuthorities: file(c.tlsCertificateAuthorities),
      };
    }),
    transportRules: rules(raw.transportRules, d),
  });
  return policy;
}

/**
 * Which trust anchors may vouch for a connector's certificate name: its own CA file when it names
 * one; for a name in our accepted domains, only the public roots (which check who owns a
 * domain) — a partner's CA, trusted gateway-wide for the partner's own names, must not be able
 * to issue exchange.contoso.com; otherwise any anchor the listener trusts (null).
 */
function certificateAnchors(name: DomainPattern | null, caFile: string | null, accepted: readonly AcceptedDomain[]): readonly string[] | null {
  if (caFile) return [caFile];
  if (name && isOurName(name, accepted)) return [PUBLIC_ROOTS];
  return null;
}

/**
 * A certificate name pattern within the namespace of one of our accepted domains: the domain
 * itself or any name below it (exchange.contoso.com is contoso.com's).
 */
export function isOurName(name: DomainPattern, accepted: readonly AcceptedDomain[]): boolean {
  if (name.kind === 'any') return true;
  return inOurDomains(name.kind === 'exact' ? name.name : `a${name.suffix}`, accepted);
}

type RawRule = RawPolicy['transportRules'][number];
type RawPredicates = RawRule['conditions'];

/** Longest pattern text accepted in headerMatches. */
const MAX_PATTERN = 1000;

function predicates(p: RawPredicates, at: Path, d: Diagnostics): RulePredicates {
  const lower = (list: string[] | undefined) => (list === undefined ? null : list.map((a) => a.trim().toLowerCase()));
  const headerMatches =
    p.headerMatches === undefined
      ? null
      : p.headerMatches.flatMap((h, i) => {
          const where = [...at, 'headerMatches', i, 'pattern'];
          if (h.pattern.length > MAX_PATTERN) {
            d.error(where, `the pattern is longer than ${MAX_PATTERN} characters`);
            return [];
          }
          // Patterns run on headers anyone on the internet writes: RE2 matches in linear time (no
          // backtracking, so no pattern can stall a session) and has no backreferences or lookaround.
          let re: RE2JS;
          try {
            re = RE2JS.compile(h.pattern, RE2JS.CASE_INSENSITIVE);
          } catch (e) {
            d.error(where, `not a valid RE2 regular expression: ${(e as Error).message}`, 'RE2 syntax has no backreferences (\\1) or lookaround ((?=…), (?<!…)); write e.g. "^Confidential"');
            return [];
          }
          return [{ name: h.name.trim().toLowerCase(), pattern: { test: (text: string) => re.matcher(text).find() }, text: h.pattern }];
        });
  let messageSizeOver: number | null = null;
  if (p.messageSizeOver !== undefined) {
    messageSizeOver = parseSize(p.messageSizeOver);
    if (messageSizeOver === null) d.error([...at, 'messageSizeOver'], `"${p.messageSizeOver}" is not a size`, 'write e.g. 10MB');
  }
  return {
    fromConnector: p.fromConnector ?? null,
    senderDomains: p.senderDomains === undefined ? null : patterns(p.senderDomains, [...at, 'senderDomains'], d),
    senderAddresses: lower(p.senderAddresses),
    recipientDomains: p.recipientDomains === undefined ? null : patterns(p.recipientDomains, [...at, 'recipientDomains'], d),
    recipientAddresses: lower(p.recipientAddresses),
    headerMatches,
    sentToScope: p.sentToScope ?? null,
    messageSizeOver,
  };
}

/** The rules in evaluation order: priority (default: the position in the file), then as listed. */
function rules(list: RawRule[], d: Diagnostics): TransportRule[] {
  const out = list.map((r, i): TransportRule => {
    const at: Path = ['transportRules', i];
    return {
      name: r.name,
      position: i,
      priority: r.priority ?? i,
      enabled: r.enabled,
      mode: r.mode,
      comment: r.comment,
      conditions: predicates(r.conditions, [...at, 'conditions'], d),
      exceptions: predicates(r.exceptions, [...at, 'exceptions'], d),
      actions: {
        routeMessageOutboundConnector: r.actions.routeMessageOutboundConnector ?? null,
        reject: r.actions.reject ?? null,
        setHeaders: Object.entries(r.actions.setHeaders ?? {}),
        removeHeaders: r.actions.removeHeaders ?? [],
        stopRuleProcessing: r.actions.stopRuleProcessing,
      },
    };
  });
  return out.map((r, i) => ({ r, i })).sort((a, b) => a.r.priority - b.r.priority || a.i - b.i).map((x) => x.r);
}
