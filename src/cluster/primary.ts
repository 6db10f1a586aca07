// The first process's side of the worker processes (node:cluster): it forks them, counts their
// sessions and message rates for them (so that every limit is one number, whichever worker a
// client lands on), takes their committed messages into the queue and their log lines into
// the trace, collects their metrics, reloads and stops them, and replaces one that dies.
//
// Why this split (acceptors plus one scheduler, as Postfix's smtpd processes and its qmgr): SMTP
// sessions — TLS handshakes, parsing, the fsync before 250 — are the work that grows with
// clients and spreads over cores; the queue has one owner, so that no message is scheduled
// twice and the control channel, the trace and the DSNs stay single-writer.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../observe/log.js';
import type { Envelope } from '../queue/spool.js';
import type { Verdict } from '../delivery/verify.js';
import { LocalIpCounts, withCount, type IpCounts } from '../smtp/counters.js';
import { isFromWorker, type FromWorker, type MetricsJson, type ToWorker } from './protocol.js';

export interface PoolHandlers {
  queued(env: Envelope): void;
  trace?(line: string): void;
  /** A recipient callout for a worker, by the outbound connector's name in the policy in force. */
  verify(address: string, connector: string): Promise<Verdict>;
}

type Ports = Array<{ name: string; address: string; port: number }>;

export class WorkerPool {
  private readonly workers = new Map<number, Worker>();
  private total = 0;
  /** Sessions each worker has open, by IP: given back when the worker dies. */
  private readonly openBy = new Map<number, Map<string, number>>();
  private readonly waiting = new Map<string, (m: FromWorker) => void>();
  private nextId = 1;
  private stopping = false;

  constructor(
    private readonly count: number,
    private readonly log: Logger,
    private readonly handlers: PoolHandlers,
    /** Per-IP counts: this node's, or the cluster's (SPEC §12). */
    private readonly ips: IpCounts = new LocalIpCounts(),
  ) {}

  get size(): number {
    return this.workers.size;
  }

  /** Forks the workers; resolves with the listeners' ports when every one listens. */
  async start(): Promise<Ports> {
    // Each worker accepts on the shared listening sockets itself (no hand-off through this process).
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    const all = await Promise.all(Array.from({ length: this.count }, () => this.fork()));
    return all[0]!;
  }

  private fork(): Promise<Ports> {
    const w = cluster.fork();
    this.workers.set(w.id, w);
    this.openBy.set(w.id, new Map());
    return new Promise<Ports>((resolve, reject) => {
      let up = false;
      w.on('message', (m: unknown) => {
        if (!isFromWorker(m)) return;
        if (m.t === 'listening') {
          up = true;
          resolve(m.ports);
        } else if (m.t === 'start-failed') reject(new Error(m.error));
        else this.onMessage(w, m);
      });
      w.on('exit', (code, signal) => {
        this.gone(w);
        if (!up) reject(new Error(`worker ${w.id} exited before listening (${signal ?? code})`));
        else if (!this.stopping) {
          this.log.error({ event: 'worker-exited', worker: w.id, code, signal }, `worker ${w.id} exited (${signal ?? code}); starting another`);
          this.fork().catch((e: Error) => this.log.error({ event: 'worker-failed', err: e.message }, 'a replacement worker did not start'));
        }
      });
    });
  }

  /** A dead worker's sessions are closed: its counts are given back. */
  private gone(w: Worker): void {
    this.workers.delete(w.id);
    for (const [ip, n] of this.openBy.get(w.id) ?? []) {
      for (let i = 0; i < n; i++) this.ips.closed(ip);
      this.total -= n;
    }
    this.openBy.delete(w.id);
  }

  private onMessage(w: Worker, m: FromWorker): void {
    switch (m.t) {
      case 'queued':
        this.handlers.queued(m.env);
        return this.send(w, { t: 'taken', id: m.id });
      case 'trace':
        if (this.handlers.trace) for (const line of m.lines) this.handlers.trace(line);
        return;
      case 'open': {
        const mine = this.openBy.get(w.id);
        mine?.set(m.ip, (mine.get(m.ip) ?? 0) + 1);
        const total = ++this.total;
        void withCount(this.ips.opened(m.ip), (perIp) => this.send(w, { t: 'opened', id: m.id, perIp, total }));
        return;
      }
      case 'close': {
        const mine = this.openBy.get(w.id);
        const n = (mine?.get(m.ip) ?? 0) - 1;
        if (n < 0) return; // not counted (cannot happen: IPC keeps order)
        if (n) mine!.set(m.ip, n);
        else mine!.delete(m.ip);
        this.ips.closed(m.ip);
        this.total--;
        return;
      }
      case 'message':
        void withCount(this.ips.message(m.ip), (rate) => this.send(w, { t: 'rate', id: m.id, rate }));
        return;
      case 'verify':
        void this.handlers
          .verify(m.address, m.connector)
          .catch((e: Error): Verdict => ({ result: 'unknown', detail: `verification failed: ${e.message}`, cached: false, lastValidAt: null }))
          .then((verdict) => this.send(w, { t: 'verified', id: m.id, verdict }));
        return;
      case 'metrics':
      case 'reloaded':
        this.waiting.get(`${w.id}:${m.id}`)?.(m);
        return;
    }
  }

  private send(w: Worker, m: ToWorker): void {
    if (w.isConnected()) w.send(m);
  }

  /** Asks every worker; resolves with the answers that came within `ms`. */
  private ask(make: (id: number) => ToWorker, ms: number): Promise<FromWorker[]> {
    const id = this.nextId++;
    return Promise.all(
      [...this.workers.values()].map(
        (w) =>
          new Promise<FromWorker | null>((resolve) => {
            const key = `${w.id}:${id}`;
            const t = setTimeout(() => (this.waiting.delete(key), resolve(null)), ms);
            this.waiting.set(key, (m) => (clearTimeout(t), this.waiting.delete(key), resolve(m)));
            this.send(w, make(id));
          }),
      ),
    ).then((all) => all.filter((m): m is FromWorker => m !== null));
  }

  /** The workers' metrics, to aggregate with this process's. */
  async metrics(): Promise<MetricsJson[]> {
    const answers = await this.ask((id) => ({ t: 'metrics', id }), 2_000);
    return answers.flatMap((m) => (m.t === 'metrics' ? [m.metrics] : []));
  }

  /** Every worker reads the policy file again (this process has checked it); the errors of those that refused. */
  async reload(): Promise<string[]> {
    const answers = await this.ask((id) => ({ t: 'reload', id }), 10_000);
    const errors = answers.flatMap((m) => (m.t === 'reloaded' && m.error ? [m.error] : []));
    if (answers.length < this.workers.size) errors.push(`${this.workers.size - answers.length} worker(s) did not answer`);
    return errors;
  }

  /** Stops accepting; sessions get `graceMs` to finish; a worker still running after that is killed. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    const exits = [...this.workers.values()].map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
    for (const w of this.workers.values()) this.send(w, { t: 'stop', graceMs });
    const timer = setTimeout(() => {
      for (const w of this.workers.values()) w.process.kill('SIGKILL');
    }, graceMs + 3_000);
    await Promise.all(exits);
    clearTimeout(timer);
  }
}
