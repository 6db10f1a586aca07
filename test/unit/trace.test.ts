// The message trace store (trace/store.ts) fed with log lines, and its search words (trace/query.ts).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TraceStore } from '../../src/trace/store.js';
import { parseTime, parseTraceQuery } from '../../src/trace/query.js';
import { tmpDir } from '../helpers/gateway.js';

const line = (o: Record<string, unknown>) => JSON.stringify({ level: 'info', time: '2026-11-24T10:00:00.000Z', svc: 'connector-gateway', ...o }) + '\n';

describe('TraceStore', () => {
  it('keeps each message with its recipients, status and timeline; searches by every key', () => {
    const store = new TraceStore(path.join(tmpDir('trace'), 'trace.sqlite'));
    store.push(line({ event: 'queued', qid: 'Q1', sid: 's1', ip: '127.0.0.2', sender: 'a@contoso.com', recipients: ['B@partner.test', 'c@partner.test'], size: 100, connector: 'OnPrem', tls: 'TLSv1.3', messageId: 'm1@contoso.com' }));
    store.push(line({ event: 'connect', sid: 's1' })); // not traced
    store.push(line({ event: 'delivered', qid: 'Q1', recipient: 'B@partner.test', connector: 'To Partner', result: 'sink said: 250 OK', time: '2026-11-24T10:00:01.000Z' }));
    store.push(line({ event: 'deferred', qid: 'Q1', recipient: 'c@partner.test', code: '4.4.316', result: 'connection refused', time: '2026-11-24T10:00:02.000Z' }));
    store.push(line({ event: 'queued', qid: 'Q2', sender: 'x@fabrikam.com', recipients: ['d@contoso.com'], size: 5, connector: null, tls: null, messageId: null, time: '2026-11-20T10:00:00.000Z' }));
    store.push(line({ event: 'bounced', qid: 'Q2', recipient: 'd@contoso.com', code: '5.1.1', result: 'no such user', time: '2026-11-20T10:00:01.000Z' }));
    store.push(line({ event: 'dsn', qid: 'D1', original: 'Q2', kind: 'failed', to: 'x@fabrikam.com', time: '2026-11-20T10:00:02.000Z' }));
    store.push('not json\n');
    store.flush();
    expect(store.search({ sender: 'A@contoso.com' }).map((m) => [m.qid, m.status])).toEqual([['Q1', 'deferred']]);
    expect(store.search({ recipient: 'b@partner.test' })[0]).toMatchObject({ qid: 'Q1', connector: 'OnPrem', tls: 'TLSv1.3', clientIp: '127.0.0.2', messageId: 'm1@contoso.com', recipients: [{ address: 'b@partner.test', status: 'delivered' }, { address: 'c@partner.test', status: 'deferred', detail: '4.4.316 connection refused' }] });
    expect(store.search({ messageId: '<m1@contoso.com>' }).map((m) => m.qid)).toEqual(['Q1']);
    expect(store.search({ status: 'failed' }).map((m) => m.qid)).toEqual(['Q2']);
    expect(store.search({ since: Date.parse('2026-11-23T00:00:00Z') }).map((m) => m.qid)).toEqual(['Q1']);
    expect(store.search({ until: Date.parse('2026-11-23T00:00:00Z') }).map((m) => m.qid)).toEqual(['Q2']);
    expect(store.timeline('Q1').map((e) => [e.event, e.recipient])).toEqual([['queued', null], ['delivered', 'B@partner.test'], ['deferred', 'c@partner.test']]);
    // The operator's hold and release of one message are in its timeline (observe/events.ts).
    store.push(line({ event: 'held', qid: 'Q1', messages: 1, time: '2026-11-24T10:00:03.000Z' }));
    store.push(line({ event: 'released', qid: 'Q1', messages: 1, time: '2026-11-24T10:00:04.000Z' }));
    store.push(line({ event: 'held', messages: 7 })); // a hold of every message names none: not one message's story
    store.flush();
    expect(store.timeline('Q1').map((e) => e.event).slice(-2)).toEqual(['held', 'released']);
    expect(store.timeline('Q2').map((e) => e.event)).toEqual(['queued', 'bounced', 'dsn-sent']);
    // Retention: what is older goes, events and recipients with it.
    expect(store.purge(2 * 86_400_000, Date.parse('2026-11-24T12:00:00Z'))).toBe(1);
    expect(store.search({}).map((m) => m.qid)).toEqual(['Q1']);
    expect(store.timeline('Q2')).toEqual([]);
    store.close();
  });
});

describe('trace search words', () => {
  const now = Date.parse('2026-11-24T12:00:00Z');
  it('times: dates, date-times, or how long ago', () => {
    expect(parseTime('24h', now)).toBe(now - 86_400_000);
    expect(parseTime('2026-11-24', now)).toBe(Date.parse('2026-11-24'));
    expect(() => parseTime('yesterdayish', now)).toThrow(/not a time/);
  });
  it('reads the options, refuses bad ones', () => {
    const q = parseTraceQuery((n) => ({ sender: 'a@b.c', since: '1d', status: 'delivered', limit: '5' })[n], now);
    expect(q).toEqual({ sender: 'a@b.c', since: now - 86_400_000, status: 'delivered', limit: 5 });
    expect(() => parseTraceQuery((n) => (n === 'status' ? 'lost' : undefined))).toThrow(/status "lost"/);
    expect(() => parseTraceQuery((n) => (n === 'limit' ? '0' : undefined))).toThrow(/limit/);
  });
});
