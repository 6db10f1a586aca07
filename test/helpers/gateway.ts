// Runs the real gateway (the built CLI) as a child process on a policy written by the test.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { stringify } from 'yaml';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(ROOT, 'dist/cli/main.js');

/** A fresh directory under the run's temporary root (test/global-setup.ts), removed after the run. */
export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(process.env.CG_TEST_TMP ?? os.tmpdir(), `cg-${prefix}-`));
}

export interface LogEvent {
  event?: string;
  [k: string]: unknown;
}

export class RunningGateway {
  logs: LogEvent[] = [];
  stderr = '';
  ports: Record<string, number> = {};
  exited: Promise<number | null>;
  private waiters: Array<{ pred: (e: LogEvent) => boolean; resolve: (e: LogEvent) => void }> = [];

  constructor(
    readonly proc: ChildProcess,
    readonly configFile: string,
  ) {
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      let e: LogEvent;
      try {
        e = JSON.parse(line) as LogEvent;
      } catch {
        return; // not JSON
      }
      this.logs.push(e);
      this.waiters = this.waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true));
    });
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => proc.on('close', (code) => resolve(code)));
  }

  get port(): number {
    return Object.values(this.ports)[0]!;
  }

  waitFor(pred: (e: LogEvent) => boolean, timeoutMs = 10_000): Promise<LogEvent> {
    const found = this.logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`log event not seen in ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (e) => (clearTimeout(t), resolve(e)) });
    });
  }

  /**
   * The first `name` event matching `pred`, waiting for it: the gateway writes its log line when it
   * replies, but the test reads stdout through a pipe and may see the reply first.
   */
  logged(name: string, pred: (e: LogEvent) => boolean = () => true, timeoutMs = 5_000): Promise<LogEvent> {
    return this.waitFor((e) => e.event === name && pred(e), timeoutMs);
  }

  events(name: string): LogEvent[] {
    return this.logs.filter((e) => e.event === name);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    await this.exited;
  }

  async kill9(): Promise<void> {
    this.proc.kill('SIGKILL');
    await this.exited;
  }
}

/**
 * The `gateway:` section most tests need: one STARTTLS listener on an ephemeral port, the test
 * PKI's certificate, the queue under dir. `extra` adds or replaces keys (a whole `queue` too).
 */
export function testGateway(dir: string, pki: { gatewayCert: string; gatewayKey: string }, extra: Record<string, unknown> = {}) {
  return {
    hostname: 'mx1.contoso.test',
    listeners: [{ name: 'mx', address: '127.0.0.1', port: 0 }],
    tls: { certificate: pki.gatewayCert, key: pki.gatewayKey },
    queue: { directory: path.join(dir, 'queue') },
    ...extra,
  };
}

export function writePolicy(dir: string, policy: { gateway: { dns?: unknown } }, name = 'gateway.yaml'): string {
  const file = path.join(dir, name);
  // Tests never query the machine's resolvers: without a test DNS server, DNS goes to a closed
  // loopback port and fails at once.
  const p = { ...policy, gateway: { dns: { servers: ['127.0.0.1:9'] }, ...policy.gateway } };
  fs.writeFileSync(file, stringify(p));
  return file;
}

/** Starts the gateway and waits until it listens; rejects with its stderr when it exits first. */
export async function startGateway(configFile: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<RunningGateway> {
  const proc = spawn(process.execPath, [...nodeArgs, CLI, 'serve', '--config', configFile], {
    cwd: path.dirname(configFile),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const gw = new RunningGateway(proc, configFile);
  const started = gw.waitFor((e) => e.event === 'started', 15_000);
  const result = await Promise.race([started.then(() => 'started'), gw.exited.then((c) => `exited ${c}`)]);
  if (result !== 'started') throw new Error(`gateway did not start (${result}): ${gw.stderr}`);
  // The ports from the 'started' line: with worker processes, their own 'listening' lines are
  // written by other processes and may reach stdout after it.
  for (const l of (await started).listeners as Array<{ name: string; port: number }>) gw.ports[l.name] = l.port;
  return gw;
}

export function runCli(args: string[], cwd = ROOT): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
