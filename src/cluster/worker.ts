// A worker process (node:cluster): the SMTP listeners, sharing their sockets with the other
// workers. It reads the policy, answers sessions and commits messages to the spool exactly as
// the single process does (smtp/), then hands each committed message to the first process,
// which owns the queue. Limits are counted by the first process (a round trip per session and
// per message); the worker's log lines go to stdout as usual and, for the message trace, to
// the first process, and recipient callouts are made by it (one cache). When the first process is gone the worker exits at once: its sessions
// end without a 250, so nothing is acknowledged that no queue manager will find.
import cluster from 'node:cluster';
import { formatDiagnostics, loadPolicyFile } from '../config/load.js';
import { reloadPolicy } from '../config/reload.js';
import { createLogger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { OutboundConnector, Policy } from '../policy/types.js';
import { Spool } from '../queue/spool.js';
import type { Verdict } from '../delivery/verify.js';
import { GatewayServer } from '../smtp/listener.js';
import type { SessionCounters } from '../smtp/counters.js';
import type { Envelope } from '../queue/spool.js';
import { isToWorker, type FromWorker, type ToWorker } from './protocol.js';

const send = (m: FromWorker): void => {
  if (process.connected) process.send!(m);
};

/** Counts and recipient callouts kept by the first process: one IPC round trip each. */
class Remote implements SessionCounters {
  private nextId = 1;
  private readonly pending = new Map<number, (m: ToWorker) => void>();

  answer(m: ToWorker): void {
    if (m.t === 'opened' || m.t === 'rate' || m.t === 'verified' || m.t === 'taken') {
      this.pending.get(m.id)?.(m);
      this.pending.delete(m.id);
    }
  }
  private ask(make: (id: number) => FromWorker): Promise<ToWorker> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      send(make(id));
    });
  }
  async open(ip: string): Promise<{ perIp: number; total: number }> {
    const m = await this.ask((id) => ({ t: 'open', id, ip }));
    return m.t === 'opened' ? { perIp: m.perIp, total: m.total } : { perIp: 0, total: 0 };
  }
  close(ip: string): void {
    send({ t: 'close', ip });
  }
  async message(ip: string): Promise<number> {
    const m = await this.ask((id) => ({ t: 'message', id, ip }));
    return m.t === 'rate' ? m.rate : 0;
  }
  /**
   * Hands a committed message to the first process and resolves when it has taken it; the trace
   * lines written so far (the 'queued' event among them) go first, on the same ordered channel.
   */
  async handOver(env: Envelope, flushTrace: () => void): Promise<void> {
    flushTrace();
    const m = await this.ask((id) => ({ t: 'queued', id, env }));
    if (m.t !== 'taken') throw new Error('the first process did not take the message');
  }
  async verify(address: string, connector: OutboundConnector): Promise<Verdict> {
    const m = await this.ask((id) => ({ t: 'verify', id, address, connector: connector.name }));
    return m.t === 'verified' ? m.verdict : { result: 'unknown', detail: 'no answer', cached: false, lastValidAt: null };
  }
}

/** Log lines for the trace, sent in batches (one IPC message per turn of the event loop), or at once by flush. */
function traceFeed(): { push: (line: string) => void; flush: () => void } {
  let batch: string[] = [];
  const flush = (): void => {
    if (!batch.length) return;
    send({ t: 'trace', lines: batch });
    batch = [];
  };
  return {
    push: (line) => {
      if (!batch.length) setImmediate(flush);
      batch.push(line);
    },
    flush,
  };
}

export async function runWorker(file: string): Promise<void> {
  // The first process coordinates reloads and stops; a signal to the whole process group is its.
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, () => {});
  process.umask(0o077); // what it commits to the queue is the daemon's own, as in the first process
  process.on('disconnect', () => process.exit(1));
  const loaded = loadPolicyFile(file);
  if (!loaded.policy) {
    send({ t: 'start-failed', error: formatDiagnostics(loaded).join('; ') });
    return;
  }
  let policy: Policy = loaded.policy;
  const id = cluster.worker?.id ?? 0;
  const feed = policy.gateway.trace.retention > 0 ? traceFeed() : null;
  const log = createLogger(policy.gateway.log.level, undefined, feed ? feed.push : undefined).child({ worker: id });
  const observe = policy.gateway.admin ? await import('../observe/metrics.js') : null;
  const metrics: Metrics | undefined = observe ? new observe.Metrics() : undefined;
  const remote = new Remote();
  const server = new GatewayServer({ getPolicy: () => policy, spool: new Spool(policy.gateway.queue.directory), log, metrics, verifier: remote, counters: remote, handOver: (env) => remote.handOver(env, () => feed?.flush()) });

  process.on('message', (m: unknown) => {
    if (!isToWorker(m)) return;
    switch (m.t) {
      case 'taken':
      case 'opened':
      case 'rate':
      case 'verified':
        return remote.answer(m);
      case 'metrics':
        if (!metrics) return send({ t: 'metrics', id: m.id, metrics: [] });
        void metrics.registry.getMetricsAsJSON().then((json) => send({ t: 'metrics', id: m.id, metrics: json }));
        return;
      case 'reload': {
        const r = reloadPolicy(file, (next) => server.reload(next));
        if (!r.ok) return send({ t: 'reloaded', id: m.id, error: r.errors.join('; ') });
        policy = r.policy;
        log.level = policy.gateway.log.level;
        return send({ t: 'reloaded', id: m.id, error: null });
      }
      case 'stop':
        void server.stop(m.graceMs).then(() => {
          log.flush();
          setTimeout(() => process.exit(0), 50);
        });
        return;
    }
  });

  try {
    await server.start();
  } catch (e) {
    send({ t: 'start-failed', error: (e as Error).message });
    return;
  }
  // Its 'listening' lines are flushed first (best effort: another process's stdout writes are not
  // ordered with ours); the 'started' line of the first process carries the ports.
  await new Promise<void>((r) => log.flush(() => r()));
  send({ t: 'listening', ports: server.ports });
}
