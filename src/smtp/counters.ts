// What the limits of policy/limits.ts are applied to: sessions open per client IP and in all,
// and messages per minute per client IP. Counting only; the decisions are policy's. With worker
// processes the counts are kept by the first process (cluster/primary.ts) and asked for over
// IPC, so that a limit is the same whichever worker a client lands on.

/** Messages per minute per key, as a sliding window over two one-minute buckets. */
export class RateCounter {
  private buckets = new Map<string, { minute: number; count: number; previous: number }>();

  /** Counts one event and returns the rate (events in the last minute, estimated). */
  hit(key: string, now = Date.now()): number {
    const minute = Math.floor(now / 60_000);
    let b = this.buckets.get(key);
    if (!b || b.minute < minute - 1) b = { minute, count: 0, previous: 0 };
    else if (b.minute === minute - 1) b = { minute, count: 0, previous: b.count };
    b.count++;
    this.buckets.set(key, b);
    if (this.buckets.size > 100_000) this.prune(minute);
    const elapsed = (now % 60_000) / 60_000;
    return b.count + b.previous * (1 - elapsed);
  }

  private prune(minute: number): void {
    for (const [k, b] of this.buckets) if (b.minute < minute - 1) this.buckets.delete(k);
  }
}

/** Open sessions per key. */
export class OpenCounter {
  private open = new Map<string, number>();

  /** Counts one more and returns how many are open now. */
  add(key: string): number {
    const n = (this.open.get(key) ?? 0) + 1;
    this.open.set(key, n);
    return n;
  }

  remove(key: string): void {
    const n = (this.open.get(key) ?? 1) - 1;
    if (n <= 0) this.open.delete(key);
    else this.open.set(key, n);
  }
}

/**
 * What maxConnectionsPerIp and maxMessagesPerMinutePerIp are applied to: this node's counts
 * (LocalIpCounts), or the cluster's (engines/redis-counts.ts, SPEC §12). Chosen once at start.
 */
export interface IpCounts {
  /** One more session from `ip`: how many are open from it now, this one included. */
  opened(ip: string): number | Promise<number>;
  closed(ip: string): void;
  /** One more message from `ip`: its rate (messages in the last minute, estimated). */
  message(ip: string): number | Promise<number>;
}

/** A count known at once (this node's) or answered later (the primary's, Redis'): `f` of it, as soon as it is known. */
export function withCount<T, U>(v: T | Promise<T>, f: (v: T) => U): U | Promise<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/** This node's per-IP counts. */
export class LocalIpCounts implements IpCounts {
  private readonly perIp = new OpenCounter();
  private readonly rate = new RateCounter();
  opened(ip: string): number {
    return this.perIp.add(ip);
  }
  closed(ip: string): void {
    this.perIp.remove(ip);
  }
  message(ip: string): number {
    return this.rate.hit(ip);
  }
}

/** The counts a session needs; synchronous in one process, a round trip to the primary in a worker. */
export interface SessionCounters {
  /** One more session from `ip`: those open from it and in all, this one included. */
  open(ip: string): { perIp: number; total: number } | Promise<{ perIp: number; total: number }>;
  close(ip: string): void;
  /** One more message from `ip`: its rate (messages in the last minute, estimated). */
  message(ip: string): number | Promise<number>;
}

/** The counts of one process: its sessions in all, and the per-IP counts it is given (this node's or the cluster's). */
export class LocalCounters implements SessionCounters {
  private total = 0;

  constructor(private readonly ips: IpCounts = new LocalIpCounts()) {}

  open(ip: string): { perIp: number; total: number } | Promise<{ perIp: number; total: number }> {
    const total = ++this.total;
    return withCount(this.ips.opened(ip), (perIp) => ({ perIp, total }));
  }
  close(ip: string): void {
    this.ips.closed(ip);
    this.total--;
  }
  message(ip: string): number | Promise<number> {
    return this.ips.message(ip);
  }
}
