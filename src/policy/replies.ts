// The reply table of SPEC §3, written once. Every SMTP refusal the gateway makes comes from here.

export interface Reply {
  code: number;
  enhanced: string;
  text: string;
}

export const replies = {
  tlsRequired: (): Reply => ({ code: 530, enhanced: '5.7.0', text: 'Must issue a STARTTLS command first' }),
  ipNotAllowed: (connector: string): Reply => ({
    code: 550,
    enhanced: '5.7.51',
    text: `TenantInboundAttribution; sender IP not allowed by connector ${connector}`,
  }),
  certificateRequired: (connector: string): Reply => ({
    code: 550,
    enhanced: '5.7.51',
    text: `TenantInboundAttribution; certificate required by connector ${connector}`,
  }),
  relayDenied: (): Reply => ({ code: 550, enhanced: '5.7.64', text: 'TenantAttribution; Relay Access Denied' }),
  /** gateway.rejectDirectSend: our domain as MAIL FROM, from a session no connector claims (Exchange Online's text). */
  directSendRejected: (): Reply => ({ code: 550, enhanced: '5.7.68', text: 'TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources' }),
  /** SPEC §11: dmarc: enforce, a DMARC failure under p=reject (Exchange Online's text). */
  dmarcReject: (domain: string): Reply => ({
    code: 550,
    enhanced: '5.7.509',
    text: `Access denied, sending domain ${domain} does not pass DMARC verification and has a DMARC policy of reject`,
  }),
  noRoute: (domain: string): Reply => ({ code: 451, enhanced: '4.4.0', text: `No route to ${domain}` }),
  throttled: (): Reply => ({ code: 451, enhanced: '4.7.500', text: 'Server busy, try again later' }),
  /** gateway.limits.maxConnections reached (across worker processes; smtp-server says the same within one). */
  tooManyConnections: (): Reply => ({ code: 421, enhanced: '4.7.0', text: 'Too many connected clients, try again in a moment' }),
  /** gateway.limits.hardErrorLimit refused commands in one session (Postfix's smtpd_hard_error_limit). */
  tooManyErrors: (): Reply => ({ code: 421, enhanced: '4.7.0', text: 'Too many errors, closing connection' }),
  /** DATA slower than gateway.limits.minDataRate (a session held open a byte at a time). */
  dataTooSlow: (): Reply => ({ code: 421, enhanced: '4.4.2', text: 'Data transfer too slow, closing connection' }),
  tooBig: (): Reply => ({ code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' }),
  headerTooBig: (): Reply => ({ code: 552, enhanced: '5.3.4', text: 'Message header size exceeds limit' }),
  leadingContinuation: (): Reply => ({ code: 550, enhanced: '5.6.0', text: 'Malformed header: the message begins with a continuation line' }),
  tooManyRecipients: (): Reply => ({ code: 452, enhanced: '4.5.3', text: 'Too many recipients' }),
  bareLineFeed: (what: 'LF' | 'CR'): Reply => ({
    code: 550,
    enhanced: '5.6.11',
    text: what === 'LF' ? 'Bare line feed not allowed' : 'Bare line feed not allowed (bare carriage return found)',
  }),
  requireTlsWithoutTls: (): Reply => ({ code: 530, enhanced: '5.7.10', text: 'REQUIRETLS requires TLS' }),
  nulCharacter: (): Reply => ({ code: 550, enhanced: '5.6.0', text: 'NUL characters not allowed' }),
  unsupportedParameter: (name: string): Reply => ({ code: 555, enhanced: '5.5.4', text: `Unsupported parameter ${name}` }),
  hopCountExceeded: (): Reply => ({ code: 554, enhanced: '5.4.6', text: 'Hop count exceeded - possible mail loop' }),
  unknownRecipient: (): Reply => ({ code: 550, enhanced: '5.4.1', text: 'Recipient address rejected: Access denied' }),
  /** Callout: the next hop cannot answer now and the address was never verified (Postfix's defer_if_permit). */
  unverifiedRecipient: (): Reply => ({ code: 450, enhanced: '4.1.1', text: 'Recipient address rejected: unverified address, try again later' }),
  badRecipientSyntax: (): Reply => ({ code: 501, enhanced: '5.1.3', text: 'Bad recipient address syntax' }),
  /** DATA with no recipient accepted: smtp-server answers this itself (its words); explain says it. */
  needRcpt: (): Reply => ({ code: 503, enhanced: '5.5.1', text: 'Error: need RCPT command' }),
  needMail: (): Reply => ({ code: 503, enhanced: '5.5.1', text: 'Error: need MAIL command' }),
  queued: (id: string): Reply => ({ code: 250, enhanced: '2.6.0', text: `Queued as ${id}` }),
  localError: (): Reply => ({ code: 451, enhanced: '4.3.0', text: 'Local error in processing, try again later' }),
  shuttingDown: (): Reply => ({ code: 421, enhanced: '4.3.2', text: 'Service shutting down, try again later' }),
} as const;

export function formatReply(r: Reply): string {
  return `${r.code} ${r.enhanced} ${r.text}`;
}
