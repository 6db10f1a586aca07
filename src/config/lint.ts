// Cross-field checks of SPEC §2 (what the schema alone cannot see), and the TLS files.
import fs from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import type { InboundConnector, Policy, RulePredicates } from '../policy/types.js';
import { acceptedDomainFor } from '../policy/accepted.js';
import { isValidDomainName } from '../policy/match.js';
import { normalizeDomain } from '../mail/address.js';
import { dnssecTrust } from '../policy/outbound-security.js';
import { parseDnsServer } from '../mail/dns-server.js';
import { Diagnostics, type Path } from './diagnostics.js';
import { isOurName } from './normalize.js';
import { inOurDomains } from '../policy/organization.js';

const key = (list: readonly { text: string }[]) => list.map((x) => x.text.toLowerCase()).sort().join(',');

export function lint(p: Policy, d: Diagnostics): void {
  if (!isValidDomainName(normalizeDomain(p.gateway.hostname))) {
    d.error(['gateway', 'hostname'], `"${p.gateway.hostname}" is not a host name`, 'write the name the gateway is known by in DNS, e.g. mx1.contoso.com');
  }
  const bound = new Map<string, number>();
  p.gateway.listeners.forEach((l, i) => {
    if (l.port === 0) d.warn(['gateway', 'listeners', i, 'port'], 'port 0: the listener gets a random free port (meant for tests); MX and smart-host traffic needs a fixed one', 'write 25 (or 2525 when not root)');
    const at = `${l.address}:${l.port}`;
    const twin = bound.get(at);
    if (twin !== undefined && l.port !== 0) d.error(['gateway', 'listeners', i, 'port'], `listeners[${twin}] already listens on ${at}`, 'give each listener its own address and port');
    bound.set(at, i);
  });
  p.gateway.listeners.forEach((l, i) => {
    if (l.proxyProtocol && l.implicitTls) {
      d.error(['gateway', 'listeners', i, 'proxyProtocol'], 'the PROXY protocol is supported on STARTTLS listeners only', 'terminate implicit TLS on a listener without proxyProtocol, or use STARTTLS behind the load balancer');
    }
  });
  lintInbound(p, d);
  lintOutbound(p, d);
  lintRules(p, d);
  lintOutboundSecurity(p, d);
  lintSigning(p, d);
  const domains = new Map<string, number>();
  p.acceptedDomains.forEach((a, i) => {
    const k = a.pattern.text.toLowerCase().replace(/\.$/, '');
    const first = domains.get(k);
    if (first !== undefined) d.error(['acceptedDomains', i, 'domain'], `${a.pattern.text} is already listed as acceptedDomains[${first}]`, 'list each domain once');
    else domains.set(k, i);
  });
  p.acceptedDomains.forEach((a, i) => {
    if (a.recipientVerification === 'callout' && a.domainType === 'internalRelay') {
      d.warn(['acceptedDomains', i, 'recipientVerification'], 'callout has no effect on an internalRelay domain: every recipient is relayed unverified', 'make the domain authoritative, or remove recipientVerification');
    }
  });
}

// Sender authentication and signing (SPEC §11).
function lintSigning(p: Policy, d: Diagnostics): void {
  const seen = new Map<string, number>();
  p.dkimSigningConfigs.forEach((c, i) => {
    const at: Path = ['dkimSigningConfigs', i];
    const k = `${c.selector}._domainkey.${c.domainName}`;
    const first = seen.get(k);
    if (first !== undefined) d.error([...at, 'selector'], `dkimSigningConfigs[${first}] already signs with ${k}`, 'give each key its own selector (e.g. one for RSA, one for Ed25519)');
    seen.set(k, i);
    if (!inOurDomains(c.domainName, p.acceptedDomains)) {
      d.warn([...at, 'domainName'], `${c.domainName} is not one of our accepted domains: only mail whose From is in it is signed, and Reject Direct Send does not protect it`, 'sign for the domains you own (acceptedDomains)');
    }
  });
}

/** Reports every connector whose name an earlier one already has. */
function uniqueNames(list: ReadonlyArray<{ name: string }>, direction: string, d: Diagnostics): void {
  const seen = new Set<string>();
  list.forEach((c, i) => {
    if (seen.has(c.name)) d.error([direction, i, 'name'], `connector name "${c.name}" is used twice`, 'give each connector its own name');
    seen.add(c.name);
  });
}

function lintInbound(p: Policy, d: Diagnostics): void {
  const scopes = new Map<string, string>();
  uniqueNames(p.inboundConnectors, 'inboundConnectors', d);
  p.inboundConnectors.forEach((c, i) => {
    const at: Path = ['inboundConnectors', i];
    if (c.restrictDomainsToIPAddresses && !c.senderIPAddresses.length) {
      d.error([...at, 'restrictDomainsToIPAddresses'], 'restrictDomainsToIPAddresses needs senderIPAddresses', 'list the partner\'s IP ranges in senderIPAddresses');
    }
    if (c.restrictDomainsToCertificate && !c.tlsSenderCertificateName) {
      d.error([...at, 'restrictDomainsToCertificate'], 'restrictDomainsToCertificate needs tlsSenderCertificateName', 'name the certificate the partner presents');
    }
    if (c.connectorType === 'partner' && c.senderIPAddresses.length && c.tlsSenderCertificateName) {
      d.error([...at, 'tlsSenderCertificateName'], 'a partner connector identifies by IP addresses or by certificate, not both', 'split it into two connectors');
    }
    if (c.connectorType === 'onPremises' && !c.senderIPAddresses.length && !c.tlsSenderCertificateName) {
      d.error(at, 'an onPremises connector must be identified by senderIPAddresses or tlsSenderCertificateName', 'list your servers\' IP ranges or their certificate name');
    }
    if (c.connectorType === 'onPremises' && (c.restrictDomainsToIPAddresses || c.restrictDomainsToCertificate)) {
      d.warn(at, 'restrictDomainsTo* only acts on partner connectors; an onPremises connector is identified by IP or certificate already');
    }
    if (c.tlsSenderCertificateName && !c.restrictDomainsToCertificate && c.connectorType === 'partner') {
      d.warn([...at, 'tlsSenderCertificateName'], 'tlsSenderCertificateName without restrictDomainsToCertificate only identifies the partner; it refuses nothing', 'add restrictDomainsToCertificate: true to refuse mail without the certificate');
    }
    if (c.mode === 'audit' && c.enabled) d.warn([...at, 'mode'], 'connector is in audit mode: refusals are logged, not enforced');
    if (c.relayAnySenderDomain) {
      d.warn(
        [...at, 'relayAnySenderDomain'],
        c.connectorType === 'onPremises' ? 'relayAnySenderDomain: whatever comes from these servers may relay as any domain, not only ours' : 'relayAnySenderDomain only acts on onPremises connectors',
        c.connectorType === 'onPremises' ? 'keep it for applications that must send as other domains; fix their sender otherwise' : 'remove it',
      );
    }
    if (c.tlsCertificateAuthorities && !c.tlsSenderCertificateName) {
      d.warn([...at, 'tlsCertificateAuthorities'], 'tlsCertificateAuthorities without tlsSenderCertificateName vouches for nothing', 'name the certificate the connector\'s servers present');
    }
    // Our own names: a private CA must be named on the connector (a partner CA in the gateway-wide
    // list cannot vouch for them — else a partner could mint exchange.contoso.com and relay anywhere).
    const ours = c.tlsSenderCertificateName !== null && isOurName(c.tlsSenderCertificateName, p.acceptedDomains);
    if (ours && !c.tlsCertificateAuthorities && p.gateway.tls.clientCertificateAuthorities) {
      d.warn(
        [...at, 'tlsSenderCertificateName'],
        `${c.tlsSenderCertificateName!.text} is in an accepted domain: only a certificate from a public CA is accepted for it, not one from gateway.tls.clientCertificateAuthorities (the partners' CAs)`,
        'name the CA of your own servers in tlsCertificateAuthorities on this connector',
      );
    }
    if (ours && c.tlsCertificateAuthorities) {
      const partners = p.inboundConnectors.filter((o) => o !== c && o.tlsCertificateAuthorities === c.tlsCertificateAuthorities && o.tlsSenderCertificateName && !isOurName(o.tlsSenderCertificateName, p.acceptedDomains));
      const gatewayWide = p.gateway.tls.clientCertificateAuthorities === c.tlsCertificateAuthorities;
      if (partners.length || gatewayWide) {
        d.warn(
          [...at, 'tlsCertificateAuthorities'],
          `${c.tlsCertificateAuthorities} vouches for our own ${c.tlsSenderCertificateName!.text} and for ${gatewayWide ? 'every partner (gateway.tls.clientCertificateAuthorities)' : `partner connector(s) ${partners.map((o) => o.name).join(', ')}`}: whoever that CA certifies could be this connector`,
          'give your own servers a CA of their own',
        );
      }
    }
    if (c.cloudServicesMailEnabled && c.connectorType !== 'onPremises') {
      d.warn([...at, 'cloudServicesMailEnabled'], 'cloudServicesMailEnabled only acts on onPremises connectors: Exchange organization headers from partners are always removed');
    }
    if (!c.enabled) return;
    const scope = `${c.connectorType}|${key(c.senderDomains)}|${key(c.senderIPAddresses)}|${c.tlsSenderCertificateName?.text.toLowerCase() ?? ''}`;
    const twin = scopes.get(scope);
    if (twin) d.error(at, `duplicate of connector "${twin}": two enabled inbound connectors with the same scope break attribution`, 'merge them or disable one');
    else scopes.set(scope, c.name);
  });
  // An onPremises range that overlaps a partner's: mail from there may relay anywhere (rule 1),
  // whatever the partner connector says — usually a typo in one of the two.
  p.inboundConnectors.forEach((c, i) => {
    if (!c.enabled || c.connectorType !== 'onPremises') return;
    for (const r of c.senderIPAddresses) {
      for (const o of p.inboundConnectors) {
        if (!o.enabled || o.connectorType !== 'partner') continue;
        const hit = o.senderIPAddresses.find((x) => x.v6 === r.v6 && x.lo <= r.hi && r.lo <= x.hi);
        if (hit) {
          d.warn(['inboundConnectors', i, 'senderIPAddresses'], `${r.text} overlaps ${hit.text} of partner connector "${o.name}": from there the onPremises connector wins and mail may relay anywhere`, 'make the ranges disjoint');
          return;
        }
      }
    }
  });
  // A sender-domain-only partner connector that a restricting connector for the same domains always overrides.
  const restricting = new Map<string, string>();
  for (const o of p.inboundConnectors) {
    if (o.enabled && o.connectorType === 'partner' && (o.restrictDomainsToIPAddresses || o.restrictDomainsToCertificate)) restricting.set(key(o.senderDomains), o.name);
  }
  p.inboundConnectors.forEach((c, i) => {
    if (!c.enabled || c.connectorType !== 'partner' || c.senderIPAddresses.length || c.tlsSenderCertificateName) return;
    const over = restricting.get(key(c.senderDomains));
    if (over && over !== c.name) d.warn(['inboundConnectors', i], `connector "${over}" restricts the same sender domains and will always override this one`);
  });
}

function lintOutbound(p: Policy, d: Diagnostics): void {
  const owner = new Map<string, string>();
  uniqueNames(p.outboundConnectors, 'outboundConnectors', d);
  p.outboundConnectors.forEach((c, i) => {
    const at: Path = ['outboundConnectors', i];
    if (c.tlsDomain && c.tlsSettings !== 'domainValidation') {
      d.error([...at, 'tlsDomain'], 'tlsDomain only applies with tlsSettings: domainValidation', 'set tlsSettings: domainValidation or remove tlsDomain');
    }
    if (!c.useMXRecord && !c.smartHosts.length) d.error([...at, 'useMXRecord'], 'useMXRecord: false needs smartHosts', 'list smartHosts or set useMXRecord: true');
    if (c.cloudServicesMailEnabled && c.connectorType !== 'onPremises') {
      d.warn([...at, 'cloudServicesMailEnabled'], 'cloudServicesMailEnabled only acts on onPremises connectors: Exchange organization headers are always removed on the way to partners');
    }
    // A rule-scoped connector takes no part in domain routing: its recipientDomains are not a scope.
    if (c.isTransportRuleScoped) return;
    if (c.useMXRecord && c.smartHosts.length) d.error([...at, 'smartHosts'], 'smartHosts are ignored with useMXRecord: true', 'remove smartHosts or set useMXRecord: false');
    if (!c.recipientDomains.length && !c.allAcceptedDomains) {
      d.error(at, 'the connector has no recipientDomains and allAcceptedDomains is false: it is never selected', 'list recipientDomains');
      return;
    }
    if (!c.enabled) return;
    // Ties go to the connector listed first (SPEC §4): a scope listed twice is shadowed in the later one.
    const mine = c.recipientDomains.map((r, j) => ({ k: r.text.toLowerCase(), at: [...at, 'recipientDomains', j] as Path }));
    if (c.allAcceptedDomains) mine.push({ k: '(allAcceptedDomains)', at: [...at, 'allAcceptedDomains'] });
    let shadowed = 0;
    for (const m of mine) {
      const first = owner.get(m.k);
      if (first) {
        shadowed++;
        d.error(m.at, `${m.k} is already routed by connector "${first}", which wins: duplicate scopes break delivery`, 'remove it from one of the two connectors');
      } else owner.set(m.k, c.name);
    }
    if (shadowed && shadowed === mine.length) d.error(at, 'this connector is shadowed: every domain it lists is routed by an earlier connector, so it is never selected');
  });
}

// ---------------------------------------------------------------------------------------
// Resolvers and outbound security (SPEC §8).

function lintOutboundSecurity(p: Policy, d: Diagnostics): void {
  p.gateway.dns.servers.forEach((s, i) => {
    if (!parseDnsServer(s)) d.error(['gateway', 'dns', 'servers', i], `"${s}" is not a DNS server address`, 'write an IP address, optionally with a port: 127.0.0.1, 127.0.0.1:5353, [::1]:53');
  });
  p.outboundConnectors.forEach((c, i) => {
    if (c.smtpDaneMode !== null && !c.useMXRecord) d.error(['outboundConnectors', i, 'smtpDaneMode'], 'smtpDaneMode applies to MX routes only; smart hosts keep their tlsSettings', 'set useMXRecord: true, or remove smtpDaneMode');
    if (c.mtaStsMode !== null && !c.useMXRecord) d.error(['outboundConnectors', i, 'mtaStsMode'], 'mtaStsMode applies to MX routes only; smart hosts keep their tlsSettings', 'set useMXRecord: true, or remove mtaStsMode');
  });
  // Said when DANE was asked for, or resolvers were configured that cannot be trusted for it; a
  // policy that names no resolver at all (development) is not told (the start-up log says it).
  const asked =
    (p.gateway.outbound.smtpDaneMode !== 'none' && (p.gateway.outbound.smtpDaneModeExplicit || p.gateway.dns.servers.length > 0)) || p.outboundConnectors.some((c) => c.smtpDaneMode && c.smtpDaneMode !== 'none');
  const trust = dnssecTrust(p);
  if (asked && !trust.trusted) {
    d.warn(['gateway', 'dns', 'servers'], `DANE is not in effect: ${trust.why}`, 'run a DNSSEC-validating resolver (unbound) on loopback and list it in gateway.dns.servers; see docs/outbound-security.md');
  }
}

// ---------------------------------------------------------------------------------------
// Mail flow rules (SPEC §9): references, replies, header names, rules that can never match.

const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/; // RFC 5322 field name: printable, no colon
const OURS = /^x-gateway-/i;

function lintRules(p: Policy, d: Diagnostics): void {
  const inbound = new Map(p.inboundConnectors.map((c) => [c.name, c]));
  const outbound = new Map(p.outboundConnectors.map((c) => [c.name, c]));
  const routedTo = new Set<string>();
  const seen = new Set<string>();
  for (const r of p.transportRules) {
    const at: Path = ['transportRules', r.position];
    if (seen.has(r.name)) d.error([...at, 'name'], `rule name "${r.name}" is used twice`, 'give each rule its own name');
    seen.add(r.name);
    for (const [kind, preds] of [['conditions', r.conditions], ['exceptions', r.exceptions]] as const) {
      (preds.fromConnector ?? []).forEach((name, j) => {
        if (!inbound.has(name)) d.error([...at, kind, 'fromConnector', j], `no inbound connector is named "${name}"`, `inbound connectors: ${[...inbound.keys()].join(', ') || 'none'}`);
      });
      (preds.headerMatches ?? []).forEach((h, j) => {
        if (!HEADER_NAME.test(h.name)) d.error([...at, kind, 'headerMatches', j, 'name'], `"${h.name}" is not a header field name`);
      });
    }
    const a = r.actions;
    const target = a.routeMessageOutboundConnector;
    if (target !== null) {
      const c = outbound.get(target);
      if (!c) d.error([...at, 'actions', 'routeMessageOutboundConnector'], `no outbound connector is named "${target}"`, `outbound connectors: ${[...outbound.keys()].join(', ') || 'none'}`);
      else if (!c.enabled) d.error([...at, 'actions', 'routeMessageOutboundConnector'], `outbound connector "${target}" is disabled`, 'enable it, or route to another connector');
      if (r.enabled) routedTo.add(target);
    }
    if (a.reject) {
      const e = /^([45])\.\d{1,3}\.\d{1,3}$/.exec(a.reject.enhanced);
      if (!e) d.error([...at, 'actions', 'reject', 'enhanced'], `"${a.reject.enhanced}" is not an enhanced status code`, 'write e.g. 5.7.1');
      else if (e[1] !== String(a.reject.code)[0]) d.error([...at, 'actions', 'reject', 'enhanced'], `enhanced code ${a.reject.enhanced} does not agree with reply code ${a.reject.code}`, 'a 5xx reply takes a 5.x.x code, a 4xx reply a 4.x.x code');
      if (/[\r\n]/.test(a.reject.text)) d.error([...at, 'actions', 'reject', 'text'], 'the reply text must be one line');
    }
    a.setHeaders.forEach(([name, value]) => {
      if (!HEADER_NAME.test(name)) d.error([...at, 'actions', 'setHeaders', name], `"${name}" is not a header field name`);
      else if (OURS.test(name)) d.error([...at, 'actions', 'setHeaders', name], `X-Gateway-* headers are the gateway's own and cannot be set by a rule`);
      if (/[\r\n]/.test(value)) d.error([...at, 'actions', 'setHeaders', name], 'a header value must be one line');
    });
    a.removeHeaders.forEach((name, j) => {
      if (!HEADER_NAME.test(name)) d.error([...at, 'actions', 'removeHeaders', j], `"${name}" is not a header field name`);
      else if (OURS.test(name)) d.error([...at, 'actions', 'removeHeaders', j], `X-Gateway-* headers are the gateway's own and cannot be removed by a rule`);
    });
    if (!target && !a.reject && !a.setHeaders.length && !a.removeHeaders.length && !a.stopRuleProcessing) {
      d.warn([...at, 'actions'], 'the rule has no action: it only logs that it matched');
    }
    if (r.mode === 'audit' && r.enabled) d.warn([...at, 'mode'], 'rule is in audit mode: what it would do is logged, not done');
    const never = neverMatches(r.conditions, p, inbound);
    if (r.enabled && never) d.warn([...at, 'conditions'], `the rule can never match: ${never}`);
  }
  p.outboundConnectors.forEach((c, i) => {
    if (c.enabled && c.isTransportRuleScoped && !routedTo.has(c.name)) {
      d.warn(['outboundConnectors', i, 'isTransportRuleScoped'], `no enabled rule routes to "${c.name}": being rule-scoped, it takes no mail`, 'add a rule with routeMessageOutboundConnector, or set isTransportRuleScoped: false');
    }
  });
}

/** Why conditions can never all hold, or null. */
function neverMatches(c: RulePredicates, p: Policy, inbound: Map<string, InboundConnector>): string | null {
  for (const key of ['fromConnector', 'senderDomains', 'senderAddresses', 'recipientDomains', 'recipientAddresses', 'headerMatches'] as const) {
    if (c[key]?.length === 0) return `${key} is an empty list (each list means "any of")`;
  }
  if (c.fromConnector && c.fromConnector.every((n) => inbound.get(n)?.enabled === false)) return 'every connector in fromConnector is disabled';
  if (c.recipientDomains && c.sentToScope) {
    const accepted = (d: RulePredicates['recipientDomains'] & object) => d.every((x) => x.kind === 'exact' && acceptedDomainFor(p.acceptedDomains, x.name));
    const outside = (d: RulePredicates['recipientDomains'] & object) => d.every((x) => x.kind === 'exact' && !acceptedDomainFor(p.acceptedDomains, x.name));
    if (c.sentToScope === 'inOrganization' && outside(c.recipientDomains)) return 'sentToScope is inOrganization but no recipientDomains entry is an accepted domain';
    if (c.sentToScope === 'notInOrganization' && accepted(c.recipientDomains)) return 'sentToScope is notInOrganization but every recipientDomains entry is an accepted domain';
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Files: existence, readability, certificate validity, key match.

function readFile(file: string, at: Path, what: string, d: Diagnostics): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint =
      code === 'EACCES'
        ? `the gateway runs as a user who cannot read it (uid ${process.getuid?.() ?? '?'}): give that user the file (a key stays 0600), e.g. chown 999 for the container's user`
        : what === 'certificate' || what === 'key'
          ? 'run `connector-gateway dev-certs` for development certificates, or point to your PEM files'
          : what === 'signing key'
            ? 'correct the path, or generate the key: `openssl genpkey -algorithm ed25519 -out FILE` (publish its public key as the selector\'s DKIM record)'
            : undefined;
    d.error(at, `${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`, hint);
    return null;
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Parses every certificate of a PEM bundle; reports an error when there is none. */
export function certificatesOf(pem: string): X509Certificate[] {
  return (pem.match(PEM_CERT) ?? []).map((c) => new X509Certificate(c));
}

export function lintFiles(p: Policy, d: Diagnostics, now = new Date()): void {
  const t = p.gateway.tls;
  const certPem = readFile(t.certificate, ['gateway', 'tls', 'certificate'], 'certificate', d);
  const keyPem = readFile(t.key, ['gateway', 'tls', 'key'], 'key', d);
  let leaf: X509Certificate | null = null;
  if (certPem !== null) {
    try {
      const chain = certificatesOf(certPem);
      if (!chain.length) throw new Error('no PEM certificate in the file');
      leaf = chain[0]!;
      checkValidity(leaf, ['gateway', 'tls', 'certificate'], `certificate ${t.certificate}`, d, now);
    } catch (e) {
      d.error(['gateway', 'tls', 'certificate'], `certificate ${t.certificate}: ${(e as Error).message}`);
    }
  }
  if (keyPem !== null) {
    try {
      const k = createPrivateKey(keyPem);
      if (leaf && !leaf.checkPrivateKey(k)) {
        d.error(['gateway', 'tls', 'key'], `key ${t.key} does not match certificate ${t.certificate}`, 'use the key the certificate was issued for');
      }
    } catch (e) {
      d.error(['gateway', 'tls', 'key'], `key ${t.key}: not a readable private key (${(e as Error).message})`);
    }
  }
  const keys: Array<[string, Path]> = p.dkimSigningConfigs.map((c, i) => [c.privateKey, ['dkimSigningConfigs', i, 'privateKey']]);
  const seal = p.gateway.authentication?.arcSeal;
  if (seal) keys.push([seal.privateKey, ['gateway', 'authentication', 'arcSeal', 'privateKey']]);
  for (const [file, at] of keys) {
    const pem = readFile(file, at, 'signing key', d);
    if (pem === null) continue;
    const problem = signingKeyProblem(pem);
    if (problem) d.error(at, `signing key ${file}: ${problem}`, 'generate one: `openssl genpkey -algorithm ed25519` or `openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:2048`');
  }
  const tokenFile = p.gateway.admin?.tokenFile;
  if (tokenFile) {
    const token = readFile(tokenFile, ['gateway', 'admin', 'tokenFile'], 'admin token file', d);
    if (token !== null && adminToken(token).length < 16) {
      d.error(['gateway', 'admin', 'tokenFile'], `admin token file ${tokenFile}: the token is shorter than 16 characters`, 'write a long random token, e.g. `openssl rand -hex 32 > FILE`');
    }
  }
  const caFiles: Array<[string | null, Path]> = [[t.clientCertificateAuthorities, ['gateway', 'tls', 'clientCertificateAuthorities']]];
  p.inboundConnectors.forEach((c, i) => caFiles.push([c.tlsCertificateAuthorities, ['inboundConnectors', i, 'tlsCertificateAuthorities']]));
  p.outboundConnectors.forEach((c, i) => caFiles.push([c.tlsCertificateAuthorities, ['outboundConnectors', i, 'tlsCertificateAuthorities']]));
  for (const [file, at] of caFiles) {
    if (!file) continue;
    const pem = readFile(file, at, 'certificate authorities', d);
    if (pem === null) continue;
    try {
      const cas = certificatesOf(pem);
      if (!cas.length) d.error(at, `${file}: no PEM certificate in the file`);
      for (const ca of cas) checkValidity(ca, at, `CA "${ca.subject.replace(/\n/g, ', ')}" in ${file}`, d, now);
    } catch (e) {
      d.error(at, `${file}: ${(e as Error).message}`);
    }
  }
}

/** Why a PEM private key cannot sign DKIM or ARC (RFC 8301: RSA of at least 2048 bits here; RFC 8463: Ed25519); null when it can. */
export function signingKeyProblem(pem: string): string | null {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e) {
    return `not a readable private key (${(e as Error).message})`;
  }
  if (key.asymmetricKeyType === 'ed25519') return null;
  if (key.asymmetricKeyType !== 'rsa') return `a ${key.asymmetricKeyType} key: DKIM signs with RSA or Ed25519`;
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  return bits < 2048 ? `an RSA key of ${bits} bits: at least 2048 are needed (receivers ignore shorter ones)` : null;
}

function checkValidity(cert: X509Certificate, at: Path, what: string, d: Diagnostics, now: Date): void {
  const to = new Date(cert.validTo);
  const from = new Date(cert.validFrom);
  if (to < now) d.error(at, `${what} expired on ${to.toISOString()}`, 'renew it');
  else if (from > now) d.error(at, `${what} is not valid before ${from.toISOString()}`);
  else if (to.getTime() - now.getTime() < 30 * 86_400_000) d.warn(at, `${what} expires on ${to.toISOString()}`, 'renew it soon');
}

/** The token in a token file: its first line, without surrounding white space. */
export function adminToken(text: string): string {
  return (text.split(/\r?\n/)[0] ?? '').trim();
}
