// `connector-gateway reload`: the running daemon reads its policy again (as SIGHUP does) and says
// what came of it — reloaded (with its warnings), unchanged, or refused with the errors at
// file:line:column (the running policy then stays in force). Through the control channel of the
// policy's queue, so it needs no pid; the daemon also writes <queue>/.gateway.pid for scripts.
import { parseArgs } from 'node:util';
import { askDaemon } from '../queue/control.js';
import { Spool } from '../queue/spool.js';
import { formatDiagnostics, loadPolicyFile } from '../config/load.js';
import { configPath, fail } from './common.js';

const refused = (errors: string[]): never => {
  process.stderr.write(`reload refused; the running policy stays in force:\n${errors.join('\n')}\n`);
  process.exit(1);
};

export async function reload(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
  // A policy with errors would be refused by the daemon as well: said here, in the same words.
  const loaded = loadPolicyFile(configPath(values.config), { checkFiles: false });
  if (!loaded.policy) return refused(formatDiagnostics({ ...loaded, diagnostics: loaded.diagnostics.filter((d) => d.severity === 'error') }));
  const policy = loaded.policy;
  const spool = new Spool(policy.gateway.queue.directory);
  const reply = await askDaemon(spool.dir, { op: 'reload' });
  if (!reply) fail(`no gateway is running on the queue ${spool.dir}: nothing to reload (start it with \`connector-gateway serve\`)`, 1);
  if (!reply.ok) return refused([reply.error]);
  const lines = reply.lines ?? [];
  process.stdout.write(lines[0]?.startsWith('unchanged') ? `${lines[0]}\n` : `reloaded${lines.length ? `, with warnings:\n${lines.join('\n')}` : ''}\n`);
}
