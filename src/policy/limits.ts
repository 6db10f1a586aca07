// PURE. The limits of SPEC §3 (gateway.limits and a connector's maxMessagesPerMinute):
// counts in, a refusal or nothing out. The SMTP layer counts; these decide.
import { replies } from './replies.js';
import type { InboundRule, Refusal } from './inbound.js';
import type { GatewaySettings, InboundConnector } from './types.js';

type Limits = GatewaySettings['limits'];

const throttled = (connector: string | null): Refusal => ({ rule: 'throttle', connector, reply: replies.throttled() });

/**
 * At connect: `open` sessions from this client IP and `total` from all, this one included (across
 * worker processes). The last reservedConnections of maxConnections are kept for clients whose IP
 * address a connector lists (`listed`): 2,000 idle connections from the internet must not lock
 * out the on-premises servers.
 */
export function connectionLimit(limits: Limits, open: number, total = 0, listed = false): Refusal | null {
  if (total > limits.maxConnections) return { rule: 'throttle', connector: null, reply: replies.tooManyConnections() };
  if (!listed && total > limits.maxConnections - limits.reservedConnections) return { rule: 'throttle', connector: null, reply: replies.tooManyConnections() };
  return open > limits.maxConnectionsPerIp ? throttled(null) : null;
}

/** Postfix's stress mode: from half of maxConnections on, new sessions get shorter limits. */
export function underStress(limits: Limits, total: number): boolean {
  return total * 2 >= limits.maxConnections;
}

/** What a new session may take: its idle timeout and its refused commands before it is closed. */
export function sessionLimits(limits: Limits, stressed: boolean): { idleTimeout: number; hardErrorLimit: number } {
  // Under stress as Postfix: smtpd_timeout 10s, smtpd_hard_error_limit 1.
  return stressed ? { idleTimeout: Math.min(limits.idleTimeout, 10_000), hardErrorLimit: 1 } : { idleTimeout: limits.idleTimeout, hardErrorLimit: limits.hardErrorLimit };
}

/** After a refused command: `errors` refusals so far in the session. At the limit the session ends (421 4.7.0). */
export function errorLimit(errors: number, hardErrorLimit: number): Refusal | null {
  return errors >= hardErrorLimit ? { rule: 'error-limit', connector: null, reply: replies.tooManyErrors() } : null;
}

/**
 * A DATA phase may take its time for its first 30 s (or the idle timeout, if shorter); after that
 * it must average minDataRate bytes a second — one byte every 10 s keeps a session idle-proof, not
 * rate-proof.
 */
export const DATA_RATE_GRACE_MS = 30_000;

export function dataRate(limits: Limits, elapsedMs: number, bytes: number): Refusal | null {
  if (elapsedMs < Math.min(DATA_RATE_GRACE_MS, limits.idleTimeout) || limits.minDataRate <= 0) return null;
  return bytes < (limits.minDataRate * elapsedMs) / 1000 ? { rule: 'data-rate', connector: null, reply: replies.dataTooSlow() } : null;
}

/** The messages per minute a client may send: its connector's own limit, else the gateway's. */
export function messageRateLimit(limits: Limits, connector: InboundConnector | null): number {
  return connector?.maxMessagesPerMinute ?? limits.maxMessagesPerMinutePerIp;
}

/** At MAIL FROM: `rate` messages in the last minute from this client IP, this one included. */
export function messageRate(limits: Limits, connector: InboundConnector | null, rate: number): Refusal | null {
  return rate > messageRateLimit(limits, connector) ? throttled(connector?.name ?? null) : null;
}

/** At RCPT TO: `accepted` recipients so far in this transaction. */
export function recipientLimit(limits: Limits, accepted: number, connector: string | null = null): Refusal | null {
  const rule: InboundRule = 'recipient-limit';
  return accepted >= limits.maxRecipientsPerMessage ? { rule, connector, reply: replies.tooManyRecipients() } : null;
}
