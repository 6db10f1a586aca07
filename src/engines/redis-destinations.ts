// Dead destinations across nodes (SPEC §12), on Redis: a node that finds a next hop dead (or
// alive again, or still dead after its probe) writes it under cg:dest:<destination> and
// publishes it on cg:destinations; the other nodes follow (queue/destinations.ts
// mergeRemoteHealth), so their messages for it park without an attempt. A probe is made by the
// node that takes cg:probe:<destination> for the interval (SET NX PX): one probe per interval
// for the cluster. A node that starts reads what is dead already.
//
// Redis unreachable: each node finds its dead destinations alone and probes on its own.
import type { Redis } from 'ioredis';
import { redisClient } from './redis-client.js';
import type { DestinationHealth, SharedDestinations } from '../queue/destinations.js';

const CHANNEL = 'destinations';
/** How long a destination's record is kept without news (a dead one is re-published at each failed probe). */
const RECORD_TTL_MS = 24 * 3600_000;

interface Published {
  node: string;
  dest: string;
  health: DestinationHealth;
}

export class RedisDestinations implements SharedDestinations {
  private readonly redis: Redis;
  private readonly sub: Redis;
  private listener: ((dest: string, health: DestinationHealth, node: string) => void) | null = null;

  constructor(
    url: string,
    private readonly node: string,
    private readonly prefix = 'cg:',
  ) {
    this.redis = redisClient(url);
    this.sub = redisClient(url, { subscriber: true });
    this.sub.on('message', (_channel: string, text: string) => {
      let m: Published;
      try {
        m = JSON.parse(text) as Published;
      } catch {
        return;
      }
      if (m.node !== this.node && typeof m.dest === 'string' && m.health) this.listener?.(m.dest, m.health, m.node);
    });
    // (Re)subscribed: what is dead now, in case changes were missed while disconnected.
    this.sub.on('ready', () => void this.sub.subscribe(this.prefix + CHANNEL).then(() => this.catchUp(), () => {}));
  }

  subscribe(fn: (dest: string, health: DestinationHealth, node: string) => void): void {
    this.listener = fn;
  }

  private async catchUp(): Promise<void> {
    try {
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}dest:*`, 'COUNT', 200);
        cursor = next;
        const values = keys.length ? await this.redis.mget(...keys) : [];
        for (const v of values) {
          if (!v) continue;
          const m = JSON.parse(v) as Published;
          if (m.node !== this.node) this.listener?.(m.dest, m.health, m.node);
        }
      } while (cursor !== '0');
    } catch {
      /* Redis went away again: the next ready catches up */
    }
  }

  publish(dest: string, health: DestinationHealth): void {
    const m = JSON.stringify({ node: this.node, dest, health } satisfies Published);
    const key = `${this.prefix}dest:${dest}`;
    const write = health.state === 'dead' ? this.redis.multi().set(key, m, 'PX', RECORD_TTL_MS).publish(this.prefix + CHANNEL, m) : this.redis.multi().del(key).publish(this.prefix + CHANNEL, m);
    // Redis down: the others find it themselves (the limits report the outage).
    write.exec().catch(() => {});
  }

  async mayProbe(dest: string, intervalMs: number): Promise<boolean> {
    try {
      const r = await this.redis.set(`${this.prefix}probe:${dest}`, this.node, 'PX', Math.max(1000, intervalMs), 'NX');
      return r === 'OK';
    } catch {
      return true; // Redis down: this node probes on its own
    }
  }

  close(): void {
    this.sub.disconnect();
    this.redis.disconnect();
  }
}
