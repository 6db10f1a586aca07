// The scheduler's pure parts: a destination's health (queue/destinations.ts) and the heap and
// FIFO it keeps its messages in (queue/heap.ts).
import { describe, expect, it } from 'vitest';
import { admit, afterDestinationAttempt, deadDestinations, UNKNOWN, type DestinationHealth } from '../../src/queue/destinations.js';
import { Fifo, MinHeap } from '../../src/queue/heap.js';
import type { QueueSettings } from '../../src/queue/schedule.js';

const MIN = 60_000;
const settings: QueueSettings = { retryIntervals: [1 * MIN, 5 * MIN, 15 * MIN], messageExpiration: 2 * 24 * 60 * MIN, delayNotification: 4 * 60 * MIN };
const down = { unreachable: true as const, code: '4.4.316', detail: 'connection refused' };
const up = { unreachable: false as const };

describe('destination health', () => {
  it('unknown: one delivery at a time (slow start); alive: perDestination', () => {
    expect(admit(UNKNOWN, 0, 0, 20)).toBe('attempt');
    expect(admit(UNKNOWN, 0, 1, 20)).toBe('wait');
    const alive = afterDestinationAttempt(UNKNOWN, up, 0, settings, false);
    expect(alive.health.state).toBe('alive');
    expect(alive.event).toBeNull();
    expect(admit(alive.health, 0, 19, 20)).toBe('attempt');
    expect(admit(alive.health, 0, 20, 20)).toBe('wait');
  });

  it('every hop unusable: dead; parked until the probe time; one probe at a time; probes follow the retry intervals', () => {
    const dead = afterDestinationAttempt(UNKNOWN, down, 1000, settings, false);
    expect(dead.health).toMatchObject({ state: 'dead', failures: 1, since: 1000, probeAt: 1000 + MIN, last: { code: '4.4.316' } });
    expect(dead.event).toEqual({ event: 'destination-dead', failures: 1, probeAt: 1000 + MIN });
    expect(admit(dead.health, 1000 + MIN - 1, 0, 20)).toBe('park');
    expect(admit(dead.health, 1000 + MIN, 0, 20)).toBe('probe');
    expect(admit(dead.health, 1000 + MIN, 1, 20)).toBe('park');
    // An attempt that was in flight when it died fails too: the next probe does not move.
    expect(afterDestinationAttempt(dead.health, down, 2000, settings, false)).toEqual({ health: dead.health, event: null });
    const again = afterDestinationAttempt(dead.health, down, 1000 + MIN, settings, true);
    expect(again.health).toMatchObject({ state: 'dead', failures: 2, since: 1000, probeAt: 1000 + MIN + 5 * MIN });
    expect(again.event?.event).toBe('destination-still-dead');
    const third = afterDestinationAttempt(again.health, down, 10 * MIN, settings, true);
    expect(third.health.probeAt).toBe(10 * MIN + 15 * MIN);
    const fourth = afterDestinationAttempt(third.health, down, 30 * MIN, settings, true);
    expect(fourth.health.probeAt).toBe(30 * MIN + 15 * MIN); // the last interval repeats
  });

  it('any success revives it, and says for how long it was down', () => {
    const dead = afterDestinationAttempt(UNKNOWN, down, 1000, settings, false).health;
    const back = afterDestinationAttempt(dead, up, 1000 + 3 * MIN, settings, true);
    expect(back.health.state).toBe('alive');
    expect(back.event).toEqual({ event: 'destination-alive', downMs: 3 * MIN });
    // An alive destination that fails once is dead again.
    expect(afterDestinationAttempt(back.health, down, 5 * MIN, settings, false).health.state).toBe('dead');
  });
});

describe('MinHeap and Fifo', () => {
  it('the heap gives items in key order, whatever the order of pushes; filter keeps order', () => {
    const h = new MinHeap<number>();
    const keys = Array.from({ length: 2000 }, (_, i) => (i * 7919) % 2003);
    for (const k of keys) h.push(k, k);
    h.filter((v) => v % 2 === 0);
    const out: number[] = [];
    for (let x = h.pop(); x; x = h.pop()) out.push(x.key);
    expect(out).toEqual(keys.filter((k) => k % 2 === 0).sort((a, b) => a - b));
    expect(h.size).toBe(0);
  });

  it('the FIFO keeps order across its compaction', () => {
    const q = new Fifo<number>();
    for (let i = 0; i < 5000; i++) q.push(i);
    const out: number[] = [];
    for (let i = 0; i < 3000; i++) out.push(q.shift()!);
    for (let i = 5000; i < 6000; i++) q.push(i);
    for (let x = q.shift(); x !== undefined; x = q.shift()) out.push(x);
    expect(out).toEqual(Array.from({ length: 6000 }, (_, i) => i));
    expect(q.size).toBe(0);
  });
});

describe('deadDestinations: park the message, or skip its dead destinations', () => {
  const dead: DestinationHealth = { state: 'dead', failures: 1, probeAt: 5 * MIN, since: 0, last: { code: '4.4.316', detail: 'refused' } };
  const health = (deadKeys: string[]) => (key: string) => (deadKeys.includes(key) ? dead : { ...UNKNOWN, state: 'alive' as const });
  it('every destination dead, nothing decided without an attempt: parked (normal attempts only)', () => {
    expect(deadDestinations(['a', 'b'], 0, health(['a', 'b']), 'normal', null)).toEqual({ park: true });
    expect(deadDestinations(['a'], 0, health(['a']), 'forced', null)).toMatchObject({ park: false }); // its delay notice or expiry is due
    expect(deadDestinations(['a'], 1, health(['a']), 'normal', null)).toMatchObject({ park: false }); // a recipient is decided now
  });
  it('some dead: those are skipped (notAttempted), the others tried', () => {
    const d = deadDestinations(['a', 'b'], 0, health(['a']), 'normal', null);
    expect(d.park).toBe(false);
    expect(!d.park && [...d.skip.keys()]).toEqual(['a']);
  });
  it("the probe's own destination is tried though dead", () => {
    const d = deadDestinations(['a', 'b'], 0, health(['a', 'b']), 'probe', 'a');
    expect(!d.park && [...d.skip.keys()]).toEqual(['b']);
  });
  it('no destination at all (every recipient decided): nothing to park', () => {
    expect(deadDestinations([], 2, health([]), 'normal', null)).toEqual({ park: false, skip: new Map() });
  });
});
