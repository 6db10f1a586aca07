// npm run bench: the gateway and Postfix doing the same job under the same load, side by side,
// plus an idle-TLS memory scenario and a policy micro-benchmark. Loopback only, bounded.
//   node dist-bench/bench/run.js [--sessions 50] [--messages 20] [--size 10240] [--idle 2000]
//                                [--no-postfix] [--connectors 10000] [--ranges 100000]
//                                [--backlog 10000] [--only-backlog] [--no-attack] [--only-attack]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { configurePostfix, ensurePostfixInstalled, POSTFIX_DIR, startPostfix, stopPostfix } from './postfix.js';
import { policyMicroBenchmark } from './policy-micro.js';
import { securityMicroBenchmark, type SecurityFigures } from './security-micro.js';
import { traceMicroBenchmark, type TraceFigures } from './trace-micro.js';
import { authMicroBenchmark, type AuthFigures } from './auth-micro.js';
import { clusterMicroBenchmark, type ClusterFigures } from './cluster-micro.js';
import { postgresEngine, redisEngine } from '../test/helpers/engines.js';
import { attackScenario, printAttacks, type AttackFigures } from './attack.js';
import { backlogScenario, type BacklogFigures, type BacklogKit, type BacklogTarget, type LoadResult, type SinkDone } from './backlog.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const HERE = import.meta.dirname;
const { values: opt } = parseArgs({
  options: {
    sessions: { type: 'string', default: '50' },
    messages: { type: 'string', default: '20' },
    size: { type: 'string', default: '10240' },
    idle: { type: 'string', default: '2000' },
    'no-postfix': { type: 'boolean', default: false },
    connectors: { type: 'string', default: '10000' },
    ranges: { type: 'string', default: '100000' },
    profile: { type: 'string' }, // a directory: the gateway runs with --cpu-prof into it
    'only-gateway': { type: 'boolean', default: false },
    'only-idle': { type: 'boolean', default: false }, // just the idle-TLS memory scenario
    'node-flags': { type: 'string', default: '' }, // extra node flags for the gateway process (experiments)
    'idle-seconds': { type: 'string', default: '20' }, // how long the idle sessions are held and RSS sampled
    trace: { type: 'string', default: 'on' }, // the message trace store: on (production's default) | off
    backlog: { type: 'string', default: '10000' }, // messages in the backlog scenario (0: skip it)
    'only-backlog': { type: 'boolean', default: false },
    'no-attack': { type: 'boolean', default: false }, // skip the "under attack" scenario
    'only-attack': { type: 'boolean', default: false },
    'no-auth': { type: 'boolean', default: false },
    'no-cluster': { type: 'boolean', default: false }, // skip the run with gateway.cluster on Redis and PostgreSQL (issue 22) // skip the run with sender authentication and signing on (issue 19)
  },
});
const SESSIONS = Number(opt.sessions);
const MESSAGES = Number(opt.messages);
const SIZE = Number(opt.size);
const TOTAL = SESSIONS * MESSAGES;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-bench-'));

// Every child we start is stopped when we stop, whatever happens.
const children = new Set<ChildProcess>();
function track<T extends ChildProcess>(c: T): T {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
});

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

/** ECDSA P-256 certificates (the same for both targets): a CA, the server, the sink. */
function makeCerts(): { ca: string; cert: string; key: string; sinkCert: string; sinkKey: string } {
  const p = (f: string) => path.join(work, f);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '90', '-subj', '/CN=Bench CA']);
  for (const [name, cn] of [['server', 'localhost'], ['sink', 'sink.bench.test']] as const) {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`]);
    fs.writeFileSync(p(`${name}.ext`), `subjectAltName=DNS:${cn},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`);
    openssl(['x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p(`${name}.crt`), '-days', '90', '-extfile', p(`${name}.ext`)]);
  }
  return { ca: p('ca.crt'), cert: p('server.crt'), key: p('server.key'), sinkCert: p('sink.crt'), sinkKey: p('sink.key') };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

// One line reader per child: waitLine may be called several times on the same child.
const readers = new WeakMap<ChildProcess, readline.Interface>();

function lines(child: ChildProcess, onLine: (o: Record<string, unknown>) => void): void {
  let rl = readers.get(child);
  if (!rl) readers.set(child, (rl = readline.createInterface({ input: child.stdout! })));
  rl.on('line', (l) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(l) as Record<string, unknown>;
    } catch {
      return; // not JSON
    }
    onLine(o);
  });
}

function waitLine(child: ChildProcess, pred: (o: Record<string, unknown>) => boolean, ms: number, what: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out (${ms} ms) waiting for ${what}`)), ms);
    lines(child, (o) => {
      if (pred(o)) {
        clearTimeout(t);
        resolve(o);
      }
    });
  });
}

async function waitPort(port: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

// ---- /proc readings ------------------------------------------------------------------

function stat(pid: number): { ppid: number; ticks: number; childTicks: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), childTicks: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}

function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = stat(Number(d));
    if (s) parent.set(Number(d), s.ppid);
  }
  const out = [root];
  for (let changed = true; changed; ) {
    changed = false;
    for (const [pid, pp] of parent) if (out.includes(pp) && !out.includes(pid)) (out.push(pid), (changed = true));
  }
  return out;
}

/** CPU seconds of a process tree, including reaped children. */
function cpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of descendants(root)) {
    const s = stat(pid);
    if (s) ticks += s.ticks + s.childTicks;
  }
  return ticks / CLK_TCK;
}

/** gateway_sessions_active from the gateway's own metrics endpoint. */
async function activeSessions(adminPort: number): Promise<number | null> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const m = /^gateway_sessions_active (\d+)/m.exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function treeRssMb(root: number): number {
  return descendants(root).reduce((s, pid) => s + statusKb(pid, 'VmRSS'), 0) / 1024;
}

// ---- one run ---------------------------------------------------------------------------

interface Figures {
  acceptedPerSec: number;
  deliveredPerSec: number;
  p50ms: number;
  p99ms: number;
  peakRssMb: number;
  cpuSecondsPer1000: number;
  accepted: number;
  errors: number;
}

async function loadAndMeasure(port: number, sink: ChildProcess, rootPid: number, ca: string, peakRss: () => number): Promise<Figures> {
  const before = cpuSeconds(rootPid);
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, peakRss())), 100);
  const done = waitLine(sink, (o) => typeof o.done === 'number', 300_000, 'the sink to receive every message');
  const lg = track(
    spawn(process.execPath, [path.join(HERE, 'loadgen.js')], {
      env: { ...process.env, LOADGEN: JSON.stringify({ mode: 'send', port, sessions: SESSIONS, messages: MESSAGES, size: SIZE, ca, to: 'rcpt@bench.test' }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const result = await waitLine(lg, (o) => 'accepted' in o, 300_000, 'the load generator');
  const accepted = result.accepted as number;
  if (accepted !== TOTAL) process.stderr.write(`warning: ${TOTAL - accepted} messages not accepted: ${JSON.stringify(result.firstErrors)}\n`);
  const sunk = accepted === TOTAL ? await done : { done: Date.now() };
  clearInterval(sampler);
  peak = Math.max(peak, peakRss());
  const cpu = cpuSeconds(rootPid) - before;
  const start = result.start as number;
  return {
    acceptedPerSec: accepted / (((result.end as number) - start) / 1000),
    deliveredPerSec: accepted / (((sunk.done as number) - start) / 1000),
    p50ms: result.p50 as number,
    p99ms: result.p99 as number,
    peakRssMb: peak,
    cpuSecondsPer1000: (cpu / accepted) * 1000,
    accepted,
    errors: result.errors as number,
  };
}

function startSink(port: number, certs: ReturnType<typeof makeCerts>, expect = TOTAL): Promise<ChildProcess> {
  const sink = track(spawn(process.execPath, [path.join(HERE, 'sink.js')], {
    env: { ...process.env, SINK: JSON.stringify({ port, cert: certs.sinkCert, key: certs.sinkKey, expect }) },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  }));
  return waitLine(sink, (o) => o.listening === port, 10_000, 'the sink').then(() => sink);
}

/**
 * The default scenario's policy. `auth`: the same with sender authentication on (dmarc: enforce,
 * every message ARC-sealed) and the load's From domain DKIM-signed (RSA 2048) on the way out,
 * through a partner connector (signing skips onPremises ones). DNS is a closed port, as in the
 * run without: each lookup fails at once (temperror), so the figures are the checks' own cost.
 */
function gatewayPolicy(port: number, sinkPort: number, certs: ReturnType<typeof makeCerts>, dir: string, adminPort: number, auth = false, cluster: { redis: string; traceDatabase: string } | null = null): string {
  const file = path.join(dir, 'gateway.yaml');
  const key = (name: string): string => {
    const f = path.join(dir, name);
    openssl(['genpkey', '-algorithm', 'rsa', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', f]);
    return f;
  };
  const authKeys = auth
    ? {
        authentication: { dmarc: 'enforce', arcSeal: { domain: 'bench.test', selector: 'arc', privateKey: key('arc.key') } },
      }
    : {};
  fs.writeFileSync(
    file,
    stringify({
      gateway: {
        hostname: 'gateway.bench.test',
        ...(process.env.BENCH_WORKERS ? { workers: Number(process.env.BENCH_WORKERS) } : {}),
        listeners: [{ name: 'bench', address: '127.0.0.1', port }],
        tls: { certificate: certs.cert, key: certs.key },
        queue: { directory: path.join(dir, 'queue') },
        limits: { maxConnections: 10000, maxConnectionsPerIp: 10000, maxMessagesPerMinutePerIp: 100000000 },
        dns: { servers: ['127.0.0.1:9'] },
        log: { level: process.env.BENCH_LOG_LEVEL ?? 'info' },
        trace: { retention: opt.trace === 'off' ? 0 : '30d' },
        // As in production: the metrics endpoint on (the idle scenario reads its session gauge).
        admin: { address: '127.0.0.1', port: adminPort },
        ...authKeys,
        ...(cluster ? { cluster: { node: 'bench1', ...cluster } } : {}),
      },
      acceptedDomains: [{ domain: 'bench.test' }],
      inboundConnectors: [{ name: 'Load', connectorType: 'partner', senderIPAddresses: ['127.0.0.0/8'], requireTls: true }],
      outboundConnectors: [
        { name: 'Sink', connectorType: auth ? 'partner' : 'onPremises', recipientDomains: ['bench.test'], smartHosts: [`[127.0.0.1]:${sinkPort}`], tlsSettings: 'certificateValidation', tlsCertificateAuthorities: certs.ca },
      ],
      ...(auth ? { dkimSigningConfigs: [{ domainName: 'bench.example', selector: 'rsa', privateKey: key('dkim.key') }] } : {}),
    }),
  );
  return file;
}

/**
 * Where the gateway's own time from the final dot to the 250 went, from its `queued` events
 * (delays: the end-of-DATA checks and rules, then the commit): p50 and p99 of each, in ms. The
 * rest of what the client measures is the network, TLS and the event loop's queue.
 */
interface AcceptBreakdown {
  messages: number;
  checksP50: number;
  checksP99: number;
  commitP50: number;
  commitP99: number;
}
function acceptBreakdown(logFile: string): AcceptBreakdown | null {
  const checks: number[] = [];
  const commit: number[] = [];
  for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"event":"queued"')) continue;
    try {
      const d = (JSON.parse(line) as { delays?: { checks: number; commit: number } }).delays;
      if (d) (checks.push(d.checks), commit.push(d.commit));
    } catch {
      /* a line cut by the stop */
    }
  }
  if (!checks.length) return null;
  const q = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
  return { messages: checks.length, checksP50: q(checks, 0.5), checksP99: q(checks, 0.99), commitP50: q(commit, 0.5), commitP99: q(commit, 0.99) };
}

async function startGateway(file: string, dir: string, port: number): Promise<ChildProcess> {
  const log = fs.openSync(path.join(dir, 'gateway.log'), 'w');
  const prof = opt.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(opt.profile)}`] : [];
  const gw = track(spawn(process.execPath, [...prof, ...opt['node-flags']!.split(' ').filter(Boolean), path.join(ROOT, 'dist/cli/main.js'), 'serve', '--config', file], { stdio: ['ignore', log, 'inherit'] }));
  await waitPort(port);
  return gw;
}

async function stopGateway(gw: ChildProcess): Promise<void> {
  const exited = new Promise((r) => gw.once('exit', r));
  gw.kill('SIGTERM');
  await exited;
}

// ---- the backlog scenario (bench/backlog.ts), for the gateway and for Postfix --------------

function backlogKit(certs: ReturnType<typeof makeCerts>, sinkPort: number): BacklogKit {
  return {
    ca: certs.ca,
    sinkPort,
    load: async (port, total) => {
      const sessions = 20;
      const lg = track(
        spawn(process.execPath, [path.join(HERE, 'loadgen.js')], {
          env: { ...process.env, LOADGEN: JSON.stringify({ mode: 'send', port, sessions, messages: Math.ceil(total / sessions), size: 4096, ca: certs.ca, to: 'rcpt@bench.test' }) },
          stdio: ['ignore', 'pipe', 'inherit'],
        }),
      );
      return (await waitLine(lg, (o) => 'accepted' in o, 3_600_000, 'the load generator')) as unknown as LoadResult;
    },
    sink: async (expect) => {
      const sink = await startSink(sinkPort, certs, expect);
      const done = waitLine(sink, (o) => typeof o.done === 'number', 3_600_000, 'the sink to receive the backlog') as unknown as Promise<SinkDone>;
      return { done, stop: () => sink.kill('SIGTERM') };
    },
  };
}

type Startable = BacklogTarget & { init: () => Promise<void> };

function gatewayTarget(certs: ReturnType<typeof makeCerts>, sinkPort: number): Startable {
  const dir = path.join(work, 'backlog-gateway');
  fs.mkdirSync(dir, { recursive: true });
  let gw: ChildProcess | null = null;
  let file = '';
  const target: Startable = {
    name: 'gateway',
    port: 0,
    init: async () => {
      target.port = await freePort();
      file = gatewayPolicy(target.port, sinkPort, certs, dir, await freePort());
    },
    start: async () => {
      gw = await startGateway(file, dir, target.port);
    },
    stop: async () => {
      if (gw) await stopGateway(gw);
      gw = null;
    },
    loaded: async () => {
      while (!fs.readFileSync(path.join(dir, 'gateway.log'), 'utf8').includes('"event":"queue-loaded"')) await new Promise((r) => setTimeout(r, 100));
    },
    flush: async () => {
      execFileSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'queue', 'retry', '--config', file], { stdio: 'ignore' });
    },
    rssMb: () => (gw?.pid ? treeRssMb(gw.pid) : 0),
  };
  return target;
}

function postfixTarget(certs: ReturnType<typeof makeCerts>, sinkPort: number): Startable {
  let master = 0;
  const target: Startable = {
    name: 'Postfix',
    port: 0,
    init: async () => {
      ensurePostfixInstalled();
      target.port = await freePort();
      configurePostfix({ port: target.port, sinkPort, cert: certs.cert, key: certs.key, ca: certs.ca, sinkName: 'sink.bench.test' });
    },
    start: async () => {
      master = startPostfix();
      await waitPort(target.port);
    },
    stop: async () => {
      stopPostfix();
      while (master && fs.existsSync(`/proc/${master}`)) await new Promise((r) => setTimeout(r, 50));
    },
    loaded: async () => {},
    flush: async () => {
      execFileSync('postqueue', ['-c', POSTFIX_DIR, '-f'], { stdio: 'ignore' });
    },
    rssMb: () => treeRssMb(master),
  };
  return target;
}

async function backlog(certs: ReturnType<typeof makeCerts>, n: number): Promise<{ gateway: BacklogFigures; postfix?: BacklogFigures }> {
  const sinkPort = await freePort();
  const kit = backlogKit(certs, sinkPort);
  const g = gatewayTarget(certs, sinkPort);
  await g.init();
  const gateway = await backlogScenario(g, kit, n);
  if (opt['no-postfix']) return { gateway };
  const p = postfixTarget(certs, sinkPort);
  await p.init();
  try {
    return { gateway, postfix: await backlogScenario(p, kit, n) };
  } finally {
    stopPostfix();
  }
}

function printBacklog(b: { gateway: BacklogFigures; postfix?: BacklogFigures }): string[] {
  const g = b.gateway;
  const p = b.postfix;
  const f = (n: number | undefined, d = 0) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(d));
  const met = (ok: boolean) => (ok ? 'met' : 'NOT MET');
  const rows: Array<[string, keyof BacklogFigures, number]> = [
    ['acceptance, first tenth (msgs/s)', 'firstTenthPerSec', 0],
    ['acceptance, last tenth (msgs/s)', 'lastTenthPerSec', 0],
    ['restart → first 250 (ms)', 'restartToFirst250Ms', 0],
    [`RSS with the backlog waiting (MB)`, 'rssWaitingMb', 0],
    ['connections to the dead next hop', 'deadHopConnections', 0],
    ['  over (s)', 'deadHopSeconds', 0],
    ['drain after the flush (msgs/s)', 'drainPerSec', 0],
    ['delivered / unique / duplicates', 'delivered', 0],
  ];
  const cell = (x: BacklogFigures | undefined, k: keyof BacklogFigures, d: number) => (k === 'delivered' ? (x ? `${x.delivered} / ${x.unique} / ${x.duplicates}` : '—') : f(x?.[k], d));
  const expected = g.accepted + 1;
  // The bench policy's retry intervals start at 1 minute: the first attempt, then a probe a minute.
  const allowed = 2 + Math.floor(g.deadHopSeconds / 60);
  return [
    '',
    `backlog: ${g.messages} messages × 4 KB while the next hop is down, restart, then the next hop back and the queue flushed`,
    '| figure | gateway | Postfix |',
    '|---|---:|---:|',
    ...rows.map(([label, k, d]) => `| ${label} | ${cell(g, k, d)} | ${cell(p, k, d)} |`),
    '',
    'targets (issue 13, backlog):',
    `  last tenth >= 0.9 x first tenth: ${f(g.lastTenthPerSec / g.firstTenthPerSec, 2)} x — ${met(g.lastTenthPerSec >= 0.9 * g.firstTenthPerSec)}`,
    `  restart → first 250 <= 1 s: ${f(g.restartToFirst250Ms)} ms — ${met(g.restartToFirst250Ms <= 1000)}`,
    `  restart → first 250 <= 0.5 s at 100,000 waiting (issue 23): ${f(g.restartToFirst250Ms)} ms — ${met(g.restartToFirst250Ms <= 500)}${g.messages < 100_000 ? ' (the target is at 100,000: --backlog 100000)' : ''}`,
    `  drain >= 1.5 x Postfix: ${p ? `${f(g.drainPerSec / p.drainPerSec, 2)} x — ${met(g.drainPerSec >= 1.5 * p.drainPerSec)}` : '— (Postfix not run)'}`,
    `  RSS <= 200 MB with ${g.messages} waiting: ${f(g.rssWaitingMb)} MB — ${met(g.rssWaitingMb <= 200)}${g.messages < 100_000 ? ' (the target is at 100,000: --backlog 100000)' : ''}`,
    `  at most one connection per retry interval to the dead next hop (+ the first attempt and a probe): ${g.deadHopConnections} in ${f(g.deadHopSeconds)} s (allowed ${allowed}) — ${met(g.deadHopConnections <= allowed)}`,
    `  every accepted Message-ID exactly once: ${g.unique} of ${expected}, ${g.duplicates} duplicates — ${met(g.unique === expected && g.duplicates === 0 && g.delivered === expected)}`,
  ];
}

async function main(): Promise<void> {
  const certs = makeCerts();
  const attackKit = { root: ROOT, work, cert: certs.cert, key: certs.key, rssMb: treeRssMb, track };
  if (opt['only-attack']) {
    const a = await attackScenario(attackKit);
    const f = (n: number | undefined, d = 0) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(d));
    process.stdout.write(printAttacks(a, f, (ok) => (ok ? 'met' : 'NOT MET')).join('\n') + '\n\n' + JSON.stringify(a, null, 2) + '\n');
    process.exit(0);
  }
  if (opt['only-backlog']) {
    const b = await backlog(certs, Number(opt.backlog));
    process.stdout.write(printBacklog(b).join('\n') + '\n\n' + JSON.stringify(b, null, 2) + '\n');
    fs.rmSync(work, { recursive: true, force: true });
    process.exit(0);
  }
  const results: Record<string, unknown> = {
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    date: new Date().toISOString(),
    scenario: `${SESSIONS} sessions × ${MESSAGES} messages × ${SIZE} bytes, STARTTLS in, certificate-validated TLS out`,
  };

  // Gateway, default scenario.
  const sinkPort = await freePort();
  let sink = await startSink(sinkPort, certs);
  const gdir = path.join(work, 'gateway');
  fs.mkdirSync(gdir);
  const gport = await freePort();
  const adminPort = await freePort();
  let gw: ChildProcess;
  if (!opt['only-idle']) {
    gw = await startGateway(gatewayPolicy(gport, sinkPort, certs, gdir, adminPort), gdir, gport);
    const gpid = gw.pid!;
    results.gateway = await loadAndMeasure(gport, sink, gpid, certs.ca, () => treeRssMb(gpid)); // with its worker processes
    await stopGateway(gw);
    results.acceptPath = acceptBreakdown(path.join(gdir, 'gateway.log'));
    // The same with sender authentication and signing on (issue 19), against the same sink.
    if (!opt['no-auth']) {
      const adir = path.join(work, 'gateway-auth');
      fs.mkdirSync(adir);
      sink.send({ reset: TOTAL });
      const agw = await startGateway(gatewayPolicy(gport, sinkPort, certs, adir, adminPort, true), adir, gport);
      const apid = agw.pid!;
      results.gatewayAuth = await loadAndMeasure(gport, sink, apid, certs.ca, () => treeRssMb(apid));
      await stopGateway(agw);
      sink.send({ reset: TOTAL });
    }
    // The same with gateway.cluster on: limits counted in Redis, the trace written to PostgreSQL (issue 22).
    if (!opt['no-cluster']) {
      const redis = await redisEngine();
      const pgsql = await postgresEngine();
      try {
        const cdir = path.join(work, 'gateway-cluster');
        fs.mkdirSync(cdir);
        const cgw = await startGateway(gatewayPolicy(gport, sinkPort, certs, cdir, adminPort, false, { redis: redis.url, traceDatabase: pgsql.url }), cdir, gport);
        const cpid = cgw.pid!;
        results.gatewayCluster = await loadAndMeasure(gport, sink, cpid, certs.ca, () => treeRssMb(cpid));
        await stopGateway(cgw);
        sink.send({ reset: TOTAL });
      } finally {
        await redis.stop();
        await pgsql.remove();
      }
    }
  }

  if (opt['only-gateway']) {
    sink.kill('SIGTERM');
    process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    process.exit(0);
  }

  // Gateway, 2,000 idle TLS sessions: RSS each second while they are held. The first sample
  // still carries V8's young generation at the size the handshake burst grew it to; V8 gives
  // that back once the process is idle, so the last sample is the settled figure.
  const idleN = Number(opt.idle);
  const idleSeconds = Math.max(2, Number(opt['idle-seconds']));
  gw = await startGateway(gatewayPolicy(gport, sinkPort, certs, gdir, adminPort), gdir, gport);
  const baseRss = treeRssMb(gw.pid!);
  const idle = track(
    spawn(process.execPath, [path.join(HERE, 'loadgen.js')], {
      env: { ...process.env, LOADGEN: JSON.stringify({ mode: 'idle', port: gport, sessions: idleN, messages: 0, size: 0, ca: certs.ca, to: '' }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const est = await waitLine(idle, (o) => 'established' in o, 120_000, 'idle sessions');
  const series: number[] = [];
  for (let t = 0; t < idleSeconds; t++) {
    await new Promise((r) => setTimeout(r, 1000));
    series.push(Math.round(treeRssMb(gw.pid!)));
  }
  results.idleSessions = {
    sessions: est.established,
    failed: est.failed,
    openAtEnd: await activeSessions(adminPort),
    rssBeforeMb: baseRss,
    rssAfterHandshakesMb: series[0],
    rssSettledMb: series[series.length - 1],
    rssMaxWhileIdleMb: Math.max(...series),
    rssEachSecondMb: series,
  };
  idle.kill('SIGTERM');
  await stopGateway(gw);
  if (opt['only-idle']) {
    sink.kill('SIGTERM');
    process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    process.exit(0);
  }

  // Postfix, same scenario, same sink.
  if (!opt['no-postfix']) {
    sink.send({ reset: TOTAL });
    ensurePostfixInstalled();
    const pport = await freePort();
    configurePostfix({ port: pport, sinkPort, cert: certs.cert, key: certs.key, ca: certs.ca, sinkName: 'sink.bench.test' });
    const master = startPostfix();
    try {
      await waitPort(pport);
      results.postfix = await loadAndMeasure(pport, sink, master, certs.ca, () => treeRssMb(master));
    } finally {
      stopPostfix();
    }
    const g = results.gateway as Figures;
    const p = results.postfix as Figures;
    results.ratio = {
      acceptedPerSec: g.acceptedPerSec / p.acceptedPerSec,
      deliveredPerSec: g.deliveredPerSec / p.deliveredPerSec,
      p50ms: g.p50ms / p.p50ms,
      p99ms: g.p99ms / p.p99ms,
      peakRssMb: g.peakRssMb / p.peakRssMb,
      cpuSecondsPer1000: g.cpuSecondsPer1000 / p.cpuSecondsPer1000,
    };
  }
  sink.kill('SIGTERM');

  results.policy = await policyMicroBenchmark(Number(opt.connectors), Number(opt.ranges));
  results.security = await securityMicroBenchmark().catch((e: Error) => ({ skipped: e.message }));
  results.trace = traceMicroBenchmark();
  results.auth = await authMicroBenchmark();
  if (!opt['no-cluster']) results.cluster = await clusterMicroBenchmark().catch((e: Error) => ({ skipped: e.message }));
  if (Number(opt.backlog) > 0) results.backlog = await backlog(certs, Number(opt.backlog));
  if (!opt['no-attack']) results.attack = await attackScenario(attackKit);
  print(results);
  fs.rmSync(work, { recursive: true, force: true });
  process.exit(0);
}

interface IdleFigures {
  sessions: number;
  failed: number;
  openAtEnd: number | null;
  rssBeforeMb: number;
  rssAfterHandshakesMb: number;
  rssSettledMb: number;
  rssMaxWhileIdleMb: number;
  rssEachSecondMb: number[];
}

function print(r: Record<string, unknown>): void {
  const g = r.gateway as Figures;
  const p = r.postfix as Figures | undefined;
  const q = r.ratio as Figures | undefined;
  const f = (n: number | undefined, d = 1) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(d));
  const rows: Array<[string, keyof Figures, number]> = [
    ['accepted msgs/s', 'acceptedPerSec', 0],
    ['delivered msgs/s (end to end)', 'deliveredPerSec', 0],
    ['p50 end of DATA → 250 (ms)', 'p50ms', 1],
    ['p99 end of DATA → 250 (ms)', 'p99ms', 1],
    ['peak RSS (MB)', 'peakRssMb', 0],
    ['CPU seconds per 1,000 msgs', 'cpuSecondsPer1000', 2],
  ];
  const out = [
    `machine: ${r.machine}`,
    `date: ${r.date}`,
    `scenario: ${r.scenario}`,
    '',
    '| figure | gateway | Postfix | gateway/Postfix |',
    '|---|---:|---:|---:|',
    ...rows.map(([label, k, d]) => `| ${label} | ${f(g[k], d)} | ${f(p?.[k], d)} | ${f(q?.[k], 2)} |`),
  ];
  const idle = r.idleSessions as IdleFigures;
  out.push(
    '',
    `idle TLS sessions: ${idle.sessions} established (${idle.failed} failed, ${idle.openAtEnd ?? '?'} open at the end); gateway RSS ${f(idle.rssBeforeMb, 0)} MB before, ` +
      `${idle.rssAfterHandshakesMb} MB 1 s after the last handshake, ${idle.rssSettledMb} MB settled (${idle.rssEachSecondMb.length} s idle)`,
  );
  const pol = r.policy as Awaited<ReturnType<typeof policyMicroBenchmark>>;
  out.push(
    `policy: ${pol.connectors} inbound connectors, ${pol.ranges} IP ranges, ${pol.outboundConnectors} outbound connectors: load ${f(pol.loadMs, 0)} ms; attribution ${f(pol.attributionNs, 0)} ns/lookup; routing ${f(pol.routingNs, 0)} ns/lookup; ${pol.rules} mail flow rules ${f(pol.rulesNs, 0)} ns/message (${f(pol.rulesFiredPerMessage, 2)} fired)`,
  );
  const sec = r.security as SecurityFigures | undefined;
  if (sec) {
    out.push(
      'skipped' in sec
        ? `outbound security lookups: skipped (${sec.skipped})`
        : `outbound security lookups per message, unbound's cache warm (${sec.n} each): DANE (MX, A, AAAA, TLSA, plan) ${f(sec.daneUsPerMessage, 0)} us; MTA-STS (TXT id, policy cached) ${f(sec.mtaStsUsPerMessage, 0)} us`,
    );
  }
  const tr = r.trace as TraceFigures | undefined;
  if (tr) {
    out.push(
      `message trace: ${tr.messages} messages stored in ${f(tr.loadSeconds, 1)} s; searches (ms): ${Object.entries(tr.searchMs)
        .map(([k, v]) => `${k} ${f(v, 1)}`)
        .join(', ')}`,
    );
  }
  const met = (ok: boolean) => (ok ? 'met' : 'NOT MET');
  out.push(
    '',
    'targets (issue 6):',
    `  delivered msgs/s >= 1.0 x Postfix: ${q ? f(q.deliveredPerSec, 2) + ' x — ' + met(q.deliveredPerSec >= 1) : '— (Postfix not run)'}`,
    `  peak RSS <= 250 MB: ${f(g.peakRssMb, 0)} MB — ${met(g.peakRssMb <= 250)}`,
    `  RSS with ${idle.sessions} idle TLS sessions <= 150 MB: ${idle.rssSettledMb} MB settled — ${met(idle.rssSettledMb <= 150 && idle.sessions >= 2000)}` +
      ` (${idle.rssAfterHandshakesMb} MB 1 s after the burst)`,
    `  attribution <= 5 us at ${pol.ranges} ranges: ${f(pol.attributionNs / 1000, 2)} us — ${met(pol.attributionNs <= 5000)}`,
    `  policy load <= 1 s: ${f(pol.loadMs, 0)} ms — ${met(pol.loadMs <= 1000)}`,
    `  mail flow rules <= 5 us per message with ${pol.rules} rules (no header patterns; issue 14): ${f(pol.rulesNs / 1000, 2)} us — ${met(pol.rulesNs <= 5000)}`,
    ...(tr ? [`  trace search over ${tr.messages} messages < 200 ms (issue 15): slowest ${f(Math.max(...Object.values(tr.searchMs)), 1)} ms — ${met(Math.max(...Object.values(tr.searchMs)) < 200)}`] : []),
    ...(r.acceptPath
      ? (() => {
          const a = r.acceptPath as AcceptBreakdown;
          return [
            '',
            `the gateway's accept path (final dot → 250, from its queued events, ${a.messages} messages): checks and rules p50 ${f(a.checksP50, 2)} ms (p99 ${f(a.checksP99, 2)}), commit p50 ${f(a.commitP50, 2)} ms (p99 ${f(a.commitP99, 2)}); the rest of the client's p50 is TLS, the network and the event loop`,
          ];
        })()
      : []),
    '',
    'targets (issue 13, default scenario):',
    ...(q
      ? [
          `  accepted msgs/s >= 1.5 x Postfix: ${f(q.acceptedPerSec, 2)} x — ${met(q.acceptedPerSec >= 1.5)}`,
          `  p50 end of DATA → 250 <= Postfix's: ${f(g.p50ms, 1)} vs ${f(p?.p50ms, 1)} ms — ${met(q.p50ms <= 1)}`,
          `  delivered msgs/s >= 2.0 x Postfix: ${f(q.deliveredPerSec, 2)} x — ${met(q.deliveredPerSec >= 2)}`,
          `  CPU seconds per 1,000 messages <= Postfix's: ${f(g.cpuSecondsPer1000, 2)} vs ${f(p?.cpuSecondsPer1000, 2)} — ${met(q.cpuSecondsPer1000 <= 1)}`,
        ]
      : ['  — (Postfix not run)']),
  );
  const au = r.auth as AuthFigures | undefined;
  const ga = r.gatewayAuth as Figures | undefined;
  out.push(
    '',
    'targets (issue 19, sender authentication):',
    ...(ga
      ? [
          `  with dmarc: enforce, ARC sealing and DKIM signing on: ${f(ga.acceptedPerSec, 0)} accepted msgs/s, p50 ${f(ga.p50ms, 1)} ms, delivered ${f(ga.deliveredPerSec, 0)} msgs/s, CPU ${f(ga.cpuSecondsPer1000, 2)} s/1000`,
          `  accepted msgs/s >= 0.9 x the same run without: ${f(ga.acceptedPerSec / g.acceptedPerSec, 2)} x — ${met(ga.acceptedPerSec >= 0.9 * g.acceptedPerSec)}`,
          `  p50 end of DATA → 250 within +20 %: ${f(ga.p50ms, 1)} vs ${f(g.p50ms, 1)} ms (${f((ga.p50ms / g.p50ms - 1) * 100, 0)} %) — ${met(ga.p50ms <= 1.2 * g.p50ms)}`,
        ]
      : ['  — (the run with authentication was skipped: --no-auth)']),
    ...(au
      ? [
          `  DKIM signing <= 1 ms per 10 KB message (RSA 2048): ${f(au.signRsaMs, 3)} ms — ${met(au.signRsaMs <= 1)} (Ed25519 ${f(au.signEd25519Ms, 3)} ms; inbound checks with cached DNS ${f(au.verifyMs, 3)} ms per message)`,
        ]
      : []),
  );
  const gc = r.gatewayCluster as Figures | undefined;
  const cl = r.cluster as ClusterFigures | { skipped: string } | undefined;
  out.push(
    '',
    'targets (issue 22, several gateways as one):',
    ...(gc
      ? [
          `  one node with gateway.cluster (Redis limits, PostgreSQL trace): ${f(gc.acceptedPerSec, 0)} accepted msgs/s, p50 ${f(gc.p50ms, 1)} ms, CPU ${f(gc.cpuSecondsPer1000, 2)} s/1000`,
          `  accepted msgs/s >= 0.9 x the same run without: ${f(gc.acceptedPerSec / g.acceptedPerSec, 2)} x — ${met(gc.acceptedPerSec >= 0.9 * g.acceptedPerSec)}`,
        ]
      : ['  — (the run with gateway.cluster was skipped: --no-cluster)']),
    ...(cl && 'skipped' in cl
      ? [`  micro-benchmark skipped: ${cl.skipped}`]
      : cl
        ? [
            `  one limit check <= 1 ms p99 against a local Redis: ${f(cl.limitP99Ms, 3)} ms (p50 ${f(cl.limitP50Ms, 3)}) — ${met(cl.limitP99Ms <= 1)}`,
            `  trace search over ${cl.traceMessages} messages in PostgreSQL < 200 ms for a recipient: ${f(cl.traceSearchMs.recipient, 1)} ms — ${met((cl.traceSearchMs.recipient ?? Infinity) < 200)} (${Object.entries(cl.traceSearchMs)
              .map(([k, v]) => `${k} ${f(v, 1)}`)
              .join(', ')}; loaded in ${f(cl.traceLoadSeconds, 0)} s)`,
          ]
        : []),
  );
  if (r.backlog) out.push(...printBacklog(r.backlog as { gateway: BacklogFigures; postfix?: BacklogFigures }));
  if (r.attack) out.push(...printAttacks(r.attack as { quiet: AttackFigures; attacks: AttackFigures[] }, f, met));
  process.stdout.write(out.join('\n') + '\n\n' + JSON.stringify(r, null, 2) + '\n');
}

main().catch((e) => {
  stopPostfix();
  process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
  process.exit(1);
});
