// The queue manager (Postfix's qmgr): schedules delivery attempts for spooled messages, keeps
// per-recipient state in the envelope, retries on gateway.queue.retryIntervals, sends DSNs,
// expires, and removes finished messages. What to do is decided by pure functions — schedule.ts
// (a message's attempt and what follows), destinations.ts (a destination's health); this file
// performs it (files, timers, delivery calls, logs).
//
// Its cost does not grow with the number of messages waiting (SPEC §5):
// - in memory, one small entry per message (id, next attempt, destination, state); the
//   envelope stays on disk and is read when the message is attempted;
// - a min-heap keyed by next attempt and one timer for its top; messages that come due join
//   their destination's FIFO, and the dispatcher takes one from each destination in turn
//   (a slow or busy destination does not hold slots others could use);
// - a dead destination's messages are parked when due: not tried, not rewritten; one probe per
//   retry interval; when a probe (or any attempt) succeeds they are all due at once. A parked
//   message is still looked at when its delay notice or its expiry is due.
// - start-up does not wait for it: `start` reads the envelopes in the background.
import { Limiter } from '../mail/limiter.js';
import { normalizeDomain } from '../mail/address.js';
import type { Policy } from '../policy/types.js';
import type { Logger } from '../observe/log.js';
import { traced } from '../observe/events.js';
import { pendingAt, type Envelope, type Spool } from './spool.js';
import { afterAttempt, planAttempt, retryInterval, type AttemptPlan, type AttemptResult, type DsnKind, type DsnRecipient, type QueueSettings, type RecipientEvent } from './schedule.js';
import { admit, afterDestinationAttempt, deadDestinations, mergeRemoteHealth, UNKNOWN, type DestinationHealth, type SharedDestinations } from './destinations.js';
import { Fifo, MinHeap } from './heap.js';
import type { DeliveryJob } from '../delivery/client.js';
import { outcomes, type RecipientOutcome } from '../delivery/status.js';

export type DeliverFn = (job: DeliveryJob) => Promise<Map<string, RecipientOutcome>>;

/** The bounce room (bounce/bounce.ts): commits a DSN to the spool and returns its envelope. */
export type BounceFn = (env: Envelope, kind: DsnKind, recipients: DsnRecipient[], policy: Policy) => Promise<Envelope>;

export interface ManagerOptions {
  /** Called for each recipient outcome (metrics). */
  onResult?: (connector: string, result: 'delivered' | 'deferred' | 'failed' | 'expired', security?: string, code?: string) => void;
  maxConcurrent?: number; // messages in delivery at once
  perDestination?: number; // deliveries at once to one destination
  /** Envelopes read at once while the queue is loaded at start-up. */
  loadConcurrency?: number;
  /** SPEC §12: dead destinations shared with the other nodes; none = this node's own. */
  shared?: SharedDestinations;
}

/** The destination of messages no route delivers (decided without an attempt): never dead, never throttled. */
const NO_DESTINATION = '';

/** Decisions (start or park a message) per turn of the event loop. */
const DISPATCH_BUDGET = 500;

/**
 * Fresh messages whose envelope and plan are kept in memory from enqueue to their first attempt
 * (no re-read, no second plan). Bounded: beyond it a message is read from disk as any other.
 */
const FRESH_KEPT = 1000;

/** normal; probe: a dead destination's probe; forced: a parked message's notice or expiry; operator: `queue retry ID`. */
type Mode = 'normal' | 'probe' | 'forced' | 'operator';

/** One message, in memory: what the scheduler needs, nothing of the envelope's content. */
interface Entry {
  id: string;
  /** waiting: in the heap until `at`; ready: in its destination's FIFO; parked: its destination is dead. */
  state: 'waiting' | 'ready' | 'running' | 'parked' | 'held' | 'gone';
  at: number;
  /** Parked: when it must be looked at anyway (its delay notice, or its expiry). */
  wake: number;
  /** The destination of its first pending recipients (schedule.ts destinationKey). */
  dest: string;
  arrived: number;
  /** Heap and FIFO items carry the version they were made for; a later change makes them stale. */
  ver: number;
  mode: Mode;
  /** Deleted, or put on hold, by the operator during its attempt: applied when the attempt ends. */
  deleting?: true;
  holding?: true;
  /** A fresh message: its envelope and the plan made at enqueue, for its first attempt under the same policy. */
  fresh?: { env: Envelope; plan: AttemptPlan; policy: Policy };
}

interface Slot {
  e: Entry;
  ver: number;
}

type Finish = { kind: 'gone' } | { kind: 'park' } | { kind: 'held' } | { kind: 'again'; at: number; wake: number };

export class QueueManager {
  private readonly entries = new Map<string, Entry>();
  private readonly timeline = new MinHeap<Slot>();
  private readonly ready = new Map<string, Fifo<Slot>>();
  private readonly parked = new Map<string, Set<Entry>>();
  private readonly health = new Map<string, DestinationHealth>();
  private readonly probeTimers = new Map<string, NodeJS.Timeout>();
  /** Destinations with a probe in flight: no other probe starts, and its end sets the next. */
  private readonly probing = new Set<string>();
  private readonly inFlight = new Map<string, number>();
  private readonly names = new Map<string, string>();
  private running = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private dispatchQueued = false;
  private loading: Promise<void> = Promise.resolve();
  private readonly onResult: NonNullable<ManagerOptions['onResult']>;
  private readonly destinations: Limiter;
  private readonly maxConcurrent: number;
  private readonly perDestination: number;
  private readonly loadConcurrency: number;
  private stopped = false;
  private freshKept = 0;

  constructor(
    private readonly spool: Spool,
    private readonly getPolicy: () => Policy,
    private readonly log: Logger,
    private readonly deliverFn: DeliverFn,
    private readonly bounce: BounceFn,
    opts: ManagerOptions = {},
  ) {
    // As Postfix: up to 20 deliveries at once to one destination, 100 in all.
    this.maxConcurrent = opts.maxConcurrent ?? 100;
    this.perDestination = opts.perDestination ?? 20;
    this.destinations = new Limiter(this.perDestination);
    this.loadConcurrency = opts.loadConcurrency ?? 64;
    this.onResult = opts.onResult ?? (() => {});
    this.shared = opts.shared ?? null;
    this.shared?.subscribe((dest, health, node) => this.remoteHealth(dest, health, node));
  }

  private readonly shared: SharedDestinations | null;

  /** Another node found `dest` dead or alive (SPEC §12): this node follows. */
  private remoteHealth(dest: string, remote: DestinationHealth, node: string): void {
    const key = this.intern(dest);
    const before = this.health.get(key) ?? UNKNOWN;
    const { health, revive, died } = mergeRemoteHealth(before, remote);
    this.health.set(key, health);
    if (revive) return this.revive(key, Date.now() - before.since, node);
    if (died) this.log.warn({ event: 'destination-dead', destination: key, foundBy: node, nextProbe: new Date(health.probeAt).toISOString(), result: `${health.last?.code} ${health.last?.detail}` }, `${key} unreachable (found by ${node}): its messages wait without being tried`);
    if (health.state === 'dead') {
      this.clearProbe(key);
      this.probeLater(key, health.probeAt);
    }
  }

  /** `dest` works again: its parked messages are due now. */
  private revive(dest: string, downMs: number, foundBy?: string): void {
    const parked = this.parked.get(dest);
    this.log.info({ event: 'destination-alive', destination: dest, downSeconds: Math.round(downMs / 1000), parked: parked?.size ?? 0, ...(foundBy ? { foundBy } : {}) }, `${dest} is back; its ${parked?.size ?? 0} parked message(s) are due now`);
    this.clearProbe(dest);
    if (parked) for (const e of [...parked]) this.ready1(e, 'normal');
    this.parked.delete(dest);
  }

  /** Age in seconds of the oldest message in the queue (0 when empty). */
  get oldestAgeSeconds(): number {
    let oldest = Infinity;
    for (const e of this.entries.values()) if (e.arrived < oldest) oldest = e.arrived;
    return oldest === Infinity ? 0 : (Date.now() - oldest) / 1000;
  }
  get size(): number {
    return this.entries.size;
  }
  /** Messages parked behind a dead destination. */
  get parkedMessages(): number {
    let n = 0;
    for (const s of this.parked.values()) n += s.size;
    return n;
  }
  /** Destinations found dead and not yet back. */
  get deadDestinations(): number {
    let n = 0;
    for (const h of this.health.values()) if (h.state === 'dead') n++;
    return n;
  }

  /**
   * Starts scheduling at once; the queued messages (`ids`, from Spool.recover) are read in the
   * background and join as they are read. Resolves when they all have (`loaded` too).
   */
  start(ids: string[]): Promise<void> {
    const t0 = Date.now();
    this.loading = this.load(ids).then(() => {
      this.log.info({ event: 'queue-loaded', messages: ids.length, ms: Date.now() - t0 }, `queue loaded: ${ids.length} message(s) in ${Date.now() - t0} ms`);
    });
    return this.loading;
  }

  private async load(ids: string[]): Promise<void> {
    const settings = this.getPolicy().gateway.queue;
    for (let i = 0; i < ids.length && !this.stopped; i += this.loadConcurrency) {
      await Promise.all(
        ids.slice(i, i + this.loadConcurrency).map(async (id) => {
          if (this.entries.has(id)) return;
          try {
            const env = await this.spool.readEnvelope(id);
            if (this.entries.has(id)) return;
            const e = this.entryOf(env, settings);
            if (env.held) e.state = 'held';
            else this.wait(e, env.nextAttemptAt ? Date.parse(env.nextAttemptAt) : Date.now());
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // deleted meanwhile
            this.log.error({ event: 'queue-read-error', qid: id, err: (err as Error).message }, 'cannot read envelope');
          }
        }),
      );
    }
  }

  enqueue(env: Envelope): void {
    if (this.stopped) return; // on disk: the next start finds it
    if (this.entries.has(env.id)) return; // already read from the queue directory at start-up
    this.ready1(this.entryOf(env, this.getPolicy().gateway.queue, true), 'normal');
  }

  /** Stops scheduling; waits (bounded) for attempts in flight to finish. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const t of this.probeTimers.values()) clearTimeout(t);
    const until = Date.now() + graceMs;
    while (this.running && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  }

  // -------------------------------------------------------------------------------------
  // Moving entries between the heap, the FIFOs and the parked sets

  private entryOf(env: Envelope, settings: QueueSettings, keep = false): Entry {
    const policy = this.getPolicy();
    const plan = planAttempt(env, policy);
    const e: Entry = { id: env.id, state: 'gone', at: 0, wake: wakeOf(env, settings), dest: this.intern(destinationOf(plan)), arrived: Date.parse(env.receivedAt), ver: 0, mode: 'normal' };
    if (keep && this.freshKept < FRESH_KEPT) {
      e.fresh = { env, plan, policy };
      this.freshKept++;
    }
    this.entries.set(env.id, e);
    return e;
  }

  /** The fresh envelope and plan, once: later attempts read the envelope from disk. */
  private takeFresh(e: Entry): Entry['fresh'] {
    const f = e.fresh;
    if (f) {
      delete e.fresh;
      this.freshKept--;
    }
    return f;
  }

  /** One copy of each destination's name, however many messages wait for it. */
  private intern(dest: string): string {
    const known = this.names.get(dest);
    if (known !== undefined) return known;
    this.names.set(dest, dest);
    return dest;
  }

  private leave(e: Entry): void {
    if (e.state === 'parked') this.parked.get(e.dest)?.delete(e);
    e.ver++;
  }

  private wait(e: Entry, at: number): void {
    this.leave(e);
    e.state = 'waiting';
    e.at = at;
    this.onTimeline(e, at);
  }

  private ready1(e: Entry, mode: Mode): void {
    this.leave(e);
    e.state = 'ready';
    e.mode = mode;
    let q = this.ready.get(e.dest);
    if (!q) this.ready.set(e.dest, (q = new Fifo()));
    q.push({ e, ver: e.ver });
    this.kick();
  }

  private park(e: Entry): void {
    this.takeFresh(e); // a parked message may wait for days: its envelope stays on disk only
    this.leave(e);
    e.state = 'parked';
    let s = this.parked.get(e.dest);
    if (!s) this.parked.set(e.dest, (s = new Set()));
    s.add(e);
    this.onTimeline(e, e.wake);
  }

  private forget(e: Entry): void {
    this.takeFresh(e);
    this.leave(e);
    e.state = 'gone';
    this.entries.delete(e.id);
  }

  private onTimeline(e: Entry, at: number): void {
    this.timeline.push(at, { e, ver: e.ver });
    // Stale items (entries that moved on) are dropped when they outnumber the live ones.
    if (this.timeline.size > 1024 && this.timeline.size > 2 * this.entries.size) this.timeline.filter((s) => s.ver === s.e.ver);
    if (at < this.timerAt) this.arm(at);
  }

  private arm(at: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.due(), Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1)));
    this.timer.unref();
  }

  /** The timer: entries whose time has come join their destination's FIFO. */
  private due(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = Date.now();
    for (let top = this.timeline.peek(); top && top.key <= now; top = this.timeline.peek()) {
      const { e, ver } = this.timeline.pop()!.value;
      if (ver !== e.ver) continue;
      if (e.state === 'waiting') this.ready1(e, 'normal');
      else if (e.state === 'parked') this.ready1(e, 'forced'); // its delay notice or expiry
    }
    const next = this.timeline.peek();
    if (next) this.arm(next.key);
  }

  private kick(): void {
    if (this.dispatchQueued || this.stopped) return;
    this.dispatchQueued = true;
    setImmediate(() => this.dispatch());
  }

  /**
   * Starts attempts: one message from each destination in turn, within the limits. It yields
   * after DISPATCH_BUDGET decisions (a backlog parked at once is 100,000 of them), so that
   * sessions and the log keep flowing meanwhile.
   */
  private dispatch(): void {
    this.dispatchQueued = false;
    if (this.stopped) return;
    const now = Date.now();
    let budget = DISPATCH_BUDGET;
    const spent = (): boolean => {
      if (--budget > 0) return false;
      this.kick();
      return true;
    };
    for (let progress = true; progress && this.running < this.maxConcurrent; ) {
      progress = false;
      for (const [dest, q] of this.ready) {
        if (this.running >= this.maxConcurrent) break;
        let slot = q.peek();
        while (slot && (slot.ver !== slot.e.ver || slot.e.state !== 'ready')) slot = (q.shift(), q.peek());
        if (!slot) {
          this.ready.delete(dest);
          continue;
        }
        const e = slot.e;
        if (e.mode !== 'normal') {
          // Forced (a parked message's delay notice or expiry) or an operator's retry of this
          // message: outside the destination's limits.
          q.shift();
          this.run(e, e.mode);
          progress = true;
          if (spent()) return;
          continue;
        }
        const h = this.health.get(dest) ?? UNKNOWN;
        const a = dest === NO_DESTINATION ? 'attempt' : admit(h, now, this.inFlight.get(dest) ?? 0, this.perDestination);
        if (a === 'wait') continue;
        q.shift();
        // With the cluster's dead destinations, a probe waits for this node's turn (probe()).
        if (a === 'park' || (a === 'probe' && this.shared)) this.parkDue(e);
        else this.run(e, a === 'probe' ? 'probe' : 'normal');
        progress = true;
        if (spent()) return;
      }
    }
  }

  /** A message due for a dead destination: parked without an attempt, and said so once. */
  private parkDue(e: Entry): void {
    this.park(e);
    const h = this.health.get(e.dest);
    if (h?.state === 'dead') this.probeLater(e.dest, h.probeAt);
    this.log.info({ event: 'parked', qid: e.id, destination: e.dest, result: h?.last ? `${h.last.code} ${h.last.detail}` : undefined }, `delivery to ${e.dest} suspended: it is unreachable; the message waits for it to come back`);
  }

  private run(e: Entry, mode: Mode): void {
    this.leave(e);
    e.state = 'running';
    e.mode = mode;
    const dest = e.dest;
    this.running++;
    this.inFlight.set(dest, (this.inFlight.get(dest) ?? 0) + 1);
    if (mode === 'probe') this.probing.add(dest);
    this.process(e, mode)
      .catch((err: Error): Finish => {
        this.log.error({ event: 'queue-error', qid: e.id, err: err.message }, 'delivery run failed; retrying in 60s');
        return { kind: 'again', at: Date.now() + 60_000, wake: e.wake };
      })
      .then((f) => this.finish(e, f, dest, mode));
  }

  private finish(e: Entry, f: Finish, dest: string, mode: Mode): void {
    this.running--;
    const n = (this.inFlight.get(dest) ?? 1) - 1;
    if (n) this.inFlight.set(dest, n);
    else this.inFlight.delete(dest);
    if (mode === 'probe') {
      // The probe is over: the next one, if the destination is still dead (its time was set
      // by the probe's result, or stands if the attempt never reached the destination).
      this.probing.delete(dest);
      const h = this.health.get(dest);
      if (h?.state === 'dead') this.probeLater(dest, h.probeAt);
    }
    if (e.deleting) {
      // Deleted during an attempt that did not remove it: remove it now, never retry it.
      this.forget(e);
      void this.spool.remove(e.id).catch(() => {});
    } else if (f.kind === 'gone') this.forget(e);
    else if (f.kind === 'held') {
      this.leave(e);
      e.state = 'held';
    } else if (e.holding) {
      // Put on hold during an attempt that left it waiting: hold it now.
      delete e.holding;
      this.leave(e);
      e.state = 'held';
      this.setHeld(e.id, true).catch((err: Error) => this.log.error({ event: 'queue-error', qid: e.id, err: err.message }, 'cannot write the hold into the envelope; held until restart'));
    } else if (this.stopped) {
      this.leave(e); // on disk with its next attempt; the next start reads it
    } else if (f.kind === 'park') this.parkDue(e);
    else {
      e.wake = f.wake;
      this.wait(e, f.at);
    }
    this.kick();
  }

  // -------------------------------------------------------------------------------------
  // Destinations

  /** After a real attempt to `dest`: its health, and what follows (logs, probe timer, revival). */
  private observe(dest: string, results: RecipientOutcome[], probe: boolean): void {
    if (dest === NO_DESTINATION) return;
    const first = results[0];
    const unreachable = !!first && results.every((o) => o.unreachable);
    const before = this.health.get(dest) ?? UNKNOWN;
    const { health, event } = afterDestinationAttempt(before, unreachable && first ? { unreachable: true, code: first.code, detail: first.detail } : { unreachable: false }, Date.now(), this.getPolicy().gateway.queue, probe);
    this.health.set(dest, health);
    if (!event) return;
    this.shared?.publish(dest, health);
    if (event.event === 'destination-alive') return this.revive(dest, event.downMs);
    this.log.warn({ event: event.event, destination: dest, failures: event.failures, nextProbe: new Date(event.probeAt).toISOString(), result: `${health.last?.code} ${health.last?.detail}` }, `${dest} unreachable: its messages wait without being tried; next probe at ${new Date(event.probeAt).toISOString()}`);
    this.clearProbe(dest);
    this.probeLater(dest, event.probeAt);
  }

  /** A dead destination's probe time: its oldest parked message is tried (unless a probe is in flight). */
  private probe(dest: string): void {
    this.probeTimers.delete(dest);
    if (this.probing.has(dest)) return;
    const first = this.parked.get(dest)?.values().next().value;
    if (!first) return;
    if (!this.shared) return this.ready1(first, 'probe');
    // One probe per interval for the cluster: the node that gets the turn probes; the others wait
    // for its result (published) or, failing that, the next interval.
    const h = this.health.get(dest) ?? UNKNOWN;
    const interval = retryInterval(this.getPolicy().gateway.queue, Math.max(1, h.failures));
    void this.shared.mayProbe(dest, interval).then((mine) => {
      const still = this.parked.get(dest)?.values().next().value;
      if (this.health.get(dest)?.state !== 'dead' || !still) return;
      if (mine) this.ready1(still, 'probe');
      else this.probeLater(dest, Date.now() + interval);
    });
  }

  /** Every dead destination with parked messages has its probe coming (a probe in flight sets the next when it ends). */
  private probeLater(dest: string, at: number): void {
    if (this.probeTimers.has(dest) || this.probing.has(dest) || this.stopped) return;
    const t = setTimeout(() => this.probe(dest), Math.max(0, at - Date.now()));
    t.unref();
    this.probeTimers.set(dest, t);
  }

  private clearProbe(dest: string): void {
    const t = this.probeTimers.get(dest);
    if (t) clearTimeout(t);
    this.probeTimers.delete(dest);
  }

  // -------------------------------------------------------------------------------------
  // The operator's commands (control channel)

  /**
   * `queue retry [ID]`: the message, or every waiting one, is due now. The message named is
   * tried even when its destination is dead (a probe). Without an ID it is Postfix's
   * `postqueue -f`: dead destinations are forgotten too (each is tried again, one at a time
   * until one delivery works).
   */
  async retry(id: string | null): Promise<number> {
    await this.loading;
    this.log.info({ event: 'queue-flush', qid: id ?? undefined }, id ? `retrying ${id} now (queue retry)` : 'retrying the queue now (queue retry)');
    if (id) {
      const e = this.entries.get(id);
      if (!e) return 0;
      if (e.state === 'held') throw new Error(`${id} is on hold: \`queue release ${id}\` delivers it`);
      // Tried now even if its destination is dead: the operator's probe.
      if (e.state === 'waiting' || e.state === 'parked' || e.state === 'ready') this.ready1(e, 'operator');
      return 1;
    }
    for (const dest of this.probeTimers.keys()) this.clearProbe(dest);
    this.health.clear();
    let n = 0;
    for (const e of this.entries.values()) {
      if (e.state === 'waiting' || e.state === 'parked') this.ready1(e, 'normal');
      if (e.state !== 'held') n++;
    }
    return n;
  }

  /**
   * `queue hold [ID]` (Postfix's postsuper -h): the message, or every one, stays in the queue and
   * is not attempted until released; the state is kept in the envelope, so it survives a
   * restart. A message in delivery is held when its attempt ends (if anything is left to
   * deliver). Returns how many.
   */
  async hold(id: string | null, destination: string | null = null): Promise<number> {
    await this.loading;
    let n = 0;
    for (const e of await this.select(id, destination, (x) => x.state !== 'held' && x.state !== 'gone')) {
      if (e.state === 'running') e.holding = true;
      else {
        this.takeFresh(e); // held for as long as the operator likes: the envelope stays on disk only
        this.leave(e);
        e.state = 'held';
        await this.setHeld(e.id, true);
      }
      n++;
    }
    this.log.info(traced({ event: 'held', qid: id ?? undefined, destination: destination ?? undefined, messages: n }), id ? `${id} put on hold (queue hold)` : `${n} message(s) put on hold (queue hold)`);
    return n;
  }

  /** `queue release [ID]` (postsuper -H): held messages are due at once. Returns how many. */
  async release(id: string | null, destination: string | null = null): Promise<number> {
    await this.loading;
    let n = 0;
    for (const e of await this.select(id, destination, (x) => x.state === 'held' || !!x.holding)) {
      if (e.holding) delete e.holding;
      else {
        await this.setHeld(e.id, false);
        if (e.state === 'held') this.ready1(e, 'normal');
      }
      n++;
    }
    this.log.info(traced({ event: 'released', qid: id ?? undefined, destination: destination ?? undefined, messages: n }), id ? `${id} released (queue release)` : `${n} message(s) released (queue release)`);
    return n;
  }

  /** The entries a command names: one by ID, or all those `want` accepts with a recipient still to deliver at `domain`. */
  private async select(id: string | null, domain: string | null, want: (e: Entry) => boolean): Promise<Entry[]> {
    if (id) {
      const e = this.entries.get(id);
      return e && want(e) ? [e] : [];
    }
    const candidates = [...this.entries.values()].filter(want);
    if (domain === null) return candidates;
    const d = normalizeDomain(domain);
    const out: Entry[] = [];
    for (const e of candidates) {
      const env = await this.spool.readEnvelope(e.id).catch(() => null);
      if (env && pendingAt(env, d)) out.push(e);
    }
    return out;
  }

  private async setHeld(id: string, held: boolean): Promise<void> {
    try {
      const env = await this.spool.readEnvelope(id);
      if (held) env.held = true;
      else delete env.held;
      await this.spool.writeEnvelope(env);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      const x = this.entries.get(id); // deleted meanwhile
      if (x) this.forget(x);
    }
  }

  /**
   * `queue delete ID`. A message in delivery is removed when its attempt ends (its outcome is
   * logged, nothing is written back); any other is removed now.
   */
  async delete(id: string): Promise<boolean> {
    await this.loading;
    const e = this.entries.get(id);
    if (e?.state === 'running') {
      e.deleting = true;
      this.log.info(traced({ event: 'deleted', qid: id, when: 'after the attempt in flight' }), 'deleted by the operator');
      return true;
    }
    if (e) this.forget(e);
    try {
      await this.spool.remove(id);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    this.log.info(traced({ event: 'deleted', qid: id }), 'deleted by the operator');
    return true;
  }

  // -------------------------------------------------------------------------------------
  // One attempt

  private async process(e: Entry, mode: Mode): Promise<Finish> {
    const id = e.id;
    const policy = this.getPolicy();
    // A fresh message's first attempt uses what enqueue read and planned; any other reads the envelope.
    const fresh = this.takeFresh(e);
    let env: Envelope;
    let plan: AttemptPlan;
    if (fresh && fresh.policy === policy) ({ env, plan } = fresh);
    else {
      try {
        env = await this.spool.readEnvelope(id);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'gone' }; // deleted meanwhile (queue delete)
        throw err;
      }
      plan = planAttempt(env, policy); // routing follows the policy in force
      e.dest = this.intern(destinationOf(plan));
    }
    const now = Date.now();
    // A probe, or the operator's retry of this message: its destination is tried even when dead.
    const probeKey = mode === 'probe' || mode === 'operator' ? e.dest : null;

    // Decide what to attempt: one SMTP transaction per destination, none to a dead one (destinations.ts).
    const dead = deadDestinations(plan.groups.map((g) => g.key), plan.decided.length, (key) => this.health.get(key), mode, probeKey);
    if (dead.park) return { kind: 'park' };

    const results: AttemptResult[] = plan.decided.map((d) => ({ ...d, connector: null }));
    await Promise.all(
      plan.groups.map(async (g) => {
        const h = dead.skip.get(g.key);
        if (h?.last) {
          for (const address of g.recipients) results.push({ address, connector: g.routeName, outcome: outcomes.notAttempted(g.key, h.since, h.last) });
          return;
        }
        await this.destinations.acquire(g.key);
        let byAddress: Map<string, RecipientOutcome> | null = null;
        let failure: string | null = null;
        try {
          byAddress = await this.deliverFn({ envelope: env, recipients: g.recipients, route: g.route, content: () => this.spool.contentStream(id) });
        } catch (err) {
          failure = (err as Error).message;
        } finally {
          this.destinations.release(g.key);
        }
        const got = g.recipients.map((address) => byAddress?.get(address) ?? outcomes.internalError(failure ?? 'no result'));
        if (byAddress) this.observe(g.key, got, g.key === probeKey);
        g.recipients.forEach((address, i) => results.push({ address, connector: g.routeName, outcome: got[i]! }));
      }),
    );
    const settings = policy.gateway.queue;
    const decision = afterAttempt(env, results, now, settings, { operatorRetry: mode === 'operator' });

    // Perform it: log and count, queue the reports (before the original is updated or
    // removed: at-least-once), then remove the message or write its new state.
    for (const ev of decision.events) this.record(id, ev);
    if (e.deleting) {
      await this.spool.remove(id).catch(() => {});
      delete e.deleting;
      return { kind: 'gone' };
    }
    for (const s of decision.suppressed) {
      if (s.reason === 'NOTIFY') this.log.info(traced({ event: 'dsn-suppressed', qid: id, reason: 'NOTIFY', recipients: s.recipients }), 'no DSN: the sender asked for none');
      else this.log.warn(traced({ event: 'dsn-suppressed', qid: id, reason: 'null sender' }), 'no DSN for the null sender');
    }
    for (const d of decision.dsns) {
      const dsn = await this.bounce(env, d.kind, d.recipients, policy);
      this.log.info(traced({ event: 'dsn', qid: dsn.id, original: env.id, kind: d.kind, to: env.sender, recipients: d.recipients.map((r) => r.address) }), `${d.kind} DSN queued`);
      this.enqueue(dsn);
    }
    const next = decision.envelope;
    if (decision.next.done) {
      await this.spool.remove(id);
      this.log.info(traced({ event: 'removed', qid: id, delivered: next.recipients.filter((r) => r.status === 'delivered').length, failed: next.recipients.filter((r) => r.status === 'failed').length }), 'message done');
      return { kind: 'gone' };
    }
    if (e.holding) {
      // Put on hold during this attempt: what is left waits for `queue release`.
      delete e.holding;
      await this.spool.writeEnvelope({ ...next, held: true });
      return { kind: 'held' };
    }
    await this.spool.writeEnvelope(next);
    return { kind: 'again', at: decision.next.at, wake: wakeOf(next, settings) };
  }

  /** One recipient's event: a log line and the delivery metric. */
  private record(qid: string, e: RecipientEvent): void {
    switch (e.event) {
      case 'delivered':
        this.onResult(e.connector ?? 'none', 'delivered', e.security);
        this.log.info(traced({ qid, ...e }), 'delivered');
        return;
      case 'deferred':
        this.onResult(e.connector ?? 'none', 'deferred', e.security, e.code);
        this.log.info(traced({ qid, ...e }), 'deferred');
        return;
      case 'bounced':
        if (e.expired) {
          this.onResult(e.connector ?? 'none', 'expired');
          this.log.warn(traced({ qid, ...e }), 'expired');
        } else {
          this.onResult(e.connector ?? 'none', 'failed', e.security);
          this.log.warn(traced({ qid, ...e }), 'permanent failure');
        }
        return;
    }
  }
}

/** The destination a message is scheduled under: that of its first pending recipients. */
function destinationOf(plan: AttemptPlan): string {
  return plan.groups[0]?.key ?? NO_DESTINATION;
}

/** When a message parked behind a dead destination must be looked at anyway: its delay notice, else its expiry. */
function wakeOf(env: Envelope, s: QueueSettings): number {
  const received = Date.parse(env.receivedAt);
  const notice = s.delayNotification > 0 && !env.delayNotified ? s.delayNotification : Infinity;
  return received + Math.min(notice, s.messageExpiration);
}
