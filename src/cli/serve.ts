// `connector-gateway serve`: the daemon. Loads the policy, recovers the queue, starts the
// listeners (in worker processes when gateway.workers > 0: cluster/), the queue manager and the
// admin HTTP; reloads on SIGHUP and file changes; stops on SIGTERM. It wires the rooms
// together and decides nothing itself.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatDiagnostics, loadPolicyFile } from '../config/load.js';
import { createLogger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { Policy } from '../policy/types.js';
import { Spool } from '../queue/spool.js';
import { QueueManager } from '../queue/manager.js';
import { SpoolBouncer } from '../bounce/bounce.js';
import { startControl } from '../queue/control.js';
import { deliver, type DeliveryDeps } from '../delivery/client.js';
import { buildDeliveryDeps } from '../delivery/deps.js';
import { RecipientVerifier, verifiedAddressesFile } from '../delivery/verify.js';
import { GatewayServer } from '../smtp/listener.js';
import { StsPolicies, stsCacheDir } from '../delivery/mta-sts.js';
import { dayOf, TlsResultLog, tlsResultDir } from '../delivery/tls-report.js';
import { TlsReporter } from '../queue/tls-reports.js';
import type { ControlHandler } from '../queue/control.js';
import { TraceStore, traceFile } from '../trace/store.js';
import { parseTraceQuery } from '../trace/query.js';
import { dnssecTrust } from '../policy/outbound-security.js';
import { enabledOutboundConnector } from '../policy/outbound.js';
import type { Logger } from '../observe/log.js';
import { configPath, fail, loadOrExit, VERSION } from './common.js';
import { WorkerPool } from '../cluster/primary.js';

export async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
  const file = configPath(values.config);
  let policy = loadOrExit(file);
  // The message trace (SPEC §10) is fed from the log lines themselves: it has no event they lack.
  const trace = policy.gateway.trace.retention > 0 ? new TraceStore(traceFile(policy.gateway.queue.directory)) : null;
  const log = createLogger(policy.gateway.log.level, undefined, trace ? (line) => trace.push(line) : undefined);
  if (trace) {
    const purge = (): void => {
      const n = trace.purge(policy.gateway.trace.retention);
      if (n) log.info({ event: 'trace-purged', messages: n }, `message trace: ${n} message(s) older than the retention removed`);
    };
    purge();
    setInterval(purge, 3_600_000).unref();
  }
  const spool = new Spool(policy.gateway.queue.directory);
  // MTA-STS policies are cached on disk beside the queue, across reloads and restarts.
  const sts = new StsPolicies(
    stsCacheDir(spool.dir),
    { txt: (name) => delivery.resolver.txt(name), lookup: (host, options, cb) => delivery.resolver.lookup(host, options, cb) },
    (e) => (e.result === 'fetched' ? log.info(e, `MTA-STS policy of ${e.domain}: ${e.mode}`) : log.warn(e, `MTA-STS ${e.result} for ${e.domain}`)),
  );
  const report: NonNullable<DeliveryDeps['report']> = (e) => log.warn(e, `TLS policy failure (${e.policy} ${e.mode}) at ${e.remote}: ${e.result}`);
  // RFC 8460: every TLS negotiation under DANE or MTA-STS is recorded beside the queue.
  const tlsResults = new TlsResultLog(tlsResultDir(spool.dir));
  const tlsResult: NonNullable<DeliveryDeps['tlsResult']> = (r) => {
    if (r.result !== 'success') metrics?.tlsPolicyFailures.inc({ policy: r.policyType, result: r.result });
    if (policy.gateway.outbound.tlsReporting) tlsResults.record(r);
  };
  // Delivery reads the policy in force at each attempt; identity and resolver follow reloads.
  let delivery = buildDeliveryDeps(policy, { sts, report, tlsResult });
  // Metrics exist to be scraped: without an admin listener prom-client is not even loaded.
  const observe = policy.gateway.admin ? await import('../observe/metrics.js') : null;
  const metrics: Metrics | undefined = observe ? new observe.Metrics() : undefined;
  metrics?.buildInfo.set({ version: VERSION, node: process.version }, 1);
  const bouncer = new SpoolBouncer(spool);
  const manager = new QueueManager(spool, () => policy, log, (job) => deliver(job, delivery), (env, kind, recipients, p) => bouncer.bounce(env, kind, recipients, p), {
    onResult: (connector, result, security, code) => {
      metrics?.deliveries.inc({ connector, result });
      if (result === 'deferred' && code) metrics?.deferrals.inc({ connector, code });
      if (security) metrics?.mxSecurity.inc({ policy: security, result });
    },
  });
  // queue retry/delete act through the daemon (queue/control.ts), never racing an attempt. Started
  // first: it also makes sure no other gateway runs on this queue before recovery touches it.
  const reporter = new TlsReporter({
    results: tlsResults,
    spool,
    enqueue: (env) => manager.enqueue(env),
    hostname: () => policy.gateway.hostname,
    txt: (name) => delivery.resolver.txt(name),
    lookup: (host, options, cb) => delivery.resolver.lookup(host, options, cb),
    log,
  });
  const handler: ControlHandler = {
    retry: (id) => manager.retry(id),
    delete: (id) => manager.delete(id),
    hold: (id, destination) => manager.hold(id, destination),
    release: (id, destination) => manager.release(id, destination),
    tlsReport: async (now) => {
      if (!policy.gateway.outbound.tlsReporting) throw new Error('TLS reporting is off (gateway.outbound.tlsReporting: false)');
      const day = now ? dayOf(new Date()) : dayOf(new Date(Date.now() - 86_400_000));
      const sent = await reporter.send(day, now ? new Date() : undefined);
      return sent.map((o) => `${o.ok ? 'sent' : 'FAILED'} ${o.domain} → ${o.rua}: ${o.detail}`);
    },
  };
  const control = await startControl(spool.dir, handler).catch((e: Error) => {
    log.fatal({ event: 'start-failed', err: e.message }, 'cannot start');
    log.flush();
    return fail(`cannot start: ${e.message}`, 1);
  });
  // The queue is recovered while the listeners start (a content file that appears meanwhile is
  // a receipt of this run, not a leftover: Spool.recover); then it is read in the background.
  const recovering = spool.recover(Date.now()).then((r) => {
    log.info({ event: 'queue-recovered', directory: spool.dir, messages: r.ids.length, removed: r.removed }, 'queue recovered');
    return r;
  });
  recovering.catch(() => {}); // its failure is reported where it is awaited
  // SMTP sessions: in this process, or in worker processes that hand their messages over.
  const verifier = new RecipientVerifier(() => ({ hostname: policy.gateway.hostname, identity: delivery.identity, resolver: delivery.resolver, readCa: delivery.readCa }), { positiveFile: verifiedAddressesFile(spool.dir) });
  const workers =
    policy.gateway.workers > 0
      ? new WorkerPool(policy.gateway.workers, log, {
          queued: (env) => manager.enqueue(env),
          ...(trace ? { trace: (line: string) => trace.push(line) } : {}),
          verify: (address, name) => {
            const c = enabledOutboundConnector(policy, name);
            return c ? verifier.verify(address, c) : Promise.resolve({ result: 'unknown' as const, detail: `outbound connector "${name}" is not in the policy in force`, cached: false, lastValidAt: null });
          },
        })
      : null;
  const server = workers ? null : new GatewayServer({ getPolicy: () => policy, spool, log, metrics, verifier, onQueued: (env) => manager.enqueue(env) });
  let ready = false;
  let listeners: GatewayServer['ports'] = [];
  try {
    if (server) {
      await server.start();
      listeners = server.ports;
    } else listeners = await workers!.start();
    if (policy.gateway.admin && observe && metrics) {
      const a = policy.gateway.admin;
      const admin = await observe.startAdmin(a.address, a.port, metrics, {
        ready: () => ready,
        ...(workers ? { others: () => workers.metrics() } : {}),
        ...(trace ? { trace: (q: URLSearchParams) => (trace.flush(), trace.search(parseTraceQuery((n) => q.get(n) ?? undefined))) } : {}),
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
    // Listening already: the queue is read in the background (a large backlog delays no new mail).
    void manager.start((await recovering).ids);
  } catch (e) {
    log.fatal({ event: 'start-failed', err: (e as Error).message }, 'cannot start');
    log.flush();
    fail(`cannot start: ${(e as Error).message}`, 1);
  }
  reporter.start();
  ready = true;
  logOutboundSecurity(log, policy);
  log.info({ event: 'started', version: VERSION, node: process.version, policy: path.resolve(file), listeners, workers: workers?.size ?? 0 }, `connector-gateway ${VERSION} started${workers ? ` (${workers.size} SMTP worker process${workers.size === 1 ? '' : 'es'})` : ''}`);

  // SIGHUP and changes of the file reload the policy; an invalid policy is refused and the
  // running one stays in force. Sessions in progress keep the policy they started with.
  const reload = async (why: string): Promise<void> => {
    const r = loadPolicyFile(file);
    if (!r.policy) {
      metrics?.reloads.inc({ result: 'refused' });
      log.error({ event: 'reload-refused', trigger: why, errors: formatDiagnostics(r) }, 'policy reload refused; the running policy stays in force');
      return;
    }
    try {
      const next = buildDeliveryDeps(r.policy, { sts, report, tlsResult });
      server?.reload(r.policy);
      delivery.pool.closeAll(); // cached connections were made under the old policy and identity
      delivery = next;
      verifier.clear(); // answers were given by the old policy's next hops
    } catch (e) {
      metrics?.reloads.inc({ result: 'refused' });
      log.error({ event: 'reload-refused', trigger: why, errors: [(e as Error).message] }, 'policy reload refused; the running policy stays in force');
      return;
    }
    if (JSON.stringify(r.policy.gateway.admin ?? null) !== JSON.stringify(policy.gateway.admin ?? null)) log.warn({ event: 'reload-admin' }, 'admin listener changes take effect at the next restart');
    if (r.policy.gateway.workers !== policy.gateway.workers) log.warn({ event: 'reload-workers' }, 'a change of gateway.workers takes effect at the next restart');
    policy = r.policy;
    // Every worker has the new policy before 'reloaded' is said.
    const refused = workers ? await workers.reload() : [];
    if (refused.length) log.error({ event: 'reload-workers-failed', errors: refused }, 'some SMTP workers kept the previous policy');
    log.level = policy.gateway.log.level;
    metrics?.reloads.inc({ result: 'applied' });
    log.info({ event: 'reloaded', trigger: why, warnings: formatDiagnostics(r) }, 'policy reloaded');
    logOutboundSecurity(log, policy);
  };
  process.on('SIGHUP', () => void reload('SIGHUP'));
  watchFile(file, () => void reload('file change'));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    ready = false;
    log.info({ event: 'stopping', signal }, 'stopping: no new sessions');
    await (server ? server.stop(10_000) : workers!.stop(10_000));
    await manager.stop(10_000);
    reporter.stop();
    trace?.close();
    verifier.close();
    control.close();
    delivery.pool.closeAll();
    log.info({ event: 'stopped' }, 'stopped');
    log.flush();
    setTimeout(() => process.exit(0), 50);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** Calls back (debounced) when the file's content changes; survives editors that replace the file. */
function watchFile(file: string, onChange: () => void): void {
  let last = safeRead(file);
  let timer: NodeJS.Timeout | null = null;
  const check = () => {
    timer = null;
    const now = safeRead(file);
    if (now !== null && now !== last) {
      last = now;
      onChange();
    }
  };
  const schedule = () => {
    if (!timer) timer = setTimeout(check, 300);
  };
  try {
    fs.watch(path.dirname(path.resolve(file)), (_e, name) => {
      if (!name || name === path.basename(file) || name.startsWith('..')) schedule();
    }).unref();
  } catch {
    /* no inotify: SIGHUP still works */
  }
  // Kubernetes ConfigMaps swap a symlink; a slow poll catches what the watch misses.
  setInterval(schedule, 5000).unref();
}

function safeRead(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** One log line saying what secures MX delivery under this policy. */
function logOutboundSecurity(log: Logger, policy: Policy): void {
  const trust = dnssecTrust(policy);
  const mode = policy.gateway.outbound.smtpDaneMode;
  if (mode === 'none') log.info({ event: 'outbound-security', dane: false, why: 'smtpDaneMode: none' }, 'DANE off');
  else if (trust.trusted) log.info({ event: 'outbound-security', dane: true, mode, servers: policy.gateway.dns.servers }, `DANE in effect (${mode}) for MX delivery`);
  else log.warn({ event: 'outbound-security', dane: false, why: trust.why }, `DANE not in effect: ${trust.why}`);
}
