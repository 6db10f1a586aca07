// The shared engines of SPEC §12, real and on loopback, started and stopped by the tests:
// redis-server and PostgreSQL (initdb into a temporary directory, pg_ctl) from Debian.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './wait.js';

async function listening(port: number, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface Engine {
  url: string;
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function redisEngine(): Promise<Engine> {
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await listening(port);
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((r) => (p.once('exit', () => r()), p.kill('SIGKILL')));
  };
  await start();
  return { url: `redis://127.0.0.1:${port}/0`, port, start, stop };
}

const PG_BIN = fs.existsSync('/usr/lib/postgresql') ? path.join('/usr/lib/postgresql', fs.readdirSync('/usr/lib/postgresql').sort().pop()!, 'bin') : '';

/** initdb and pg_ctl refuse to run as root: as root they run as the postgres user. */
function asPostgres(cmd: string, args: string[]): void {
  const root = process.getuid?.() === 0;
  execFileSync(root ? 'runuser' : cmd, root ? ['-u', 'postgres', '--', cmd, ...args] : args, { stdio: 'ignore' });
}

/**
 * A PostgreSQL cluster of its own (under the system's temporary directory: the postgres user must
 * reach it). `remove` stops it and deletes its files.
 */
export async function postgresEngine(): Promise<Engine & { dir: string; remove: () => Promise<void> }> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-pg-'));
  const data = path.join(dir, 'pgdata');
  fs.mkdirSync(data, { mode: 0o700 });

  if (process.getuid?.() === 0) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  fs.chmodSync(dir, 0o755);
  asPostgres(path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'gateway', '--auth=trust', '-E', 'UTF8']);
  const start = async (): Promise<void> => {
    asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', path.join(data, 'log'), '-w', '-o', `-p ${port} -k ${data} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
    await listening(port);
  };
  const stop = async (): Promise<void> => {
    try {
      asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      /* not running */
    }
  };
  await start();
  const remove = async (): Promise<void> => {
    await stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { url: `postgres://gateway@127.0.0.1:${port}/postgres`, port, dir, start, stop, remove };
}
