// connector-gateway command line (SPEC §6).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatDiagnostics, loadPolicyFile } from '../config/load.js';
import { formatDiagnostic } from '../config/diagnostics.js';
import { createLogger } from '../observe/log.js';
import { Spool, isQueueId } from '../queue/spool.js';
import { FLUSH_FILE, QueueManager } from '../queue/manager.js';
import { ConnectionPool, deliver } from '../delivery/client.js';
import { HopResolver } from '../delivery/resolve.js';
import { RecipientVerifier } from '../delivery/verify.js';
import { GatewayServer } from '../smtp/server.js';
import { explain } from './explain.js';
import { validate } from './validate.js';
import type { Metrics } from '../observe/metrics.js';
import type { Policy } from '../policy/types.js';

// fsync and file I/O run on libuv's thread pool; 4 threads (the default) serialise the commits
// of concurrent sessions. Must be set before the pool's first use.
process.env.UV_THREADPOOL_SIZE ??= '16';

const USAGE = `usage: connector-gateway <command> [options]

  serve     [--config FILE]          run the daemon (default command)
  check     [--config FILE]          validate the policy; exit 0 ok, 1 errors
  explain   --ip IP [--cert-name NAME] [--tls] --from ADDR --to ADDR [--to ADDR…] [--config FILE]
                                     which connectors apply and what the gateway would answer
  validate  CONNECTOR [--to ADDR] [--from ADDR] [--config FILE]
                                     probe an outbound connector's next hops (and send a test)
  queue     list | show ID | retry [ID] | delete ID   [--config FILE]
  dev-certs [--dir DIR] [--hostname NAME] [--force]
                                     create a development CA and gateway certificate

The policy file is --config, else $GATEWAY_CONFIG, else config/gateway.yaml.`;

function configPath(v: string | undefined): string {
  return v ?? process.env.GATEWAY_CONFIG ?? 'config/gateway.yaml';
}

function fail(msg: string, code = 2): never {
  process.stderr.write(`connector-gateway: ${msg}\n`);
  process.exit(code);
}

function loadOrExit(file: string): Policy {
  const result = loadPolicyFile(file);
  for (const line of formatDiagnostics(result)) process.stderr.write(line + '\n');
  if (!result.policy) {
    const n = result.diagnostics.filter((d) => d.severity === 'error').length;
    fail(`${file}: ${n} error${n === 1 ? '' : 's'}; not starting`, 1);
  }
  return result.policy;
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
  const file = configPath(values.config);
  let policy = loadOrExit(file);
  const log = createLogger(policy.gateway.log.level);
  const spool = new Spool(policy.gateway.queue.directory);
  const recovered = await spool.recover();
  log.info({ event: 'queue-recovered', directory: spool.dir, messages: recovered.ids.length, removed: recovered.removed }, 'queue recovered');
  // Delivery reads the policy in force at each attempt; identity and resolver follow reloads.
  let delivery = deliveryDeps(policy);
  // Metrics exist to be scraped: without an admin listener prom-client is not even loaded.
  const observe = policy.gateway.admin ? await import('../observe/metrics.js') : null;
  const metrics: Metrics | undefined = observe ? new observe.Metrics() : undefined;
  const manager = new QueueManager(spool, () => policy, log, (job) => deliver(job, delivery), {
    onResult: (connector, result) => metrics?.deliveries.inc({ connector, result }),
  });
  const verifier = new RecipientVerifier(() => ({ hostname: policy.gateway.hostname, identity: delivery.identity, resolver: delivery.resolver, readCa: delivery.readCa }));
  const server = new GatewayServer({ getPolicy: () => policy, spool, log, metrics, verifier, onQueued: (env) => manager.enqueue(env) });
  let ready = false;
  try {
    await server.start();
    if (policy.gateway.admin && observe && metrics) {
      const a = policy.gateway.admin;
      const admin = await observe.startAdmin(a.address, a.port, metrics, {
        ready: () => ready,
        refresh: () => {
          metrics.queueSize.set(manager.size);
          metrics.queueOldest.set(manager.oldestAgeSeconds);
        },
      });
      const port = (admin.address() as { port: number }).port;
      log.info({ event: 'admin-listening', address: a.address, port }, `admin HTTP on ${a.address}:${port}`);
      admin.unref();
    }
  } catch (e) {
    log.fatal({ event: 'start-failed', err: (e as Error).message }, 'cannot start');
    log.flush();
    fail(`cannot start: ${(e as Error).message}`, 1);
  }
  await manager.start(recovered.ids);
  ready = true;
  log.info({ event: 'started', policy: path.resolve(file), listeners: server.ports }, 'connector-gateway started');

  // SIGHUP and changes of the file reload the policy; an invalid policy is refused and the
  // running one stays in force. Sessions in progress keep the policy they started with.
  const reload = (why: string) => {
    const r = loadPolicyFile(file);
    if (!r.policy) {
      metrics?.reloads.inc({ result: 'refused' });
      log.error({ event: 'reload-refused', trigger: why, errors: formatDiagnostics(r) }, 'policy reload refused; the running policy stays in force');
      return;
    }
    try {
      const next = deliveryDeps(r.policy);
      server.reload(r.policy);
      delivery.pool.closeAll(); // cached connections were made under the old policy and identity
      delivery = next;
      verifier.clear(); // answers were given by the old policy's next hops
    } catch (e) {
      metrics?.reloads.inc({ result: 'refused' });
      log.error({ event: 'reload-refused', trigger: why, errors: [(e as Error).message] }, 'policy reload refused; the running policy stays in force');
      return;
    }
    if (JSON.stringify(r.policy.gateway.admin ?? null) !== JSON.stringify(policy.gateway.admin ?? null)) log.warn({ event: 'reload-admin' }, 'admin listener changes take effect at the next restart');
    policy = r.policy;
    log.level = policy.gateway.log.level;
    metrics?.reloads.inc({ result: 'applied' });
    log.info({ event: 'reloaded', trigger: why, warnings: formatDiagnostics(r) }, 'policy reloaded');
  };
  process.on('SIGHUP', () => reload('SIGHUP'));
  watchFile(file, () => reload('file change'));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    ready = false;
    log.info({ event: 'stopping', signal }, 'stopping: no new sessions');
    await server.stop(10_000);
    await manager.stop(10_000);
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

function deliveryDeps(policy: Policy) {
  const cas = new Map<string, string>();
  return {
    policy,
    pool: new ConnectionPool(),
    identity: { key: fs.readFileSync(policy.gateway.tls.key, 'utf8'), cert: fs.readFileSync(policy.gateway.tls.certificate, 'utf8') },
    resolver: new HopResolver(policy.gateway.dns.servers),
    readCa: (f: string) => {
      let pem = cas.get(f);
      if (pem === undefined) cas.set(f, (pem = fs.readFileSync(f, 'utf8')));
      return pem;
    },
  };
}

function check(args: string[]): void {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
  const file = configPath(values.config);
  const r = loadPolicyFile(file);
  for (const line of formatDiagnostics(r)) process.stdout.write(line + '\n');
  const errors = r.diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = r.diagnostics.length - errors;
  process.stdout.write(`${file}: ${errors} error(s), ${warnings} warning(s)\n`);
  process.exit(errors ? 1 : 0);
}

async function queue(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string' } } });
  const file = configPath(values.config);
  const r = loadPolicyFile(file, { checkFiles: false });
  if (!r.policy) {
    for (const d of r.diagnostics) process.stderr.write(formatDiagnostic(file, d) + '\n');
    fail(`${file}: policy has errors`, 1);
  }
  const spool = new Spool(r.policy.gateway.queue.directory);
  const [sub, id] = positionals;
  if (sub === 'list' || sub === undefined) {
    const list = await spool.list();
    for (const e of list) {
      const pending = e.recipients.filter((x) => x.status === 'pending').length;
      process.stdout.write(
        `${e.id}  ${e.receivedAt}  ${String(e.size).padStart(8)}  <${e.sender}>  ${pending}/${e.recipients.length} pending  ${e.recipients.map((x) => x.address).join(', ')}\n`,
      );
    }
    process.stdout.write(`${list.length} message(s) in ${spool.dir}\n`);
    return;
  }
  if (sub === 'retry') {
    const targets = id ? [id] : (await spool.list()).map((e) => e.id);
    if (id && !isQueueId(id)) fail(`queue retry: "${id}" is not a queue id`);
    let n = 0;
    for (const t of targets) {
      try {
        const env = await spool.readEnvelope(t);
        env.nextAttemptAt = new Date().toISOString();
        await spool.writeEnvelope(env);
        n++;
      } catch {
        if (id) fail(`no message ${id} in ${spool.dir}`, 1);
      }
    }
    fs.writeFileSync(path.join(spool.dir, FLUSH_FILE), '');
    process.stdout.write(`${n} message(s) scheduled for immediate retry\n`);
    return;
  }
  if (!id || !isQueueId(id)) fail(`queue ${sub}: give a queue id`);
  if (sub === 'show') {
    try {
      process.stdout.write(JSON.stringify(await spool.readEnvelope(id), null, 2) + '\n');
    } catch {
      fail(`no message ${id} in ${spool.dir}`, 1);
    }
    return;
  }
  if (sub === 'delete') {
    try {
      await spool.remove(id);
    } catch {
      fail(`no message ${id} in ${spool.dir}`, 1);
    }
    process.stdout.write(`deleted ${id}\n`);
    return;
  }
  fail(`queue: unknown subcommand "${sub}" (list | show ID | retry [ID] | delete ID)`);
}

async function devCerts(args: string[]): Promise<void> {
  // node-forge is only needed here: the daemon does not load it.
  const { issueCertificate } = await import('../tls/issue.js');
  const { values } = parseArgs({
    args,
    options: { dir: { type: 'string', default: 'certs' }, hostname: { type: 'string', default: 'localhost' }, force: { type: 'boolean', default: false } },
  });
  const dir = values.dir!;
  const crt = path.join(dir, 'gateway.crt');
  if (fs.existsSync(crt) && !values.force) {
    process.stdout.write(`${crt} exists; leaving the certificates as they are (--force to replace)\n`);
    return;
  }
  fs.mkdirSync(dir, { recursive: true });
  const ca = issueCertificate({ commonName: 'connector-gateway development CA', isCA: true, organization: 'connector-gateway dev' });
  const gw = issueCertificate({
    commonName: values.hostname!,
    altNames: [values.hostname!, 'localhost', '127.0.0.1'],
    issuer: ca,
    crlUrl: 'http://localhost/connector-gateway-dev-ca.crl',
  });
  fs.writeFileSync(path.join(dir, 'dev-ca.crt'), ca.certPem);
  fs.writeFileSync(path.join(dir, 'dev-ca.key'), ca.keyPem, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'gateway.key'), gw.keyPem, { mode: 0o600 });
  fs.writeFileSync(crt, gw.certPem + ca.certPem);
  // Client certificates for trying the bundled connectors by certificate.
  for (const [file, name] of [['onprem', 'exchange.contoso.com'], ['fabrikam', 'mail.fabrikam.com']] as const) {
    const c = issueCertificate({ commonName: name, issuer: ca });
    fs.writeFileSync(path.join(dir, `${file}.key`), c.keyPem, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, `${file}.crt`), c.certPem + ca.certPem);
  }
  process.stdout.write(`wrote development certificates to ${dir}/: dev-ca, gateway, onprem, fabrikam (.crt/.key)\n`);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'serve':
      return serve(rest);
    case 'check':
      return check(rest);
    case 'explain':
      return explain(rest, configPath);
    case 'validate':
      return validate(rest, configPath);
    case 'queue':
      return queue(rest);
    case 'dev-certs':
      return devCerts(rest);
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      if (cmd.startsWith('--')) return serve(argv);
      fail(`unknown command "${cmd}"\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((e: Error & { code?: string }) => {
  if (e.code === 'USAGE' || e.code?.startsWith('ERR_PARSE_ARGS')) fail(`${e.message}\n${USAGE}`);
  fail(e.stack ?? String(e), 1);
});
