// maxConnectionsPerIp and maxMessagesPerMinutePerIp across every node (SPEC §12), on Redis.
//
// Sessions: each node keeps its own hash of open sessions per IP (cg:conn:<node>) and its
// heartbeat in a sorted set (cg:nodes, score = last beat, every 2 s). A node's count is the sum
// over the nodes that beat in the last 10 s — so the slots of a node killed with -9 stop counting
// 10 s later, and a restarted node starts from an empty hash. Messages: one counter per IP and
// minute (cg:rate:<ip>:<minute>, expiring after two minutes), read as the local RateCounter does
// (this minute plus the share of the last one still in the window). Each is one Lua script: one
// round trip, atomic.
//
// Redis unreachable: this node's own counts stand in (LocalIpCounts), the outage is logged once
// and the gauge gateway_cluster_engine_up{engine="redis"} is 0; mail is never refused for it.
// A session counted locally is closed locally, one counted in Redis is closed in Redis.
import type { Redis } from 'ioredis';
import { redisClient, type EngineEvents } from './redis-client.js';
import { LocalIpCounts, type IpCounts } from '../smtp/counters.js';

const HEARTBEAT_MS = 2_000;
const NODE_DEAD_MS = 10_000;

const OPEN = `
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
local nodes = redis.call('ZRANGEBYSCORE', KEYS[2], tonumber(ARGV[3]) - tonumber(ARGV[4]), '+inf')
local total = 0
for _, n in ipairs(nodes) do
  local v = redis.call('HGET', ARGV[5] .. n, ARGV[1])
  if v then total = total + tonumber(v) end
end
return total`;

const CLOSE = `
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if v <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return v`;

const RATE = `
local c = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 120000)
local p = tonumber(redis.call('GET', KEYS[2]) or '0')
return {c, p}`;

export class RedisIpCounts implements IpCounts {
  private readonly redis: Redis;
  private readonly local = new LocalIpCounts();
  /** Sessions this node counted in Redis, per IP (the rest were counted locally). */
  private readonly inRedis = new Map<string, number>();
  /** Per IP, the last count in flight: a close waits for the open before it. */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly beat: NodeJS.Timeout;
  private healthy = true;
  private readonly prefix: string;

  constructor(
    url: string,
    private readonly node: string,
    private readonly events: EngineEvents,
    prefix = 'cg:',
  ) {
    this.prefix = prefix;
    this.redis = redisClient(url); // failures are reported through the counts that fail, once
    this.redis.on('ready', () => {
      // A (re)started node has no sessions: whatever its hash holds is from before.
      void this.redis.del(this.key('conn', this.node)).then(() => this.heartbeat(), () => {});
    });
    this.beat = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    this.beat.unref();
  }

  private key(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  private async heartbeat(): Promise<void> {
    try {
      await this.redis.zadd(this.key('nodes'), Date.now(), this.node);
      this.ok();
    } catch (e) {
      this.failed(e as Error);
    }
  }

  private ok(): void {
    if (this.healthy) return;
    this.healthy = true;
    this.events.up('redis');
  }

  private failed(err: Error): void {
    if (!this.healthy) return;
    this.healthy = false;
    this.events.down('redis', err);
  }

  private serial<T>(ip: string, work: () => Promise<T>): Promise<T> {
    const before = this.inFlight.get(ip) ?? Promise.resolve();
    const next = before.then(work, work);
    this.inFlight.set(ip, next);
    void next.finally(() => {
      if (this.inFlight.get(ip) === next) this.inFlight.delete(ip);
    });
    return next;
  }

  opened(ip: string): Promise<number> {
    return this.serial(ip, async () => {
      try {
        const n = (await this.redis.eval(OPEN, 2, this.key('conn', this.node), this.key('nodes'), ip, this.node, Date.now(), NODE_DEAD_MS, this.key('conn', ''))) as number;
        this.inRedis.set(ip, (this.inRedis.get(ip) ?? 0) + 1);
        this.ok();
        return n;
      } catch (e) {
        this.failed(e as Error);
        return this.local.opened(ip);
      }
    });
  }

  closed(ip: string): void {
    void this.serial(ip, async () => {
      const n = this.inRedis.get(ip) ?? 0;
      if (n <= 0) return this.local.closed(ip);
      if (n === 1) this.inRedis.delete(ip);
      else this.inRedis.set(ip, n - 1);
      try {
        await this.redis.eval(CLOSE, 1, this.key('conn', this.node), ip);
      } catch (e) {
        this.failed(e as Error); // the slot is freed anyway when this node's hash is reset or its heartbeat stops
      }
    });
  }

  async message(ip: string, now = Date.now()): Promise<number> {
    const minute = Math.floor(now / 60_000);
    try {
      const [count, previous] = (await this.redis.eval(RATE, 2, this.key('rate', ip, String(minute)), this.key('rate', ip, String(minute - 1)))) as [number, number];
      this.ok();
      return count + previous * (1 - (now % 60_000) / 60_000);
    } catch (e) {
      this.failed(e as Error);
      return this.local.message(ip);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.beat);
    try {
      await this.redis.multi().del(this.key('conn', this.node)).zrem(this.key('nodes'), this.node).exec();
    } catch {
      /* down: the heartbeat stops, the others stop counting us in 10 s */
    }
    this.redis.disconnect();
  }
}
