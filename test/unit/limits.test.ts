// The limit and end-of-DATA decisions (policy/limits.ts, policy/data.ts): counts in, a refusal out.
import { describe, expect, it } from 'vitest';
import { connectionLimit, messageRate, messageRateLimit, recipientLimit } from '../../src/policy/limits.js';
import { evaluateData, MAX_RECEIVED } from '../../src/policy/data.js';
import { unadvertisedParameter } from '../../src/policy/parameters.js';
import { formatReply } from '../../src/policy/replies.js';
import { policyOf } from './policy-helpers.js';

const policy = policyOf({
  inboundConnectors: [{ name: 'Bulk partner', connectorType: 'partner', senderDomains: ['bulk.test'], maxMessagesPerMinute: 6000 }],
});
const limits = { ...policy.gateway.limits, maxConnectionsPerIp: 2, maxMessagesPerMinutePerIp: 10, maxRecipientsPerMessage: 3 };
const bulk = policy.inboundConnectors[0]!;

describe('limits', () => {
  it('connections per IP: the one over the limit is throttled (451 4.7.500)', () => {
    expect(connectionLimit(limits, 2)).toBeNull();
    const r = connectionLimit(limits, 3);
    expect(r && formatReply(r.reply)).toBe('451 4.7.500 Server busy, try again later');
    expect(r?.rule).toBe('throttle');
  });
  it('messages per minute: the connector may raise the gateway limit', () => {
    expect(messageRateLimit(limits, null)).toBe(10);
    expect(messageRateLimit(limits, bulk)).toBe(6000);
    expect(messageRate(limits, null, 10)).toBeNull();
    expect(messageRate(limits, null, 10.5)?.connector).toBeNull();
    expect(messageRate(limits, bulk, 100)).toBeNull();
    expect(messageRate(limits, bulk, 6001)?.connector).toBe('Bulk partner');
  });
  it('recipients: the one after maxRecipientsPerMessage gets 452 4.5.3', () => {
    expect(recipientLimit(limits, 2)).toBeNull();
    expect(recipientLimit(limits, 3)?.reply.code).toBe(452);
  });
});

describe('MAIL and RCPT parameters', () => {
  it('what was advertised passes, anything else is named in a 555 5.5.4', () => {
    expect(unadvertisedParameter('MAIL', ['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID'], false, null)).toBeNull();
    expect(unadvertisedParameter('RCPT', ['NOTIFY', 'ORCPT'], true, null)).toBeNull();
    expect(formatReply(unadvertisedParameter('MAIL', ['SIZE', 'foo'], true, 'c')!.reply)).toBe('555 5.5.4 Unsupported parameter FOO');
    expect(unadvertisedParameter('MAIL', ['REQUIRETLS'], true, null)).toBeNull(); // offered after STARTTLS
    expect(unadvertisedParameter('MAIL', ['REQUIRETLS'], false, null)?.rule).toBe('parameter');
    expect(unadvertisedParameter('RCPT', ['SIZE'], true, null)?.reply.text).toBe('Unsupported parameter SIZE');
  });
});

describe('end of DATA', () => {
  const facts = { sizeExceeded: false, nul: false, bareLineEnding: null, receivedHeaders: 0, headerTooLarge: false, leadingContinuation: false } as const;
  it('accepts a clean message; refuses size first, then bare line endings, then loops', () => {
    expect(evaluateData(facts, null)).toBeNull();
    expect(evaluateData({ ...facts, receivedHeaders: MAX_RECEIVED }, null)).toBeNull();
    expect(evaluateData({ ...facts, sizeExceeded: true, nul: true, bareLineEnding: 'LF', receivedHeaders: 99 }, 'c')?.rule).toBe('size');
    expect(formatReply(evaluateData({ ...facts, headerTooLarge: true, nul: true }, 'c')!.reply)).toBe('552 5.3.4 Message header size exceeds limit');
    expect(formatReply(evaluateData({ ...facts, leadingContinuation: true, receivedHeaders: 99 }, 'c')!.reply)).toBe('550 5.6.0 Malformed header: the message begins with a continuation line');
    expect(formatReply(evaluateData({ ...facts, nul: true, bareLineEnding: 'LF' }, 'c')!.reply)).toBe('550 5.6.0 NUL characters not allowed');
    expect(evaluateData({ ...facts, bareLineEnding: 'LF', receivedHeaders: 99 }, 'c')?.rule).toBe('bare-lf');
    expect(formatReply(evaluateData({ ...facts, bareLineEnding: 'CR' }, 'c')!.reply)).toBe('550 5.6.11 Bare line feed not allowed (bare carriage return found)');
    expect(formatReply(evaluateData({ ...facts, receivedHeaders: MAX_RECEIVED + 1 }, 'c')!.reply)).toBe('554 5.4.6 Hop count exceeded - possible mail loop');
  });
});

describe('slot exhaustion (issue 20, item 11)', async () => {
  const { connectionLimit, dataRate, errorLimit, sessionLimits, underStress } = await import('../../src/policy/limits.js');
  const limits = { maxMessageSize: 1, maxRecipientsPerMessage: 5, maxConnectionsPerIp: 3, maxConnections: 100, idleTimeout: 120_000, maxMessagesPerMinutePerIp: 10, reservedConnections: 10, tlsHandshakeTimeout: 10_000, minDataRate: 1024, hardErrorLimit: 20 };
  it('the last reservedConnections are for clients a connector lists', () => {
    expect(connectionLimit(limits, 1, 90, false)).toBeNull();
    expect(formatReply(connectionLimit(limits, 1, 91, false)!.reply)).toBe('421 4.7.0 Too many connected clients, try again in a moment');
    expect(connectionLimit(limits, 1, 100, true)).toBeNull();
    expect(connectionLimit(limits, 1, 101, true)!.reply.code).toBe(421);
    expect(formatReply(connectionLimit(limits, 4, 10, true)!.reply)).toBe('451 4.7.500 Server busy, try again later');
  });
  it('stress from half the connections: 10 s idle and one error, as Postfix', () => {
    expect(underStress(limits, 49)).toBe(false);
    expect(underStress(limits, 50)).toBe(true);
    expect(sessionLimits(limits, false)).toEqual({ idleTimeout: 120_000, hardErrorLimit: 20 });
    expect(sessionLimits(limits, true)).toEqual({ idleTimeout: 10_000, hardErrorLimit: 1 });
  });
  it('the hard error limit', () => {
    expect(errorLimit(19, 20)).toBeNull();
    expect(formatReply(errorLimit(20, 20)!.reply)).toBe('421 4.7.0 Too many errors, closing connection');
  });
  it('DATA must average minDataRate after its grace', () => {
    expect(dataRate(limits, 29_000, 0)).toBeNull(); // grace
    expect(dataRate(limits, 40_000, 40 * 1024)).toBeNull();
    expect(formatReply(dataRate(limits, 40_000, 4)!.reply)).toBe('421 4.4.2 Data transfer too slow, closing connection');
    expect(dataRate({ ...limits, idleTimeout: 3000 }, 4000, 4)).not.toBeNull(); // the grace is at most the idle timeout
  });
});
