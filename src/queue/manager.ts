// The queue manager (Postfix's qmgr): schedules delivery attempts for spooled messages, keeps
// per-recipient state in the envelope, retries on gateway.queue.retryIntervals, sends DSNs,
// expires, and removes finished messages. It reads policy through routeDomain, like smtp does.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { routeDomain, type Route } from '../policy/outbound.js';
import { acceptedDomainFor } from '../policy/accepted.js';
import { domainOf } from '../policy/inbound.js';
import type { Policy } from '../policy/types.js';
import type { Logger } from '../observe/log.js';
import type { Envelope, QueuedRecipient, Spool } from './spool.js';
import type { DeliveryJob, RecipientOutcome } from '../delivery/client.js';
import { buildDsn, type DsnKind, type DsnRecipient } from '../delivery/dsn.js';

export type DeliverFn = (job: DeliveryJob) => Promise<Map<string, RecipientOutcome>>;

export interface ManagerOptions {
  /** Called for each recipient outcome (metrics). */
  onResult?: (connector: string, result: 'delivered' | 'deferred' | 'failed' | 'expired') => void;
  maxConcurrent?: number; // messages in delivery at once
  perDestination?: number; // deliveries at once to one route
  tickMs?: number;
}

/** The file `connector-gateway queue retry` touches to ask the daemon to retry now. */
export const FLUSH_FILE = '.flush';

class Semaphore {
  private used = new Map<string, number>();
  private waiting = new Map<string, Array<() => void>>();
  constructor(private readonly limit: number) {}
  async acquire(key: string): Promise<void> {
    const n = this.used.get(key) ?? 0;
    if (n < this.limit) {
      this.used.set(key, n + 1);
      return;
    }
    await new Promise<void>((resolve) => {
      const q = this.waiting.get(key) ?? [];
      q.push(resolve);
      this.waiting.set(key, q);
    });
  }
  release(key: string): void {
    const q = this.waiting.get(key);
    const next = q?.shift();
    if (next) return next(); // the slot passes on
    if (q && !q.length) this.waiting.delete(key);
    const n = (this.used.get(key) ?? 1) - 1;
    if (n <= 0) this.used.delete(key);
    else this.used.set(key, n);
  }
}

function routeKey(route: Route, domain: string): string {
  if (route.kind === 'mx') return `mx:${domain}`;
  const c = route.connector;
  const perDomain = c.useMXRecord || (c.tlsSettings === 'domainValidation' && !c.tlsDomain);
  return `connector:${c.name}${perDomain ? `:${domain}` : ''}`;
}

export class QueueManager {
  private due = new Map<string, number>();
  private arrived = new Map<string, number>(); // id → receivedAt, for the oldest-age gauge
  private readonly onResult: NonNullable<ManagerOptions['onResult']>;
  private running = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private destinations: Semaphore;
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
    this.destinations = new Semaphore(opts.perDestination ?? 20);
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
    return this.due.size + this.running.size;
  }

  async start(ids: string[]): Promise<void> {
    for (const id of ids) {
      try {
        const env = await this.spool.readEnvelope(id);
        this.due.set(id, env.nextAttemptAt ? Date.parse(env.nextAttemptAt) : Date.now());
        this.arrived.set(id, Date.parse(env.receivedAt));
      } catch (e) {
        this.log.error({ event: 'queue-read-error', qid: id, err: (e as Error).message }, 'cannot read envelope');
      }
    }
    this.timer = setInterval(() => {
      this.checkFlush(); // on the timer only: not a file check for every message enqueued
      this.tick();
    }, this.tickMs);
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
        .finally(() => this.running.delete(id));
    }
  }

  private checkFlush(): void {
    const flag = path.join(this.spool.dir, FLUSH_FILE);
    if (!fs.existsSync(flag)) return;
    fs.rmSync(flag, { force: true });
    this.log.info({ event: 'queue-flush' }, 'retrying the queue now (queue retry)');
    void this.rescan();
  }

  /** Picks up the spool's view: messages added or rescheduled by `connector-gateway queue`. */
  private async rescan(): Promise<void> {
    const now = Date.now();
    for (const env of await this.spool.list()) {
      if (this.running.has(env.id)) continue;
      this.due.set(env.id, env.nextAttemptAt ? Math.min(Date.parse(env.nextAttemptAt), now) : now);
    }
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
    const q = policy.gateway.queue;
    const now = Date.now();
    const pending = env.recipients.filter((r) => r.status === 'pending');

    // Group pending recipients by route: each group is one SMTP transaction.
    const groups = new Map<string, { route: Route; recipients: QueuedRecipient[] }>();
    const routeName = new Map<QueuedRecipient, string>(); // for logs and metrics
    const noRoute: QueuedRecipient[] = [];
    for (const r of pending) {
      const domain = domainOf(r.address);
      const route = routeDomain(policy, domain);
      if (route.kind === 'mx' && acceptedDomainFor(policy.acceptedDomains, domain)) {
        noRoute.push(r); // its MX is us: never look it up
        continue;
      }
      const key = routeKey(route, domain);
      routeName.set(r, route.kind === 'connector' ? route.connector.name : 'mx');
      const g = groups.get(key) ?? { route, recipients: [] };
      g.recipients.push(r);
      groups.set(key, g);
    }

    const outcomes = new Map<QueuedRecipient, RecipientOutcome>();
    for (const r of noRoute) outcomes.set(r, { status: 'deferred', code: '4.4.0', detail: `No route to ${domainOf(r.address)}` });
    await Promise.all(
      [...groups].map(async ([key, g]) => {
        await this.destinations.acquire(key);
        try {
          const result = await this.deliverFn({
            envelope: env,
            recipients: g.recipients.map((r) => r.address),
            route: g.route,
            content: () => this.spool.contentStream(id),
          });
          for (const r of g.recipients) outcomes.set(r, result.get(r.address) ?? { status: 'deferred', code: '4.0.0', detail: 'no result' });
        } catch (e) {
          for (const r of g.recipients) outcomes.set(r, { status: 'deferred', code: '4.0.0', detail: `delivery error: ${(e as Error).message}` });
        } finally {
          this.destinations.release(key);
        }
      }),
    );

    const bounces: DsnRecipient[] = [];
    const relayed: DsnRecipient[] = [];
    for (const [r, o] of outcomes) {
      r.attempts++;
      r.lastResult = `${o.code} ${o.detail}`;
      const connector = routeName.get(r) ?? null;
      this.onResult(connector ?? 'none', o.status);
      if (o.status === 'delivered') {
        r.status = 'delivered';
        this.log.info({ event: 'delivered', qid: id, recipient: r.address, connector, remote: o.remote, result: o.detail }, 'delivered');
        // NOTIFY=SUCCESS: a next hop that offers DSN got the request and reports delivery;
        // one that does not gets the message from us, so we say it was relayed (RFC 3461 §5.2.2).
        if (r.notify?.includes('SUCCESS') && !o.dsnPassed) relayed.push(dsnRecipient(r, '2.0.0', o.detail, o.remote));
      } else if (o.status === 'failed') {
        r.status = 'failed';
        bounces.push(dsnRecipient(r, o.code, o.detail, o.remote));
        this.log.warn({ event: 'bounced', qid: id, recipient: r.address, connector, code: o.code, result: o.detail }, 'permanent failure');
      } else {
        this.log.info({ event: 'deferred', qid: id, recipient: r.address, connector, code: o.code, result: o.detail, attempts: r.attempts }, 'deferred');
      }
    }

    const stillPending = env.recipients.filter((r) => r.status === 'pending');
    const age = now - Date.parse(env.receivedAt);
    let delayed: DsnRecipient[] = [];
    if (stillPending.length) {
      if (age >= q.messageExpiration) {
        for (const r of stillPending) {
          r.status = 'failed';
          const last = r.lastResult ?? 'no attempt succeeded';
          bounces.push(dsnRecipient(r, '4.4.7', `message expired after ${Math.round(age / 60000)} minutes in the queue; last result: ${last}`));
          this.log.warn({ event: 'bounced', qid: id, recipient: r.address, code: '4.4.7', result: 'expired', last }, 'expired');
          this.onResult(r.connector ?? 'none', 'expired');
        }
      } else {
        const attempt = Math.max(...stillPending.map((r) => r.attempts), 1);
        const interval = q.retryIntervals[Math.min(attempt - 1, q.retryIntervals.length - 1)]!;
        env.nextAttemptAt = new Date(now + interval).toISOString();
        if (q.delayNotification > 0 && age >= q.delayNotification && !env.delayNotified) {
          env.delayNotified = true;
          delayed = stillPending.map((r) => dsnRecipient(r, (r.lastResult ?? '4.0.0').split(' ')[0]!, r.lastResult ?? 'not yet delivered'));
        }
      }
    }

    // DSNs are spooled before the original is updated or removed (at-least-once). Each
    // recipient's NOTIFY decides (RFC 3461 §4.1): none given = failures and delays.
    const reports: Array<[DsnKind, DsnRecipient[]]> = [
      ['failed', bounces.filter((b) => wants(b, 'FAILURE'))],
      ['delayed', delayed.filter((d) => wants(d, 'DELAY'))],
      ['relayed', relayed],
    ];
    const unwanted = [...bounces.filter((b) => !wants(b, 'FAILURE')), ...delayed.filter((d) => !wants(d, 'DELAY'))];
    if (unwanted.length) this.log.info({ event: 'dsn-suppressed', qid: id, reason: 'NOTIFY', recipients: unwanted.map((r) => r.address) }, 'no DSN: the sender asked for none');
    if (env.sender) {
      for (const [kind, list] of reports) if (list.length) await this.sendDsn(env, kind, list, policy);
    } else if (reports.some(([, list]) => list.length)) {
      this.log.warn({ event: 'dsn-suppressed', qid: id, reason: 'null sender' }, 'no DSN for the null sender');
    }

    if (env.recipients.every((r) => r.status !== 'pending')) {
      await this.spool.remove(id);
      this.arrived.delete(id);
      this.log.info({ event: 'removed', qid: id, delivered: env.recipients.filter((r) => r.status === 'delivered').length, failed: env.recipients.filter((r) => r.status === 'failed').length }, 'message done');
    } else {
      await this.spool.writeEnvelope(env);
      if (!this.stopped) this.due.set(id, Date.parse(env.nextAttemptAt!));
    }
  }

  private async sendDsn(env: Envelope, kind: DsnKind, recipients: DsnRecipient[], policy: Policy): Promise<void> {
    const headers = await readHeaders(this.spool.contentPath(env.id));
    // RET=FULL returns the whole message (up to a bound), otherwise the header block.
    const full = kind === 'failed' && env.dsn?.ret === 'FULL' && env.size <= DSN_FULL_LIMIT ? await fsp.readFile(this.spool.contentPath(env.id)) : null;
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

/** RET=FULL returns messages up to this size whole; larger ones get their headers only. */
const DSN_FULL_LIMIT = 10 * 1024 * 1024;

function dsnRecipient(r: QueuedRecipient, status: string, diagnostic: string, remote?: string): DsnRecipient {
  return { address: r.address, status, diagnostic, remote, orcpt: r.orcpt, notify: r.notify };
}

/** Whether a recipient's NOTIFY asks for this kind of report; without NOTIFY: failures and delays. */
function wants(r: DsnRecipient, what: 'FAILURE' | 'DELAY'): boolean {
  return r.notify ? r.notify.includes(what) : true;
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
