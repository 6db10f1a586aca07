// The queue's pure decisions (queue/schedule.ts) and the delivery failure table (delivery/status.ts).
import { describe, expect, it } from 'vitest';
import { afterAttempt, planAttempt, retryInterval, type QueueSettings } from '../../src/queue/schedule.js';
import { classifyConnectionFailure, outcomes, type ConnectionFacts, type RecipientOutcome } from '../../src/delivery/status.js';
import type { Envelope } from '../../src/queue/spool.js';
import { policyOf } from './policy-helpers.js';

const MIN = 60_000;
const settings: QueueSettings = { retryIntervals: [1 * MIN, 5 * MIN, 15 * MIN], messageExpiration: 2 * 24 * 60 * MIN, delayNotification: 4 * 60 * MIN };
const T0 = Date.parse('2026-11-24T00:00:00Z');

function envelope(recipients: Array<Partial<Envelope['recipients'][number]> & { address: string }>, extra: Partial<Envelope> = {}): Envelope {
  return {
    version: 1,
    id: '0000000000ABCDEF0123',
    receivedAt: new Date(T0).toISOString(),
    sender: 'alice@contoso.com',
    recipients: recipients.map((r) => ({ status: 'pending', connector: null, attempts: 0, ...r })),
    size: 100,
    bodyType: '7bit',
    smtpUtf8: false,
    client: { ip: '127.0.0.2', helo: 'x', sessionId: 's', connector: null, tls: null },
    ...extra,
  };
}
const delivered: RecipientOutcome = { status: 'delivered', code: '2.0.0', detail: 'sink said: 250 OK', remote: 'sink' };
const deferred: RecipientOutcome = { status: 'deferred', code: '4.4.316', detail: 'connection refused' };
const failed: RecipientOutcome = { status: 'failed', code: '5.1.1', detail: 'sink said: 550 5.1.1 no such user', remote: 'sink' };

describe('afterAttempt', () => {
  it('all delivered: done, no report; the input envelope is not changed', () => {
    const env = envelope([{ address: 'a@x.test' }, { address: 'b@x.test' }]);
    const d = afterAttempt(env, [{ address: 'a@x.test', connector: 'c', outcome: delivered }, { address: 'b@x.test', connector: 'c', outcome: delivered }], T0 + MIN, settings);
    expect(d.next).toEqual({ done: true });
    expect(d.dsns).toEqual([]);
    expect(d.envelope.recipients.map((r) => [r.status, r.attempts])).toEqual([['delivered', 1], ['delivered', 1]]);
    expect(env.recipients[0]!.status).toBe('pending');
    expect(d.events.map((e) => e.event)).toEqual(['delivered', 'delivered']);
  });

  it('deferred: the next attempt follows retryIntervals, the last repeating', () => {
    let env = envelope([{ address: 'a@x.test' }]);
    const ats: number[] = [];
    for (let i = 0; i < 4; i++) {
      const d = afterAttempt(env, [{ address: 'a@x.test', connector: 'mx', outcome: deferred }], T0, settings);
      if (d.next.done) throw new Error('done');
      ats.push((d.next.at - T0) / MIN);
      env = d.envelope;
    }
    expect(ats).toEqual([1, 5, 15, 15]);
    expect(retryInterval(settings, 99)).toBe(15 * MIN);
  });

  it('a permanent failure: one failed DSN; mixed with a delivery, the message is done', () => {
    const env = envelope([{ address: 'a@x.test' }, { address: 'b@x.test' }]);
    const d = afterAttempt(env, [{ address: 'a@x.test', connector: 'c', outcome: delivered }, { address: 'b@x.test', connector: 'c', outcome: failed }], T0, settings);
    expect(d.next).toEqual({ done: true });
    expect(d.dsns).toEqual([{ kind: 'failed', recipients: [expect.objectContaining({ address: 'b@x.test', status: '5.1.1' })] }]);
  });

  it('NOTIFY decides the reports; the null sender gets none', () => {
    const env = envelope([{ address: 'n@x.test', notify: ['NEVER'] }, { address: 's@x.test', notify: ['SUCCESS'] }, { address: 'f@x.test' }]);
    const results = [
      { address: 'n@x.test', connector: 'c', outcome: failed },
      { address: 's@x.test', connector: 'c', outcome: delivered },
      { address: 'f@x.test', connector: 'c', outcome: failed },
    ];
    const d = afterAttempt(env, results, T0, settings);
    expect(d.dsns.map((x) => [x.kind, x.recipients.map((r) => r.address)])).toEqual([['failed', ['f@x.test']], ['relayed', ['s@x.test']]]);
    expect(d.suppressed).toEqual([{ reason: 'NOTIFY', recipients: ['n@x.test'] }]);
    const bounce = afterAttempt({ ...env, sender: '' }, results, T0, settings);
    expect(bounce.dsns).toEqual([]);
    expect(bounce.suppressed.map((s) => s.reason)).toEqual(['NOTIFY', 'null sender']);
  });

  it('NOTIFY=SUCCESS to a next hop that offers DSN: no "relayed" report from us', () => {
    const env = envelope([{ address: 's@x.test', notify: ['SUCCESS'] }]);
    const d = afterAttempt(env, [{ address: 's@x.test', connector: 'c', outcome: { ...delivered, dsnPassed: true } }], T0, settings);
    expect(d.dsns).toEqual([]);
  });

  it('one delayed DSN once delayNotification has passed, never twice', () => {
    const env = envelope([{ address: 'a@x.test' }]);
    const at = T0 + 5 * 60 * MIN;
    const d1 = afterAttempt(env, [{ address: 'a@x.test', connector: 'mx', outcome: deferred }], at, settings);
    expect(d1.dsns.map((x) => x.kind)).toEqual(['delayed']);
    expect(d1.dsns[0]!.recipients[0]!.status).toBe('4.4.316');
    const d2 = afterAttempt(d1.envelope, [{ address: 'a@x.test', connector: 'mx', outcome: deferred }], at + MIN, settings);
    expect(d2.dsns).toEqual([]);
  });

  it('expiry: pending recipients fail with 4.4.7 and the last result', () => {
    const env = envelope([{ address: 'a@x.test', lastResult: '4.4.316 connection refused', attempts: 9 }], { delayNotified: true });
    const d = afterAttempt(env, [], T0 + 3 * 24 * 60 * MIN, settings);
    expect(d.next).toEqual({ done: true });
    expect(d.events).toEqual([expect.objectContaining({ event: 'bounced', expired: true, code: '4.4.7', last: '4.4.316 connection refused' })]);
    expect(d.dsns[0]!.recipients[0]!.diagnostic).toMatch(/^message expired after 4320 minutes in the queue; last result: 4.4.316/);
  });
});

describe('planAttempt', () => {
  const policy = policyOf({
    acceptedDomains: [{ domain: 'contoso.com' }, { domain: 'orphan.com' }],
    outboundConnectors: [
      { name: 'OnPrem', connectorType: 'onPremises', recipientDomains: ['contoso.com'], smartHosts: ['[127.0.0.1]:2626'] },
      { name: 'Partner MX', connectorType: 'partner', recipientDomains: ['*.partner.test'], useMXRecord: true },
    ],
  });
  it('one group per destination; an accepted domain without a connector has no route (4.4.0)', () => {
    const env = envelope([{ address: 'a@contoso.com' }, { address: 'b@contoso.com' }, { address: 'c@orphan.com' }, { address: 'd@gmail.test' }, { address: 'e@x.partner.test' }, { address: 'f@y.partner.test' }, { address: 'g@contoso.com', status: 'delivered' }]);
    const plan = planAttempt(env, policy);
    expect(plan.groups.map((g) => [g.key, g.routeName, g.recipients])).toEqual([
      ['connector:OnPrem', 'OnPrem', ['a@contoso.com', 'b@contoso.com']],
      ['mx:gmail.test', 'mx', ['d@gmail.test']],
      ['connector:Partner MX:x.partner.test', 'Partner MX', ['e@x.partner.test']],
      ['connector:Partner MX:y.partner.test', 'Partner MX', ['f@y.partner.test']],
    ]);
    expect(plan.decided).toEqual([{ address: 'c@orphan.com', outcome: outcomes.noRoute('orphan.com') }]);
    expect(outcomes.noRoute('orphan.com')).toEqual({ status: 'deferred', code: '4.4.0', detail: 'No route to orphan.com' });
  });
});

describe('classifyConnectionFailure', () => {
  const base: ConnectionFacts = { tlsRequired: false, secure: false, stage: 'connect', timedOut: false, systemCode: null, replyCode: null, certificate: null, description: 'd' };
  const code = (f: Partial<ConnectionFacts>) => classifyConnectionFailure({ ...base, ...f }).code;
  it('each fact pattern has its Exchange code', () => {
    expect(code({ systemCode: 'ECONNREFUSED' })).toBe('4.4.316');
    expect(code({ timedOut: true })).toBe('4.4.315');
    expect(code({ stage: 'starttls', timedOut: true })).toBe('4.4.315');
    expect(code({ stage: 'starttls', replyCode: 454, tlsRequired: true })).toBe('4.4.317');
    expect(code({ stage: 'starttls', systemCode: 'ECONNRESET', tlsRequired: true })).toBe('4.4.317');
    expect(code({ stage: 'starttls', certificate: { problem: 'chain', reason: 'CERT_HAS_EXPIRED' } })).toBe('4.7.320');
    expect(code({ stage: 'starttls', certificate: { problem: 'name', reason: 'GW_CERT_NAME' } })).toBe('4.7.320');
    expect(code({ stage: 'session', tlsRequired: true, secure: false })).toBe('4.4.317');
    expect(code({ stage: 'session', systemCode: 'ECONNRESET', secure: true })).toBe('4.4.318');
    expect(code({})).toBe('4.4.318');
  });
  it('the reason is kept in the detail', () => {
    expect(classifyConnectionFailure({ ...base, certificate: { problem: 'chain', reason: 'CERT_HAS_EXPIRED' } }).detail).toContain('chain: CERT_HAS_EXPIRED');
  });
});

describe('queue retry ID (Postfix postqueue -i): an extra try, not a step of the schedule (issue 21)', () => {
  it('a deferral of the operator\'s retry keeps the attempt count and the attempt already scheduled', () => {
    const before = envelope([{ address: 'a@x.test', attempts: 2 }], { nextAttemptAt: new Date(T0 + 10 * MIN).toISOString() });
    const d = afterAttempt(before, [{ address: 'a@x.test', connector: 'c', outcome: deferred }], T0 + MIN, settings, { operatorRetry: true });
    expect(d.envelope.recipients[0]!.attempts).toBe(2);
    expect(d.next).toEqual({ done: false, at: T0 + 10 * MIN });
    expect(d.envelope.recipients[0]!.lastResult).toBe('4.4.316 connection refused'); // what it said is kept
    const normal = afterAttempt(before, [{ address: 'a@x.test', connector: 'c', outcome: deferred }], T0 + MIN, settings);
    expect(normal.envelope.recipients[0]!.attempts).toBe(3);
    expect(normal.next).toEqual({ done: false, at: T0 + MIN + 15 * MIN });
  });
});
