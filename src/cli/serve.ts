// `connector-gateway serve`: the daemon (daemon/daemon.ts) started on the policy file, with its
// signals: SIGHUP and changes of the file reload the policy; SIGTERM and SIGINT stop it.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Daemon } from '../daemon/daemon.js';
import { configPath, fail, loadOrExit, VERSION } from './common.js';

export async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
  const file = configPath(values.config);
  const daemon = new Daemon(file, loadOrExit(file), { version: VERSION });
  try {
    await daemon.start();
  } catch (e) {
    daemon.log.fatal({ event: 'start-failed', err: (e as Error).message }, 'cannot start');
    daemon.log.flush();
    fail(`cannot start: ${(e as Error).message}`, 1);
  }
  process.on('SIGHUP', () => void daemon.reload('SIGHUP'));
  // Reloaded when the file's bytes differ from those the last reload read (by any route).
  watchFile(file, () => {
    if (daemon.policyFileChanged()) void daemon.reload('file change');
  });
  const stop = (signal: string): void => void daemon.stop(signal).then(() => setTimeout(() => process.exit(0), 50));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // `connector-gateway drain` handed every message over: the node's work is done.
  void daemon.drained.then(() => stop('drained'));
}

/** Calls back (debounced) when the file may have changed; survives editors that replace the file. */
function watchFile(file: string, onEvent: () => void): void {
  let timer: NodeJS.Timeout | null = null;
  const schedule = () => {
    if (!timer)
      timer = setTimeout(() => {
        timer = null;
        onEvent();
      }, 300);
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
