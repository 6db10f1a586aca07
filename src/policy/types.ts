// The policy as the engine sees it: plain, validated, compiled data (no I/O, no YAML).
import type { DomainPattern, IpRange } from './match.js';

export type ConnectorType = 'partner' | 'onPremises';
export type TlsSettings = null | 'encryptionOnly' | 'certificateValidation' | 'domainValidation';
export type DaneMode = 'opportunistic' | 'mandatory' | 'none';
export type MtaStsMode = 'opportunistic' | 'none';

export interface InboundConnector {
  name: string;
  connectorType: ConnectorType;
  enabled: boolean;
  senderDomains: DomainPattern[];
  senderIPAddresses: IpRange[];
  restrictDomainsToIPAddresses: boolean;
  requireTls: boolean;
  restrictDomainsToCertificate: boolean;
  tlsSenderCertificateName: DomainPattern | null;
  /** The CA file (PEM) this connector's client certificates must chain to; null: see certificateAnchors. */
  tlsCertificateAuthorities: string | null;
  /**
   * Derived at load: the trust anchors that may vouch for this connector's certificate name —
   * its own tlsCertificateAuthorities file; or, for a name in our accepted domains, only the
   * public roots (PUBLIC_ROOTS: a partner's CA in clientCertificateAuthorities cannot mint our
   * own identity); null: any anchor the listener trusts.
   */
  certificateAnchors: readonly string[] | null;
  /** onPremises: relay for any MAIL FROM domain, not only ours (SPEC §11; check warns). */
  relayAnySenderDomain: boolean;
  maxMessagesPerMinute: number | null;
  mode: 'enforce' | 'audit';
  /** onPremises only: X-MS-Exchange-Organization-* and kin from it are kept (SPEC §3 header firewall). */
  cloudServicesMailEnabled: boolean;
  comment: string;
}

export interface SmartHost {
  host: string; // a name or an IP literal (without brackets)
  port: number;
  literal: boolean; // "[ip]" form: no MX lookup
  text: string;
}

export interface OutboundConnector {
  name: string;
  connectorType: ConnectorType;
  enabled: boolean;
  recipientDomains: DomainPattern[];
  allAcceptedDomains: boolean;
  useMXRecord: boolean;
  smartHosts: SmartHost[];
  tlsSettings: TlsSettings;
  tlsDomain: DomainPattern | null;
  tlsCertificateAuthorities: string | null;
  /** onPremises only: Exchange organization headers pass on the way out (SPEC §3). */
  cloudServicesMailEnabled: boolean;
  /** Takes no part in domain routing; only mail flow rules send mail to it (SPEC §9). */
  isTransportRuleScoped: boolean;
  /** With useMXRecord: overrides gateway.outbound.smtpDaneMode; null = the gateway's. */
  smtpDaneMode: DaneMode | null;
  /** With useMXRecord: overrides gateway.outbound.mtaStsMode; null = the gateway's. */
  mtaStsMode: MtaStsMode | null;
  comment: string;
}

/** The predicates of a mail flow rule; null = not given (holds for conditions, never for exceptions). */
export interface RulePredicates {
  fromConnector: string[] | null;
  senderDomains: DomainPattern[] | null;
  senderAddresses: string[] | null; // lower-cased
  recipientDomains: DomainPattern[] | null;
  recipientAddresses: string[] | null; // lower-cased
  headerMatches: Array<{ name: string; pattern: HeaderPattern; text: string }> | null; // name lower-cased
  sentToScope: 'inOrganization' | 'notInOrganization' | null;
  messageSizeOver: number | null; // bytes
}

export interface TransportRule {
  name: string;
  /** Its index in the policy file's list (diagnostics). */
  position: number;
  priority: number;
  enabled: boolean;
  mode: 'enforce' | 'audit';
  comment: string;
  conditions: RulePredicates;
  exceptions: RulePredicates;
  actions: {
    routeMessageOutboundConnector: string | null;
    reject: { code: number; enhanced: string; text: string } | null;
    setHeaders: Array<[string, string]>;
    removeHeaders: string[];
    stopRuleProcessing: boolean;
  };
}

export interface AcceptedDomain {
  pattern: DomainPattern;
  domainType: 'authoritative' | 'internalRelay';
  recipientVerification: 'none' | 'callout';
  /**
   * With callout: a recipient the next hop cannot be asked about now (it is down) and that was
   * never verified within the positive lifetime — `defer` (450 4.1.1, Postfix's defer_if_permit)
   * or `accept` (queued unverified).
   */
  unverifiedRecipients: 'defer' | 'accept';
}

export interface ListenerSettings {
  name: string;
  address: string;
  port: number;
  proxyProtocol: IpRange[] | false;
  implicitTls: boolean;
}

export interface GatewaySettings {
  hostname: string;
  /** Reject Direct Send (SPEC §11): a session no connector claims may not use our domains as MAIL FROM (550 5.7.68). */
  rejectDirectSend: boolean;
  /** SMTP worker processes (node:cluster) sharing the listeners; 0 = everything in one process. */
  workers: number;
  listeners: ListenerSettings[];
  tls: {
    certificate: string;
    key: string;
    clientCertificateAuthorities: string | null;
    minVersion: 'TLSv1.2' | 'TLSv1.3';
  };
  queue: {
    directory: string;
    retryIntervals: number[]; // ms
    messageExpiration: number; // ms
    delayNotification: number; // ms, 0 = never
  };
  limits: {
    maxMessageSize: number; // bytes
    maxRecipientsPerMessage: number;
    maxConnectionsPerIp: number;
    maxConnections: number; // all clients together; beyond: 421
    idleTimeout: number; // ms without a complete command before the session is closed
    maxMessagesPerMinutePerIp: number;
    /** The last of maxConnections, kept for clients whose IP address a connector lists. */
    reservedConnections: number;
    /** ms an implicit-TLS client has to complete its handshake. */
    tlsHandshakeTimeout: number;
    /** Bytes per second DATA must average (after a grace of 30 s); slower: 421 4.4.2. */
    minDataRate: number;
    /** Refused commands in one session before it is closed with 421 4.7.0 (Postfix's smtpd_hard_error_limit). */
    hardErrorLimit: number;
  };
  dns: { servers: string[]; dnssecTrusted: boolean };
  outbound: {
    smtpDaneMode: DaneMode;
    /** smtpDaneMode was written in the policy (not the default): `check` then warns when DANE cannot be in effect. */
    smtpDaneModeExplicit: boolean;
    mtaStsMode: MtaStsMode;
    /** RFC 8460 reports of DANE and MTA-STS sessions to the domains that ask for them. */
    tlsReporting: boolean;
  };
  /** tokenFile: the bearer token /trace requires (GATEWAY_ADMIN_TOKEN overrides it). */
  admin: { address: string; port: number; tokenFile: string | null } | null;
  /** Sender authentication of mail from outside (SPEC §11); null: no checks. */
  authentication: AuthenticationSettings | null;
  /** SPEC §12: this node's name and the shared engines; null = the gateway runs alone (local counters, SQLite trace). */
  cluster: ClusterSettings | null;
  /** ms; 0 = no trace store. */
  trace: { retention: number };
  log: { level: string };
}

export type DmarcMode = 'enforce' | 'audit' | 'off';

export interface ClusterSettings {
  /** This node's name in the shared state and in every trace event (default: the host name). */
  node: string;
  /** redis:// or rediss:// URL: limits across nodes, dead destinations; null = each node its own. */
  redis: string | null;
  /** postgres:// URL: the one message trace; null = each node's SQLite trace. */
  traceDatabase: string | null;
}

export interface AuthenticationSettings {
  /** The authserv-id of our Authentication-Results (RFC 8601); gateway.hostname unless set. */
  authservId: string;
  /** enforce: p=reject refused (550 5.7.509), p=quarantine marked; audit: recorded only; off: no DMARC. */
  dmarc: DmarcMode;
  /** Lower-case domains whose intact ARC chain with a pass rescues a DMARC failure. */
  arcTrustedSealers: string[];
  /** Seal what comes from outside before it is relayed; privateKey is a file path. */
  arcSeal: { domain: string; selector: string; privateKey: string } | null;
}

/** New-DkimSigningConfig: the domain (lower case) whose header From is signed with this key. */
export interface DkimSigningConfig {
  domainName: string;
  selector: string;
  /** A file path: RSA of at least 2048 bits or Ed25519. */
  privateKey: string;
  enabled: boolean;
}

export interface Policy {
  gateway: GatewaySettings;
  acceptedDomains: AcceptedDomain[];
  inboundConnectors: InboundConnector[];
  outboundConnectors: OutboundConnector[];
  /** In evaluation order: priority, then as listed. */
  transportRules: TransportRule[];
  dkimSigningConfigs: DkimSigningConfig[];
}

/**
 * A mail flow rule's header pattern, compiled by the loader with a linear-time engine (RE2: no
 * backtracking, so no pattern can stall a session whatever header an attacker writes).
 */
export interface HeaderPattern {
  test(text: string): boolean;
}

/** The anchor name of the bundled public roots (a chain that ends at none of the operator's CA files). */
export const PUBLIC_ROOTS = 'public roots';
