// The daemon: one object that owns what a running gateway is made of — the policy in force, the
// spool and its queue manager, delivery's dependencies, the bounce room, the listeners (here or in
// SMTP worker processes), the control channel, the message trace, TLS reports, the admin HTTP —
// and three operations: start, reload, stop. It wires the rooms together and decides nothing
// itself; `cli/serve.ts` only turns signals and file changes into these calls.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { adminToken } from '../config/lint.js';
import { reloadPolicy } from '../config/reload.js';
import { createLogger, type Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { Policy } from '../policy/types.js';
import { dnssecTrust } from '../policy/outbound-security.js';
import { enabledOutboundConnector } from '../policy/outbound.js';
import { Spool } from '../queue/spool.js';
import { QueueManager } from '../queue/manager.js';
import { startControl, type ControlHandler } from '../queue/control.js';
import { TlsReportSender } from '../queue/tls-report-sender.js';
import { deliver, type DeliveryDeps } from '../delivery/client.js';
import { buildDeliveryDeps, type BuiltDeliveryDeps } from '../delivery/deps.js';
import { RecipientVerifier, verifiedAddressesFile } from '../delivery/verify.js';
import { StsPolicies, stsCacheDir } from '../delivery/mta-sts.js';
import { dayOf, TlsResultLog, tlsResultDir } from '../delivery/tls-results.js';
import { SpoolBouncer } from '../bounce/bounce.js';
import { GatewayServer } from '../smtp/listener.js';
import { TraceStore, traceFile } from '../trace/store.js';
import { parseTraceQuery } from '../trace/query.js';
import { WorkerPool } from '../cluster/primary.js';
import { LocalCounters, LocalIpCounts, type IpCounts } from '../smtp/counters.js';
import { RedisIpCounts } from '../engines/redis-counts.js';
import type { EngineEvents } from '../engines/redis-client.js';
import { PgTrace, pgJournalFile } from '../engines/pg-trace.js';
import { RedisDestinations } from '../engines/redis-destinations.js';
import { drainMarker, drainQueue, readMarker } from './drain.js';
import { parseSmartHost } from '../config/normalize.js';

export interface DaemonInfo {
  version: string;
}

export class Daemon {
  policy: Policy;
  readonly log: Logger;
  /** The message trace: this node's SQLite, or the cluster's PostgreSQL (SPEC §12). */
  private readonly trace: TraceStore | PgTrace | null;
  private readonly spool: Spool;
  private readonly sts: StsPolicies;
  private readonly tlsResults: TlsResultLog;
  private delivery: BuiltDeliveryDeps;
  private metrics: Metrics | undefined;
  private manager!: QueueManager;
  private verifier!: RecipientVerifier;
  private reporter!: TlsReportSender;
  private workers: WorkerPool | null = null;
  /** Per-IP counts: this node's, or the cluster's on Redis (SPEC §12), chosen once at start. */
  private ips: IpCounts = new LocalIpCounts();
  /** Dead destinations shared with the other nodes (SPEC §12). */
  private sharedDestinations: RedisDestinations | null = null;
  private server: GatewayServer | null = null;
  private control: { close: () => void } | null = null;
  private ready = false;
  private stopping = false;
  private drainedResolve!: () => void;
  /** Resolves when a drain has handed every message over: the daemon is then to stop (serve.ts). */
  readonly drained = new Promise<void>((resolve) => (this.drainedResolve = resolve));
  /** The fingerprint of the policy in force when it was read (fingerprint()); '' when unsure. */
  private applied = '';
  /**
   * The policy file's bytes as the last reload (or the start) read them, whatever came of it; null
   * when the file changed while it was read. The file watch compares with this, so that a change
   * is seen whichever way the previous reload came (signal, command, watch).
   */
  private lastRead: Buffer | null = null;

  /** Reads the policy (already checked by the caller) and opens the trace and the logger. */
  constructor(
    private readonly file: string,
    policy: Policy,
    private readonly info: DaemonInfo,
  ) {
    this.policy = policy;
    // Everything the daemon writes — queue, trace, caches — is its own: 0600 files, 0700 directories,
    // whatever umask it was started with.
    process.umask(0o077);
    // The message trace (SPEC §10) is fed from the log lines themselves: it has no event they lack.
    const cluster = policy.gateway.cluster;
    this.trace =
      policy.gateway.trace.retention <= 0
        ? null
        : cluster?.traceDatabase
          ? new PgTrace(cluster.traceDatabase, cluster.node, pgJournalFile(policy.gateway.queue.directory), this.engineEvents())
          : new TraceStore(traceFile(policy.gateway.queue.directory));
    const trace = this.trace;
    this.log = createLogger(policy.gateway.log.level, undefined, trace ? (line) => trace.push(line) : undefined);
    this.spool = new Spool(policy.gateway.queue.directory);
    // MTA-STS policies are cached on disk beside the queue, across reloads and restarts.
    this.sts = new StsPolicies(
      stsCacheDir(this.spool.dir),
      { txt: (name) => this.delivery.resolver.txt(name), lookup: (host, options, cb) => this.delivery.resolver.lookup(host, options, cb) },
      (e) => (e.result === 'fetched' ? this.log.info(e, `MTA-STS policy of ${e.domain}: ${e.mode}`) : this.log.warn(e, `MTA-STS ${e.result} for ${e.domain}`)),
    );
    // RFC 8460: every TLS negotiation under DANE or MTA-STS is recorded beside the queue.
    this.tlsResults = new TlsResultLog(tlsResultDir(this.spool.dir));
    // Delivery reads the policy in force at each attempt; identity and resolver follow reloads.
    this.delivery = this.deliveryDeps(policy);
    this.applied = this.fingerprint(policy);
    this.lastRead = readOrNull(file);
  }

  /** Whether the policy file's bytes differ from what the last reload read (the file watch asks, serve.ts). */
  policyFileChanged(): boolean {
    const now = readOrNull(this.file);
    return now !== null && !(this.lastRead && now.equals(this.lastRead));
  }

  /** The policy file's text and the content of every file a policy names, hashed: what a reload would read. */
  private fingerprint(policy: Policy): string {
    const h = createHash('sha256');
    const files = [
      this.file,
      policy.gateway.tls.certificate,
      policy.gateway.tls.key,
      policy.gateway.tls.clientCertificateAuthorities,
      policy.gateway.admin?.tokenFile ?? null,
      ...policy.dkimSigningConfigs.map((c) => c.privateKey),
      policy.gateway.authentication?.arcSeal?.privateKey ?? null,
      ...policy.inboundConnectors.map((c) => c.tlsCertificateAuthorities),
      ...policy.outboundConnectors.map((c) => c.tlsCertificateAuthorities),
    ];
    for (const f of files) {
      if (!f) continue;
      h.update(f).update('\0');
      try {
        h.update(fs.readFileSync(f));
      } catch (e) {
        h.update(`unreadable: ${(e as NodeJS.ErrnoException).code ?? ''}`);
      }
      h.update('\0');
    }
    return h.digest('hex');
  }

  /** Delivery's dependencies for a policy, with the daemon's MTA-STS cache and report sinks. */
  private deliveryDeps(policy: Policy): BuiltDeliveryDeps {
    const report: NonNullable<DeliveryDeps['report']> = (e) => this.log.warn(e, `TLS policy failure (${e.policy} ${e.mode}) at ${e.remote}: ${e.result}`);
    const tlsResult: NonNullable<DeliveryDeps['tlsResult']> = (r) => {
      if (r.result !== 'success') this.metrics?.tlsPolicyFailures.inc({ policy: r.policyType, result: r.result });
      if (this.policy.gateway.outbound.tlsReporting) this.tlsResults.record(r);
    };
    return buildDeliveryDeps(policy, { sts: this.sts, report, tlsResult });
  }

  /**
   * Starts everything; resolves once the listeners accept mail (the queue is still being read in
   * the background then). Throws what keeps it from starting.
   */
  async start(): Promise<void> {
    const { log, spool } = this;
    if (this.trace) {
      const trace = this.trace;
      const purge = (): void => {
        void Promise.resolve()
          .then(() => trace.purge(this.policy.gateway.trace.retention))
          .then(
            (n) => n && log.info({ event: 'trace-purged', messages: n }, `message trace: ${n} message(s) older than the retention removed`),
            (e: Error) => log.warn({ event: 'trace-purge-failed', err: e.message }, 'message trace: the purge failed; it runs again in an hour'),
          );
      };
      purge();
      setInterval(purge, 3_600_000).unref();
    }
    // Metrics exist to be scraped: without an admin listener prom-client is not even loaded.
    const observe = this.policy.gateway.admin ? await import('../observe/metrics.js') : null;
    const metrics = observe ? new observe.Metrics() : undefined;
    this.metrics = metrics;
    metrics?.buildInfo.set({ version: this.info.version, node: process.version }, 1);
    // SPEC §12: the shared engines, if the policy names them (the trace's is opened by the constructor).
    const cluster = this.policy.gateway.cluster;
    if (cluster?.redis) metrics?.engineUp.set({ engine: 'redis' }, 1);
    if (cluster?.traceDatabase) metrics?.engineUp.set({ engine: 'postgresql' }, 1);
    const bouncer = new SpoolBouncer(spool);
    if (cluster?.redis) this.sharedDestinations = new RedisDestinations(cluster.redis, cluster.node);
    const manager = new QueueManager(spool, () => this.policy, log, (job) => deliver(job, this.delivery), (env, kind, recipients, p) => bouncer.bounce(env, kind, recipients, p), {
      onResult: (connector, result, security, code) => {
        metrics?.deliveries.inc({ connector, result });
        if (result === 'deferred' && code) metrics?.deferrals.inc({ connector, code });
        if (security) metrics?.mxSecurity.inc({ policy: security, result });
      },
      ...(this.sharedDestinations ? { shared: this.sharedDestinations } : {}),
    });
    this.manager = manager;
    this.reporter = new TlsReportSender({
      results: this.tlsResults,
      spool,
      enqueue: (env) => manager.enqueue(env),
      hostname: () => this.policy.gateway.hostname,
      txt: (name) => this.delivery.resolver.txt(name),
      lookup: (host, options, cb) => this.delivery.resolver.lookup(host, options, cb),
      log,
    });
    // queue retry/delete act through the daemon (queue/control.ts), never racing an attempt. Started
    // first: it also makes sure no other gateway runs on this queue before recovery touches it.
    this.control = await startControl(spool.dir, this.controlHandler());
    // A pid file for scripts and service managers (Postfix's master.pid), removed at stop.
    fs.writeFileSync(pidFile(spool.dir), `${process.pid}\n`);
    // The queue is recovered while the listeners start (a content file that appears meanwhile is
    // a receipt of this run, not a leftover: Spool.recover); then it is read in the background.
    const recovering = spool.recover(Date.now()).then((r) => {
      log.info({ event: 'queue-recovered', directory: spool.dir, messages: r.ids.length, removed: r.removed }, 'queue recovered');
      return r;
    });
    recovering.catch(() => {}); // its failure is reported where it is awaited
    // SMTP sessions: in this process, or in worker processes that hand their messages over.
    this.verifier = new RecipientVerifier(() => ({ hostname: this.policy.gateway.hostname, identity: this.delivery.identity, resolver: this.delivery.resolver, readCa: this.delivery.readCa }), { positiveFile: verifiedAddressesFile(spool.dir) });
    const verifier = this.verifier;
    const trace = this.trace;
    if (cluster?.redis) this.ips = new RedisIpCounts(cluster.redis, cluster.node, this.engineEvents());
    // An interrupted drain (.draining) resumes instead of listening.
    const resumeDrain = readMarker(spool.dir);
    this.workers =
      !resumeDrain && this.policy.gateway.workers > 0
        ? new WorkerPool(this.policy.gateway.workers, log, {
            queued: (env) => manager.enqueue(env),
            ...(trace ? { trace: (line: string) => trace.push(line) } : {}),
            verify: (address, name) => {
              const c = enabledOutboundConnector(this.policy, name);
              return c ? verifier.verify(address, c) : Promise.resolve({ result: 'unknown' as const, detail: `outbound connector "${name}" is not in the policy in force`, cached: false, lastValidAt: null });
            },
          }, this.ips)
        : null;
    this.server = this.workers || resumeDrain ? null : new GatewayServer({ getPolicy: () => this.policy, spool, log, metrics, verifier, counters: new LocalCounters(this.ips), handOver: (env) => manager.enqueue(env) });
    let listeners: GatewayServer['ports'] = [];
    if (this.server) {
      await this.server.start();
      listeners = this.server.ports;
    } else if (this.workers) listeners = await this.workers.start();
    if (this.policy.gateway.admin && observe && metrics) {
      const a = this.policy.gateway.admin;
      const workers = this.workers;
      const admin = await observe.startAdmin(a.address, a.port, metrics, {
        ready: () => this.ready,
        access: { hostnames: [this.policy.gateway.hostname], token: adminTokenOf(a.tokenFile) },
        ...(workers ? { others: () => workers.metrics() } : {}),
        ...(trace ? { trace: async (q: URLSearchParams) => (await trace.flush(), await trace.search(parseTraceQuery((n) => q.get(n) ?? undefined))) } : {}),
        refresh: () => {
          metrics.queueSize.set(manager.size);
          metrics.queueOldest.set(manager.oldestAgeSeconds);
          metrics.deadDestinations.set(manager.deadDestinations);
          metrics.parked.set(manager.parkedMessages);
        },
      });
      const port = (admin.address() as { port: number }).port;
      log.info({ event: 'admin-listening', address: a.address, port }, `admin HTTP on ${a.address}:${port}`);
      admin.unref();
    }
    if (resumeDrain) {
      await recovering;
      log.warn({ event: 'drain-resumed', to: resumeDrain }, `an interrupted drain to ${resumeDrain} resumes (${drainMarker(spool.dir)}); not listening`);
      void this.drain(resumeDrain).catch((e: Error) => log.error({ event: 'drain-failed', err: e.message }, 'the drain failed'));
      return;
    }
    // Listening already: the queue is read in the background (a large backlog delays no new mail).
    void manager.start((await recovering).ids);
    this.reporter.start();
    this.ready = true;
    this.logOutboundSecurity();
    const n = this.workers?.size ?? 0;
    log.info({ event: 'started', version: this.info.version, node: process.version, policy: path.resolve(this.file), listeners, workers: n }, `connector-gateway ${this.info.version} started${this.workers ? ` (${n} SMTP worker process${n === 1 ? '' : 'es'})` : ''}`);
  }

  /** An engine that stops answering is logged once and shown by a gauge; the node carries on with its own state. */
  private engineEvents(): EngineEvents {
    return {
      down: (engine, err) => {
        this.metrics?.engineUp.set({ engine }, 0);
        this.log.error({ event: 'engine-down', engine, err: err.message }, `${engine} unreachable: this node uses its own ${engine === 'redis' ? 'counts for the limits' : 'trace buffer'} until it is back`);
      },
      up: (engine) => {
        this.metrics?.engineUp.set({ engine }, 1);
        this.log.info({ event: 'engine-up', engine }, `${engine} answers again`);
      },
    };
  }

  private controlHandler(): ControlHandler {
    return {
      retry: (id) => this.manager.retry(id),
      delete: (id) => this.manager.delete(id),
      hold: (id, destination) => this.manager.hold(id, destination),
      release: (id, destination) => this.manager.release(id, destination),
      reload: () => this.reloadWithReport('reload command'),
      drain: (to) => this.drain(to),
      tlsReport: async (now) => {
        if (!this.policy.gateway.outbound.tlsReporting) throw new Error('TLS reporting is off (gateway.outbound.tlsReporting: false)');
        const day = now ? dayOf(new Date()) : dayOf(new Date(Date.now() - 86_400_000));
        const sent = await this.reporter.send(day, now ? new Date() : undefined);
        return sent.map((o) => `${o.ok ? 'sent' : 'FAILED'} ${o.domain} → ${o.rua}: ${o.detail}`);
      },
    };
  }

  /**
   * Drains this node (SPEC §12): not ready, no new sessions, those in progress finish, the queue
   * manager stops, then every queued message is handed to `to` (HOST:PORT: the balancer in front
   * of the other nodes, or one of them). With nothing left the daemon stops (exit 0); otherwise
   * it stays, not listening, and the next `drain` resumes — so does a restart (.draining).
   */
  async drain(to: string): Promise<{ left: number; lines: string[] }> {
    const peer = parseSmartHost(to);
    if (typeof peer === 'string') throw new Error(peer);
    const { log, spool } = this;
    fs.writeFileSync(drainMarker(spool.dir), `${to}\n`);
    if (this.ready || this.server || this.workers) {
      log.info({ event: 'draining', to }, `draining to ${to}: not ready, no new sessions`);
      await this.stopAccepting(10_000, 30_000);
    }
    const r = await drainQueue(spool, peer, this.delivery, log);
    log.info({ event: 'drain-done', to, handedOver: r.handedOver, left: r.left }, `drain to ${to}: ${r.handedOver} message(s) handed over, ${r.left} left`);
    if (r.left === 0) {
      fs.rmSync(drainMarker(spool.dir), { force: true });
      setImmediate(() => this.drainedResolve());
    }
    return { left: r.left, lines: [`${r.handedOver} message(s) handed over to ${to}, ${r.left} left`, ...r.lines] };
  }

  /**
   * Reloads the policy file. An invalid policy is refused and the running one stays in force;
   * sessions in progress keep the policy they started with; 'reloaded' is logged only when every
   * worker has the new one.
   */
  async reload(why: string): Promise<boolean> {
    return (await this.reloadWithReport(why)).applied;
  }

  /** reload, saying why it was refused (file:line:column) or what it warned about: for `connector-gateway reload`. */
  async reloadWithReport(why: string): Promise<{ applied: boolean; lines: string[] }> {
    const { log, metrics } = this;
    // Nothing changed since the policy in force was read (its text and every file it names): an
    // edit the file watch already applied, followed by SIGHUP, is one reload, not two.
    const read = readOrNull(this.file);
    const seen = this.fingerprint(this.policy);
    if (seen === this.applied) {
      this.lastRead = read;
      log.info({ event: 'reload-unchanged', trigger: why }, 'policy and its files unchanged: nothing to reload');
      return { applied: true, lines: ['unchanged: the policy and the files it names are as they were'] };
    }
    let next: BuiltDeliveryDeps | null = null;
    const r = reloadPolicy(this.file, (p) => {
      next = this.deliveryDeps(p); // reads the certificate and key: a refusal leaves nothing changed
      this.server?.reload(p);
    });
    // What was parsed is known only if the file did not change meanwhile (its bytes before the
    // read equal those after the fingerprint); else nothing is assumed and the next look reloads.
    const fingerprint = r.ok ? this.fingerprint(r.policy) : '';
    const after = readOrNull(this.file);
    const stable = read !== null && after !== null && read.equals(after);
    this.lastRead = stable ? read : null;
    if (!r.ok || !next) {
      metrics?.reloads.inc({ result: 'refused' });
      log.error({ event: 'reload-refused', trigger: why, errors: r.ok ? [] : r.errors }, 'policy reload refused; the running policy stays in force');
      return { applied: false, lines: r.ok ? ['refused'] : r.errors };
    }
    this.delivery.pool.closeAll(); // cached connections were made under the old policy and identity
    this.delivery = next;
    this.verifier.clear(); // answers were given by the old policy's next hops
    const before = this.policy;
    if (JSON.stringify(r.policy.gateway.admin ?? null) !== JSON.stringify(before.gateway.admin ?? null)) log.warn({ event: 'reload-admin' }, 'admin listener changes take effect at the next restart');
    if (r.policy.gateway.workers !== before.gateway.workers) log.warn({ event: 'reload-workers' }, 'a change of gateway.workers takes effect at the next restart');
    this.policy = r.policy;
    this.applied = stable ? fingerprint : '';
    const refused = this.workers ? await this.workers.reload() : [];
    if (refused.length) log.error({ event: 'reload-workers-failed', errors: refused }, 'some SMTP workers kept the previous policy');
    log.level = this.policy.gateway.log.level;
    metrics?.reloads.inc({ result: 'applied' });
    log.info({ event: 'reloaded', trigger: why, warnings: r.warnings }, 'policy reloaded');
    this.logOutboundSecurity();
    return { applied: true, lines: r.warnings };
  }

  /** Stops accepting, lets sessions finish (bounded), stops delivery, closes the stores. */
  async stop(signal: string, graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ event: 'stopping', signal }, 'stopping: no new sessions');
    await this.stopAccepting(graceMs, graceMs);
    this.reporter?.stop();
    if (this.ips instanceof RedisIpCounts) await this.ips.close();
    this.sharedDestinations?.close();
    await this.trace?.close();
    this.verifier?.close();
    this.control?.close();
    fs.rmSync(pidFile(this.spool.dir), { force: true });
    this.delivery.pool.closeAll();
    this.log.info({ event: 'stopped' }, 'stopped');
    await new Promise<void>((r) => this.log.flush(() => r()));
  }

  /** Not ready; the listeners close and their sessions get `sessionGraceMs` to finish; then the queue manager's attempts in flight get `queueGraceMs`. */
  private async stopAccepting(sessionGraceMs: number, queueGraceMs: number): Promise<void> {
    this.ready = false;
    await (this.server ? this.server.stop(sessionGraceMs) : this.workers?.stop(sessionGraceMs));
    this.server = null;
    this.workers = null;
    await this.manager?.stop(queueGraceMs);
  }

  /** One log line saying what secures MX delivery under this policy. */
  private logOutboundSecurity(): void {
    const { log, policy } = this;
    const trust = dnssecTrust(policy);
    const mode = policy.gateway.outbound.smtpDaneMode;
    if (mode === 'none') log.info({ event: 'outbound-security', dane: false, why: 'smtpDaneMode: none' }, 'DANE off');
    else if (trust.trusted) log.info({ event: 'outbound-security', dane: true, mode, servers: policy.gateway.dns.servers }, `DANE in effect (${mode}) for MX delivery`);
    else log.warn({ event: 'outbound-security', dane: false, why: trust.why }, `DANE not in effect: ${trust.why}`);
  }
}

function readOrNull(file: string): Buffer | null {
  try {
    return fs.readFileSync(file);
  } catch {
    return null;
  }
}

/** The admin bearer token: GATEWAY_ADMIN_TOKEN, else the first line of gateway.admin.tokenFile, else none. */
function adminTokenOf(tokenFile: string | null): string | null {
  const fromEnv = process.env.GATEWAY_ADMIN_TOKEN?.trim();
  if (fromEnv) return fromEnv;
  return tokenFile ? adminToken(fs.readFileSync(tokenFile, 'utf8')) || null : null;
}

/** The daemon's pid file, in its queue directory (the one place a gateway owns alone). */
export function pidFile(queueDir: string): string {
  return path.join(queueDir, '.gateway.pid');
}
