// The shape of the policy file (SPEC §2). Strict objects: an unknown key is an error, because a
// typo must never silently weaken a policy. Values that need parsing (patterns, ranges,
// durations) are checked by normalize.ts, which knows their meaning.
import { z } from 'zod';

const str = z.string().min(1, 'must not be empty');
const duration = z.union([z.string(), z.number()]);
const size = z.union([z.string(), z.number()]);
const port = z.number().int().min(0).max(65535);

const listener = z.strictObject({
  name: str,
  address: str.default('0.0.0.0'),
  port,
  proxyProtocol: z.union([z.literal(false), z.array(z.string())]).default(false),
  implicitTls: z.boolean().default(false),
});

const gateway = z.strictObject({
  hostname: str,
  /** SPEC §11 Reject Direct Send: our domains as MAIL FROM only through a connector. */
  rejectDirectSend: z.boolean().default(false),
  /** SMTP worker processes sharing the listeners (node:cluster); "auto": one per core but one; 0: all in one process. */
  workers: z.union([z.literal('auto'), z.number().int().min(0).max(64)]).default('auto'),
  listeners: z.array(listener).min(1, 'at least one listener is needed'),
  tls: z.strictObject({
    certificate: str,
    key: str,
    clientCertificateAuthorities: str.nullable().default(null),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  }),
  queue: z
    .strictObject({
      directory: str.default('var/queue'),
      retryIntervals: z.array(duration).min(1).default(['1m', '5m', '15m', '30m', '1h']),
      messageExpiration: duration.default('2d'),
      delayNotification: duration.default('4h'),
    })
    .prefault({}),
  limits: z
    .strictObject({
      maxMessageSize: size.default('35MB'),
      maxRecipientsPerMessage: z.number().int().min(1).default(500),
      maxConnectionsPerIp: z.number().int().min(1).default(20),
      maxConnections: z.number().int().min(1).default(1000),
      idleTimeout: duration.default('2m'),
      maxMessagesPerMinutePerIp: z.number().int().min(1).default(600),
      reservedConnections: z.number().int().min(0).nullable().default(null),
      tlsHandshakeTimeout: duration.default('10s'),
      minDataRate: size.default('1KB'),
      hardErrorLimit: z.number().int().min(1).default(20),
    })
    .prefault({}),
  dns: z
    .strictObject({
      servers: z.array(z.string()).default([]),
      /** Trust the AD bit of servers that are not on loopback (SPEC §8). */
      dnssecTrusted: z.boolean().default(false),
    })
    .prefault({}),
  // Outbound security for MX delivery (SPEC §8): the defaults; an outbound connector may override.
  outbound: z
    .strictObject({
      smtpDaneMode: z.enum(['opportunistic', 'mandatory', 'none']).optional(),
      mtaStsMode: z.enum(['opportunistic', 'none']).default('opportunistic'),
      tlsReporting: z.boolean().default(true),
    })
    .prefault({}),
  admin: z.strictObject({ address: str.default('127.0.0.1'), port, tokenFile: str.nullable().default(null) }).nullable().default(null),
  /** Sender authentication of mail from outside (SPEC §11); absent: no checks. */
  authentication: z
    .strictObject({
      authservId: str.nullable().default(null),
      dmarc: z.enum(['enforce', 'audit', 'off']).default('enforce'),
      arcTrustedSealers: z.array(str).default([]),
      arcSeal: z.strictObject({ domain: str, selector: str, privateKey: str }).nullable().default(null),
    })
    .nullable()
    .default(null),
  /** Several gateways as one (SPEC §12): shared limits on Redis, one trace in PostgreSQL; absent: this node alone. */
  cluster: z
    .strictObject({
      node: str.nullable().default(null),
      redis: str.nullable().default(null),
      traceDatabase: str.nullable().default(null),
    })
    .nullable()
    .default(null),
  /** The message trace store (SPEC §10): how long messages are kept; 0 = no trace store. */
  trace: z.strictObject({ retention: duration.default('30d') }).prefault({}),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .prefault({}),
});

const connectorType = z.enum(['partner', 'onPremises']);

const acceptedDomain = z.strictObject({
  domain: str,
  domainType: z.enum(['authoritative', 'internalRelay']).default('authoritative'),
  recipientVerification: z.enum(['none', 'callout']).default('none'),
  unverifiedRecipients: z.enum(['defer', 'accept']).default('defer'),
});

const inboundConnector = z.strictObject({
  name: str,
  connectorType,
  enabled: z.boolean().default(true),
  senderDomains: z.array(z.string()).min(1).default(['*']),
  senderIPAddresses: z.array(z.string()).default([]),
  restrictDomainsToIPAddresses: z.boolean().default(false),
  requireTls: z.boolean().default(false),
  restrictDomainsToCertificate: z.boolean().default(false),
  tlsSenderCertificateName: str.nullable().default(null),
  tlsCertificateAuthorities: str.nullable().default(null),
  relayAnySenderDomain: z.boolean().default(false),
  maxMessagesPerMinute: z.number().int().min(1).nullable().default(null),
  mode: z.enum(['enforce', 'audit']).default('enforce'),
  cloudServicesMailEnabled: z.boolean().default(false),
  comment: z.string().default(''),
});

const outboundConnector = z.strictObject({
  name: str,
  connectorType,
  enabled: z.boolean().default(true),
  recipientDomains: z.array(z.string()).default([]),
  allAcceptedDomains: z.boolean().default(false),
  useMXRecord: z.boolean().default(false),
  smartHosts: z.array(z.string()).default([]),
  tlsSettings: z.enum(['encryptionOnly', 'certificateValidation', 'domainValidation']).nullable().default(null),
  tlsDomain: z.string().nullable().default(null),
  tlsCertificateAuthorities: str.nullable().default(null),
  cloudServicesMailEnabled: z.boolean().default(false),
  isTransportRuleScoped: z.boolean().default(false),
  smtpDaneMode: z.enum(['opportunistic', 'mandatory', 'none']).nullable().default(null),
  mtaStsMode: z.enum(['opportunistic', 'none']).nullable().default(null),
  comment: z.string().default(''),
});

// Mail flow rules (SPEC §9). Each list is "any of"; the predicates given must all hold
// (conditions), or any one of them skips the rule (exceptions).
const rulePredicates = z.strictObject({
  fromConnector: z.array(str).optional(),
  senderDomains: z.array(z.string()).optional(),
  senderAddresses: z.array(z.string()).optional(),
  recipientDomains: z.array(z.string()).optional(),
  recipientAddresses: z.array(z.string()).optional(),
  headerMatches: z.array(z.strictObject({ name: str, pattern: str })).optional(),
  sentToScope: z.enum(['inOrganization', 'notInOrganization']).optional(),
  messageSizeOver: size.optional(),
});

const transportRule = z.strictObject({
  name: str,
  priority: z.number().int().min(0).optional(),
  enabled: z.boolean().default(true),
  mode: z.enum(['enforce', 'audit']).default('enforce'),
  comment: z.string().default(''),
  conditions: rulePredicates.prefault({}),
  exceptions: rulePredicates.prefault({}),
  actions: z.strictObject({
    routeMessageOutboundConnector: str.optional(),
    reject: z.strictObject({ code: z.number().int().min(400).max(599), enhanced: str, text: str }).optional(),
    setHeaders: z.record(z.string(), z.string()).optional(),
    removeHeaders: z.array(str).optional(),
    stopRuleProcessing: z.boolean().default(false),
  }),
});

const dkimSigningConfig = z.strictObject({
  domainName: str,
  selector: str,
  privateKey: str,
  enabled: z.boolean().default(true),
});

export const policySchema = z.strictObject({
  gateway,
  acceptedDomains: z.array(acceptedDomain).default([]),
  inboundConnectors: z.array(inboundConnector).default([]),
  outboundConnectors: z.array(outboundConnector).default([]),
  transportRules: z.array(transportRule).default([]),
  /** Outbound DKIM signing (SPEC §11), New-DkimSigningConfig: one entry per domain and key. */
  dkimSigningConfigs: z.array(dkimSigningConfig).default([]),
});

export type RawPolicy = z.infer<typeof policySchema>;
