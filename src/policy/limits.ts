// PURE. The limits of SPEC §3 (gateway.limits and a connector's maxMessagesPerMinute):
// counts in, a refusal or nothing out. The SMTP layer counts; these decide.
import { replies } from './replies.js';
import type { InboundRule, Refusal } from './inbound.js';
import type { GatewaySettings, InboundConnector } from './types.js';

type Limits = GatewaySettings['limits'];

const throttled = (connector: string | null): Refusal => ({ rule: 'throttle', connector, reply: replies.throttled() });

/** At connect: `open` sessions from this client IP and `total` from all, this one included (across worker processes). */
export function connectionLimit(limits: Limits, open: number, total = 0): Refusal | null {
  if (total > limits.maxConnections) return { rule: 'throttle', connector: null, reply: replies.tooManyConnections() };
  return open > limits.maxConnectionsPerIp ? throttled(null) : null;
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
