// The callout decision (policy/verification.ts) and the envelope decisions (policy/envelope.ts).
import { describe, expect, it } from 'vitest';
import { calloutDecision, POSITIVE_LIFETIME_MS } from '../../src/policy/verification.js';
import { queuedRoute, tlsFlags } from '../../src/policy/envelope.js';

const now = Date.parse('2026-12-06T12:00:00Z');
const defer = { unverifiedRecipients: 'defer' as const };
const accept = { unverifiedRecipients: 'accept' as const };

describe('calloutDecision', () => {
  it.each([
    ['valid → accepted', { result: 'valid', lastValidAt: null }, defer, 'accept'],
    ['invalid → 550 5.4.1, whatever was known before', { result: 'invalid', lastValidAt: now - 1000 }, accept, '550 5.4.1'],
    ['unknown, verified an hour ago → accepted', { result: 'unknown', lastValidAt: now - 3_600_000 }, defer, 'accept'],
    ['unknown, verified 31 days ago to the millisecond → accepted', { result: 'unknown', lastValidAt: now - POSITIVE_LIFETIME_MS }, defer, 'accept'],
    ['unknown, verified 31 days and a second ago → 450 4.1.1', { result: 'unknown', lastValidAt: now - POSITIVE_LIFETIME_MS - 1000 }, defer, '450 4.1.1'],
    ['unknown, never verified → 450 4.1.1', { result: 'unknown', lastValidAt: null }, defer, '450 4.1.1'],
    ['unknown, never verified, unverifiedRecipients: accept → accepted', { result: 'unknown', lastValidAt: null }, accept, 'accept'],
  ] as const)('%s', (_what, facts, domain, want) => {
    const d = calloutDecision(facts, domain, 'Internet', now);
    expect(d.accept ? 'accept' : `${d.refusal.reply.code} ${d.refusal.reply.enhanced}`).toBe(want);
  });
  it('says why it accepted, and names the rule when it refuses', () => {
    expect(calloutDecision({ result: 'unknown', lastValidAt: now }, defer, null, now)).toEqual({ accept: true, why: 'verified-before' });
    expect(calloutDecision({ result: 'unknown', lastValidAt: null }, defer, 'P', now)).toMatchObject({ accept: false, refusal: { rule: 'unverified-recipient', connector: 'P' } });
  });
});

describe('envelope decisions', () => {
  const h = (name: string, value: string) => ({ name, value });
  it('REQUIRETLS wins over TLS-Required: No (RFC 8689 §5)', () => {
    expect(tlsFlags(true, [h('TLS-Required', 'No')])).toEqual({ requireTls: true });
    expect(tlsFlags(false, [h('tls-required', ' no ')])).toEqual({ tlsRequiredNo: true });
    expect(tlsFlags(false, [h('TLS-Required', 'Yes')])).toEqual({});
  });
  it("a mail flow rule's route comes before the route chosen at RCPT", () => {
    expect(queuedRoute({ rule: 'Legal', connector: 'Archive' }, 'Onprem')).toEqual({ connector: 'Archive', rule: { name: 'Legal', connector: 'Archive' } });
    expect(queuedRoute(undefined, 'Onprem')).toEqual({ connector: 'Onprem' });
    expect(queuedRoute(undefined, undefined)).toEqual({ connector: null });
  });
});

describe('honouredDsn: reports to unproven senders (issue 20, item 6)', async () => {
  const { honouredNotify, honouredRet, senderProven } = await import('../../src/policy/envelope.js');
  const honouredDsn = (proven: boolean, ret: 'FULL' | 'HDRS' | null, notify: Array<'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY'> | undefined) => ({ ret: honouredRet(proven, ret), notify: honouredNotify(proven, notify) });
  it('a proven sender gets what it asked for', () => {
    expect(honouredDsn(true, 'FULL', ['SUCCESS', 'FAILURE', 'DELAY'])).toEqual({ ret: 'FULL', notify: ['SUCCESS', 'FAILURE', 'DELAY'] });
  });
  it.each([
    ['FULL', ['SUCCESS', 'FAILURE'], 'HDRS', ['FAILURE']],
    ['FULL', ['SUCCESS'], 'HDRS', ['NEVER']],
    ['HDRS', ['DELAY'], 'HDRS', ['NEVER']],
    [null, ['NEVER'], null, ['NEVER']],
    [null, undefined, null, undefined], // no NOTIFY: the default (failures, and the delay notice)
  ] as const)('unproven: RET=%s NOTIFY=%j → %s %j', (ret, notify, wantRet, wantNotify) => {
    expect(honouredDsn(false, ret, notify as never)).toEqual({ ret: wantRet, notify: wantNotify });
  });
  it('proven means identified by IP or certificate, not by sender domain alone', () => {
    expect(senderProven({ identifiedBy: 'ip' })).toBe(true);
    expect(senderProven({ identifiedBy: 'certificate' })).toBe(true);
    expect(senderProven({ identifiedBy: 'senderDomain' })).toBe(false);
    expect(senderProven({ identifiedBy: null })).toBe(false);
  });
});
