// PURE. The health of a destination (Postfix's qmgr "dead site"), apart from the timers and
// connections that act on it. A destination is what schedule.ts's destinationKey names: a
// connector's smart hosts, or a domain's MX.
//
//   unknown ──success──▶ alive ──every next hop unusable──▶ dead ──probe succeeds──▶ alive
//      │                                                   ▲  │
//      └──────────────every next hop unusable──────────────┘  └─probe fails: next probe later
//
// - unknown (not tried since start-up or `queue retry`): one delivery at a time (slow start),
//   so that a destination that is down costs one connection, not one per waiting message.
// - alive: up to `perDestination` deliveries at once.
// - dead: messages due for it are parked, not tried; they cost no connection and no write. At
//   `probeAt` one message is tried (the probe); the next probe follows the retry intervals
//   (1st, 2nd… interval for the 1st, 2nd… failed probe, the last repeating). A success of any
//   attempt revives it, and its parked messages are due at once (the backlog drains).
import { retryInterval, type QueueSettings } from './schedule.js';

export interface DestinationHealth {
  state: 'unknown' | 'alive' | 'dead';
  /** Consecutive failed attempts (the first failure and failed probes). */
  failures: number;
  /** dead: when the next probe may start. */
  probeAt: number;
  /** dead: when it was found dead. */
  since: number;
  /** dead: the failure that made it so (code and detail), for the parked messages' records. */
  last: { code: string; detail: string } | null;
}

export const UNKNOWN: DestinationHealth = { state: 'unknown', failures: 0, probeAt: 0, since: 0, last: null };

/** What the scheduler may do now with a message due for this destination. */
export type Admission = 'attempt' | 'probe' | 'wait' | 'park';

export function admit(h: DestinationHealth, now: number, inFlight: number, perDestination: number): Admission {
  if (h.state === 'dead') {
    if (now < h.probeAt) return 'park';
    return inFlight === 0 ? 'probe' : 'park'; // one probe at a time
  }
  const limit = h.state === 'alive' ? perDestination : 1;
  return inFlight < limit ? 'attempt' : 'wait';
}

export type HealthEvent = { event: 'destination-dead' | 'destination-still-dead'; failures: number; probeAt: number } | { event: 'destination-alive'; downMs: number } | null;

/**
 * After one attempt to the destination. `unreachable`: every next hop was unusable (no
 * transaction took place); a reply to the transaction, even 4xx, means the destination works.
 * `probe`: this attempt was the probe of a dead destination.
 */
export function afterDestinationAttempt(
  h: DestinationHealth,
  result: { unreachable: false } | { unreachable: true; code: string; detail: string },
  now: number,
  settings: QueueSettings,
  probe: boolean,
): { health: DestinationHealth; event: HealthEvent } {
  if (!result.unreachable) {
    if (h.state === 'alive') return { health: h, event: null };
    return { health: { ...UNKNOWN, state: 'alive' }, event: h.state === 'dead' ? { event: 'destination-alive', downMs: now - h.since } : null };
  }
  const last = { code: result.code, detail: result.detail };
  if (h.state !== 'dead') {
    const health: DestinationHealth = { state: 'dead', failures: 1, since: now, probeAt: now + retryInterval(settings, 1), last };
    return { health, event: { event: 'destination-dead', failures: 1, probeAt: health.probeAt } };
  }
  // Already dead: only the probe's failure moves the next probe; attempts that were in flight
  // when it died end as they may.
  if (!probe) return { health: h, event: null };
  const failures = h.failures + 1;
  const health: DestinationHealth = { ...h, failures, probeAt: now + retryInterval(settings, failures), last };
  return { health, event: { event: 'destination-still-dead', failures, probeAt: health.probeAt } };
}

/**
 * Before an attempt: which destinations of a message are not to be tried because they are dead
 * (the probe's own destination excepted), and whether the whole message is to be parked instead
 * — only a normal attempt, with nothing decided without one, all of whose destinations are dead.
 * A destination skipped this way records `notAttempted` with its last failure for its recipients.
 */
export function deadDestinations(
  keys: readonly string[],
  decidedWithoutAttempt: number,
  health: (key: string) => DestinationHealth | undefined,
  mode: 'normal' | 'probe' | 'forced' | 'operator',
  probeKey: string | null,
): { park: true } | { park: false; skip: Map<string, DestinationHealth> } {
  const skip = new Map<string, DestinationHealth>();
  for (const key of keys) {
    const h = health(key);
    if (h?.state === 'dead' && h.last && key !== probeKey) skip.set(key, h);
  }
  if (mode === 'normal' && decidedWithoutAttempt === 0 && keys.length > 0 && skip.size === keys.length) return { park: true };
  return { park: false, skip };
}

/**
 * SPEC §12: what another node found about a destination, merged into this node's view.
 * - dead there, not here: dead here too, with its probe time (this node's messages park; the
 *   cluster probes once per interval, whichever node gets the turn);
 * - dead there and here: the later probe time stands (one schedule for the cluster);
 * - alive there: alive here (`revive`: this node's parked messages are due at once).
 */
export function mergeRemoteHealth(local: DestinationHealth, remote: DestinationHealth): { health: DestinationHealth; revive: boolean; died: boolean } {
  if (remote.state === 'alive') {
    if (local.state === 'dead') return { health: { ...UNKNOWN, state: 'alive' }, revive: true, died: false };
    return { health: local.state === 'unknown' ? { ...UNKNOWN, state: 'alive' } : local, revive: false, died: false };
  }
  if (remote.state !== 'dead') return { health: local, revive: false, died: false };
  if (local.state !== 'dead') return { health: { ...remote }, revive: false, died: true };
  return { health: { ...local, failures: Math.max(local.failures, remote.failures), probeAt: Math.max(local.probeAt, remote.probeAt), last: remote.last ?? local.last }, revive: false, died: false };
}

/**
 * The destinations' health shared with the other nodes (engines/redis-destinations.ts); without
 * it each node finds its dead destinations alone.
 */
export interface SharedDestinations {
  /** This node's view of `dest` changed (found dead, still dead after a probe, alive again). */
  publish(dest: string, health: DestinationHealth): void;
  /** Whether this node makes the probe due now: false when another node has this interval's turn. */
  mayProbe(dest: string, intervalMs: number): Promise<boolean>;
  /** Calls `fn` with each change another node publishes (and, at start, what is dead already). */
  subscribe(fn: (dest: string, health: DestinationHealth, node: string) => void): void;
}
