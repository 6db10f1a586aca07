// The Redis connection every shared-state object of a node opens (limits, dead destinations):
// commands fail at once while Redis is away (no offline queue, no retries, 500 ms at most), so
// that the caller falls back to the node's own state instead of waiting; it reconnects each
// second. Errors are reported by the callers through EngineEvents, once per outage.
import { Redis } from 'ioredis';

/** An engine stopped or started answering: logged once and shown by gateway_cluster_engine_up. */
export interface EngineEvents {
  down(engine: 'redis' | 'postgresql', err: Error): void;
  up(engine: 'redis' | 'postgresql'): void;
}

export function redisClient(url: string, opts: { subscriber?: boolean } = {}): Redis {
  // A subscriber connection only listens: it waits for Redis rather than failing commands.
  const r = opts.subscriber ? new Redis(url, { retryStrategy: () => 1000 }) : new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, retryStrategy: () => 1000 });
  r.on('error', () => {});
  return r;
}
