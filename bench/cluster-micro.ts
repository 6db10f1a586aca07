// Several gateways as one (issue 22): one limit check against a local Redis (target: p99 ≤ 1 ms)
// and a trace search for a recipient over 1,000,000 messages in PostgreSQL (target: < 200 ms).
// Real engines on loopback: redis-server and PostgreSQL (initdb, pg_ctl), as the tests run them.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { RedisIpCounts } from '../src/engines/redis-counts.js';
import { PgTrace, migrate } from '../src/engines/pg-trace.js';
import { postgresEngine, redisEngine } from '../test/helpers/engines.js';

export interface ClusterFigures {
  limitChecks: number;
  limitP50Ms: number;
  limitP99Ms: number;
  traceMessages: number;
  traceLoadSeconds: number;
  traceSearchMs: Record<string, number>;
}

const quiet = { down: () => {}, up: () => {} };

export async function clusterMicroBenchmark(n = 5_000, messages = 1_000_000): Promise<ClusterFigures> {
  const redis = await redisEngine();
  const pgsql = await postgresEngine();
  try {
    const counts = new RedisIpCounts(redis.url, 'bench', quiet);
    await new Promise((r) => setTimeout(r, 200)); // connected
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const ip = `192.0.2.${i % 200}`;
      const t0 = performance.now();
      if (i % 2) await counts.message(ip);
      else {
        await counts.opened(ip);
        counts.closed(ip);
      }
      times.push(performance.now() - t0);
    }
    await counts.close();
    times.sort((a, b) => a - b);
    const q = (p: number): number => times[Math.min(times.length - 1, Math.floor(p * times.length))]!;

    // 1,000,000 messages of two recipients each, written by SQL (what the nodes would have written over time).
    const client = new pg.Client({ connectionString: pgsql.url });
    await client.connect();
    await migrate(client);
    const t0 = performance.now();
    const start = Date.parse('2026-11-01T00:00:00Z');
    await client.query(
      `INSERT INTO messages (qid, node, received_at, sender, message_id, size, client_ip, connector, tls, status)
       SELECT 'Q' || g, 'mx' || (g % 3), $1::bigint + g * 2000, 'sender' || (g % 5000) || '@example.org', g || '@example.org', 10240, '192.0.2.' || (g % 250), 'Partner', 'TLSv1.3', 'delivered'
       FROM generate_series(1, $2) g`,
      [start, messages],
    );
    await client.query(`INSERT INTO recipients (qid, address, status) SELECT 'Q' || g, 'user' || (g % 20000) || '@contoso.com', 'delivered' FROM generate_series(1, $1) g`, [messages]);
    await client.query(`INSERT INTO recipients (qid, address, status) SELECT 'Q' || g, 'team' || (g % 100) || '@contoso.com', 'delivered' FROM generate_series(1, $1) g`, [messages]);
    await client.query('ANALYZE');
    const traceLoadSeconds = (performance.now() - t0) / 1000;
    await client.end();
    const trace = new PgTrace(pgsql.url, 'bench', null);
    const timed = async (q: Parameters<PgTrace['search']>[0]): Promise<number> => {
      await trace.search(q); // warm
      const s = performance.now();
      await trace.search(q);
      return performance.now() - s;
    };
    const traceSearchMs = {
      recipient: await timed({ recipient: 'user12345@contoso.com' }),
      'busy recipient': await timed({ recipient: 'team7@contoso.com' }),
      sender: await timed({ sender: 'sender42@example.org' }),
      messageId: await timed({ messageId: '777777@example.org' }),
    };
    await trace.close();
    return { limitChecks: n, limitP50Ms: q(0.5), limitP99Ms: q(0.99), traceMessages: messages, traceLoadSeconds, traceSearchMs };
  } finally {
    await redis.stop();
    await pgsql.remove();
  }
}
