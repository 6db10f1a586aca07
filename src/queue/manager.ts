// The queue manager (Postfix's qmgr): schedules delivery attempts for spooled messages, keeps
// per-recipient state in the envelope, retries on gateway.queue.retryIntervals, sends DSNs,
// expires, and removes finished messages. What to do is decided by the pure functions of
// schedule.ts; this file performs it (files, timers, delivery calls, logs).
import fsp from 'node:fs/promises';
import { Limiter } from '../mail/limiter.js';
import { normalizeDomain } from '../mail/address.js';
import type { Policy } from '../policy/types.js';
import type { Logger } from '../observe/log.js';
import { pendingAt, type Envelope, type Spool } from './spool.js';
import { afterAttempt, dsnReturns, planAttempt, type AttemptResult, type RecipientEvent } from './schedule.js';
import type { DeliveryJob } from '../delivery/client.js';
import { outcomes, type RecipientOutcome } from '../delivery/status.js';
import { buildDsn, type DsnKind, type DsnRecipient } from '../delivery/dsn.js';

export type DeliverFn = (job: DeliveryJob) => Promise<Map<string, RecipientOutcome>>;

export interface ManagerOptions {
  /** Called for each recipient outcome (metrics). */
  onResult?: (connector: string, result: 'delivered' | 'deferred' | 'failed' | 'expired', security?: string, code?: string) => void;
  maxConcurrent?: number; // messages in delivery at once
  perDestination?: number; // deliveries at once to one route
  tickMs?: number;
}

export class QueueManager {
  private due = new Map<string, number>();
  private arrived = new Map<string, number>(); // id → receivedAt, for the oldest-age gauge
  private readonly onResult: NonNullable<ManagerOptions['onResult']>;
  private running = new Set<string>();
  /** Deleted by the operator while an attempt was in flight: removed when it ends, never written back. */
  private deleting = new Set<string>();
  /** On hold: in the queue, never attempted. `holding`: put on hold during an attempt in flight. */
  private held = new Set<string>();
  private holding = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private destinations: Limiter;
  private readonly maxConcurrent: number;
  private readonly tickMs: number;
  private stopped = false;

  constructor(
    private readonly spool: Spool,
    private readonly getPolicy: () => Policy,
    private readonly log: Logger,
    private readonly deliverFn: DeliverFn,
    opts: ManagerOptions = {},
  ) {
    // As Postfix: up to 20 deliveries at once to one destination, 100 in all.
    this.maxConcurrent = opts.maxConcurrent ?? 100;
    this.destinations = new Limiter(opts.perDestination ?? 20);
    this.tickMs = opts.tickMs ?? 250;
    this.onResult = opts.onResult ?? (() => {});
  }

  /** Age in seconds of the oldest message in the queue (0 when empty). */
  get oldestAgeSeconds(): number {
    let oldest = Infinity;
    for (const t of this.arrived.values()) if (t < oldest) oldest = t;
    return oldest === Infinity ? 0 : (Date.now() - oldest) / 1000;
  }
  get size(): number {
    return this.due.size + this.running.size + this.held.size;
  }

  async start(ids: string[]): Promise<void> {
    for (const id of ids) {
      try {
        const env = await this.spool.readEnvelope(id);
        if (env.held) this.held.add(id);
        else this.due.set(id, env.nextAttemptAt ? Date.parse(env.nextAttemptAt) : Date.now());
        this.arrived.set(id, Date.parse(env.receivedAt));
      } catch (e) {
        this.log.error({ event: 'queue-read-error', qid: id, err: (e as Error).message }, 'cannot read envelope');
      }
    }
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
    this.tick();
  }

  enqueue(env: Envelope): void {
    if (this.stopped) return;
    this.due.set(env.id, Date.now());
    this.arrived.set(env.id, Date.parse(env.receivedAt));
    setImmediate(() => this.tick());
  }

  /** Stops scheduling; waits (bounded) for attempts in flight to finish. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const until = Date.now() + graceMs;
    while (this.running.size && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  }

  private tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const [id, at] of this.due) {
      if (this.running.size >= this.maxConcurrent) break;
      if (at > now || this.running.has(id)) continue;
      this.due.delete(id);
      this.running.add(id);
      this.process(id)
        .catch((e) => {
          this.log.error({ event: 'queue-error', qid: id, err: (e as Error).message }, 'delivery run failed; retrying in 60s');
          if (!this.stopped) this.due.set(id, Date.now() + 60_000);
        })
        .finally(() => {
          this.running.delete(id);
          // Put on hold during an attempt that then failed to run: hold it now.
          if (this.holding.delete(id) && this.due.delete(id)) {
            this.putOnHold(id).catch((e: Error) => this.log.error({ event: 'queue-error', qid: id, err: e.message }, 'cannot write the hold into the envelope; held until restart'));
          }
          // Deleted during an attempt that then failed: remove it now rather than retry it.
          if (this.deleting.delete(id)) {
            this.due.delete(id);
            this.arrived.delete(id);
            void this.spool.remove(id).catch(() => {});
          }
        });
    }
  }

  /** `queue retry [ID]` (control channel): the message, or every waiting one, is due now. Returns how many. */
  async retry(id: string | null): Promise<number> {
    this.log.info({ event: 'queue-flush', qid: id ?? undefined }, id ? `retrying ${id} now (queue retry)` : 'retrying the queue now (queue retry)');
    const now = Date.now();
    let n = 0;
    if (id && this.held.has(id)) throw new Error(`${id} is on hold: \`queue release ${id}\` delivers it`);
    for (const key of id ? [id] : [...this.due.keys()]) {
      if (this.due.has(key)) {
        this.due.set(key, now);
        n++;
      } else if (this.running.has(key)) n++; // being attempted now
    }
    setImmediate(() => this.tick());
    return n;
  }

  /**
   * `queue hold [ID]` (control channel; Postfix's postsuper -h): the message, or every one,
   * stays in the queue and is not attempted until released; the state is kept in the envelope,
   * so it survives a restart. A message in delivery is held when its attempt ends (if anything
   * is left to deliver). Returns how many.
   */
  async hold(id: string | null, destination: string | null = null): Promise<number> {
    let n = 0;
    const keys = id ? [id] : await this.bound([...this.due.keys(), ...this.running], destination);
    for (const key of keys) {
      if (this.running.has(key)) {
        this.holding.add(key);
        n++;
      } else if (this.due.delete(key)) {
        await this.putOnHold(key);
        n++;
      } else if (this.held.has(key)) n++;
    }
    this.log.info({ event: 'held', qid: id ?? undefined, destination: destination ?? undefined, messages: n }, id ? `${id} put on hold (queue hold)` : `${n} message(s) put on hold (queue hold)`);
    return n;
  }

  /** `queue release [ID]` (postsuper -H): held messages are due at once. Returns how many. */
  async release(id: string | null, destination: string | null = null): Promise<number> {
    let n = 0;
    const keys = id ? [id] : await this.bound([...this.held, ...this.holding], destination);
    for (const key of keys) {
      if (this.holding.delete(key)) n++;
      else if (this.held.delete(key)) {
        await this.setHeld(key, false);
        this.due.set(key, Date.now());
        n++;
      }
    }
    this.log.info({ event: 'released', qid: id ?? undefined, destination: destination ?? undefined, messages: n }, id ? `${id} released (queue release)` : `${n} message(s) released (queue release)`);
    setImmediate(() => this.tick());
    return n;
  }

  /** The messages among `ids` with a recipient still to deliver at `domain` (all when null). */
  private async bound(ids: string[], domain: string | null): Promise<string[]> {
    if (domain === null) return ids;
    const want = normalizeDomain(domain);
    const out: string[] = [];
    for (const id of ids) {
      const env = await this.spool.readEnvelope(id).catch(() => null);
      if (env && pendingAt(env, want)) out.push(id);
    }
    return out;
  }

  private async putOnHold(id: string): Promise<void> {
    this.held.add(id);
    await this.setHeld(id, true);
  }

  private async setHeld(id: string, held: boolean): Promise<void> {
    try {
      const env = await this.spool.readEnvelope(id);
      if (held) env.held = true;
      else delete env.held;
      await this.spool.writeEnvelope(env);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.held.delete(id); // deleted meanwhile
    }
  }

  /**
   * `queue delete ID` (control channel). A message in delivery is removed when its attempt ends
   * (its outcome is logged, nothing is written back); any other is removed now.
   */
  async delete(id: string): Promise<boolean> {
    if (this.running.has(id)) {
      this.deleting.add(id);
      this.log.info({ event: 'deleted', qid: id, when: 'after the attempt in flight' }, 'deleted by the operator');
      return true;
    }
    this.due.delete(id);
    this.held.delete(id);
    this.arrived.delete(id);
    try {
      await this.spool.remove(id);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    this.log.info({ event: 'deleted', qid: id }, 'deleted by the operator');
    return true;
  }

  private async process(id: string): Promise<void> {
    let env: Envelope;
    try {
      env = await this.spool.readEnvelope(id);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.arrived.delete(id); // deleted meanwhile (queue delete)
        return;
      }
      throw e;
    }
    const policy = this.getPolicy();
    const now = Date.now();

    // Decide what to attempt, attempt it (one SMTP transaction per destination), decide what follows.
    const plan = planAttempt(env, policy);
    const results: AttemptResult[] = plan.decided.map((d) => ({ ...d, connector: null }));
    await Promise.all(
      plan.groups.map(async (g) => {
        await this.destinations.acquire(g.key);
        let byAddress: Map<string, RecipientOutcome> | null = null;
        let failure: string | null = null;
        try {
          byAddress = await this.deliverFn({ envelope: env, recipients: g.recipients, route: g.route, content: () => this.spool.contentStream(id) });
        } catch (e) {
          failure = (e as Error).message;
        } finally {
          this.destinations.release(g.key);
        }
        for (const address of g.recipients) {
          const outcome = byAddress?.get(address) ?? outcomes.internalError(failure ?? 'no result');
          results.push({ address, connector: g.routeName, outcome });
        }
      }),
    );
    const decision = afterAttempt(env, results, now, policy.gateway.queue);

    // Perform it: log and count, queue the reports (before the original is updated or
    // removed: at-least-once), then remove the message or write its new state.
    for (const e of decision.events) this.record(id, e);
    if (this.deleting.delete(id)) {
      await this.spool.remove(id).catch(() => {});
      this.arrived.delete(id);
      return;
    }
    for (const s of decision.suppressed) {
      if (s.reason === 'NOTIFY') this.log.info({ event: 'dsn-suppressed', qid: id, reason: 'NOTIFY', recipients: s.recipients }, 'no DSN: the sender asked for none');
      else this.log.warn({ event: 'dsn-suppressed', qid: id, reason: 'null sender' }, 'no DSN for the null sender');
    }
    for (const d of decision.dsns) await this.sendDsn(env, d.kind, d.recipients, policy);
    const next = decision.envelope;
    if (decision.next.done) {
      await this.spool.remove(id);
      this.arrived.delete(id);
      this.log.info({ event: 'removed', qid: id, delivered: next.recipients.filter((r) => r.status === 'delivered').length, failed: next.recipients.filter((r) => r.status === 'failed').length }, 'message done');
    } else if (this.holding.delete(id)) {
      // Put on hold during this attempt: what is left waits for `queue release`.
      await this.spool.writeEnvelope({ ...next, held: true });
      this.held.add(id);
    } else {
      await this.spool.writeEnvelope(next);
      if (!this.stopped) this.due.set(id, decision.next.at);
    }
  }

  /** One recipient's event: a log line and the delivery metric. */
  private record(qid: string, e: RecipientEvent): void {
    switch (e.event) {
      case 'delivered':
        this.onResult(e.connector ?? 'none', 'delivered', e.security);
        this.log.info({ qid, ...e }, 'delivered');
        return;
      case 'deferred':
        this.onResult(e.connector ?? 'none', 'deferred', e.security, e.code);
        this.log.info({ qid, ...e }, 'deferred');
        return;
      case 'bounced':
        if (e.expired) {
          this.onResult(e.connector ?? 'none', 'expired');
          this.log.warn({ qid, event: 'bounced', recipient: e.recipient, code: e.code, result: 'expired', last: e.last }, 'expired');
        } else {
          this.onResult(e.connector ?? 'none', 'failed', e.security);
          this.log.warn({ qid, event: 'bounced', recipient: e.recipient, connector: e.connector, code: e.code, result: e.result }, 'permanent failure');
        }
        return;
    }
  }

  private async sendDsn(env: Envelope, kind: DsnKind, recipients: DsnRecipient[], policy: Policy): Promise<void> {
    const headers = await readHeaders(this.spool.contentPath(env.id));
    const full = dsnReturns(env, kind) === 'full' ? await fsp.readFile(this.spool.contentPath(env.id)) : null;
    const text = buildDsn({
      kind,
      hostname: policy.gateway.hostname,
      queueId: env.id,
      originalSender: env.sender,
      arrivalDate: new Date(env.receivedAt),
      recipients,
      originalHeaders: headers,
      originalMessage: full,
      envid: env.dsn?.envid ?? null,
    });
    const w = await this.spool.create();
    try {
      await w.write(text);
      const dsn = await w.commit({
        receivedAt: new Date().toISOString(),
        sender: '',
        recipients: [{ address: env.sender, status: 'pending', connector: null, attempts: 0 }],
        bodyType: '8bitmime',
        smtpUtf8: false,
        // RFC 8689 §5: a report about a REQUIRETLS message is protected as the message was.
        ...(env.requireTls ? { requireTls: true as const } : {}),
        client: { ip: '127.0.0.1', helo: policy.gateway.hostname, sessionId: `dsn:${env.id}`, connector: null, tls: null },
      });
      this.log.info({ event: 'dsn', qid: dsn.id, original: env.id, kind, to: env.sender, recipients: recipients.map((r) => r.address) }, `${kind} DSN queued`);
      this.enqueue(dsn);
    } catch (e) {
      await w.abort();
      throw e;
    }
  }
}

/** The header block of a spooled message (bounded), for text/rfc822-headers. */
async function readHeaders(file: string, max = 64 * 1024): Promise<string> {
  const h = await fsp.open(file, 'r');
  try {
    const buf = Buffer.alloc(max);
    const { bytesRead } = await h.read(buf, 0, max, 0);
    const text = buf.subarray(0, bytesRead).toString('utf8');
    const end = text.indexOf('\r\n\r\n');
    return end >= 0 ? text.slice(0, end + 2) : text;
  } finally {
    await h.close();
  }
}
