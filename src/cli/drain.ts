// `connector-gateway drain --to HOST:PORT`: retire this node (SPEC §12). Through the control
// channel of the policy's queue, the running daemon stops being ready, stops listening, lets its
// sessions finish, and hands every queued message to HOST:PORT — the balancer in front of the
// other nodes, or one of them — removing each only after the peer's 250; then it exits 0. What
// the peer did not take stays; `drain` again (or a restart) resumes. Exit 0 when nothing is left.
import { parseArgs } from 'node:util';
import { askDaemon } from '../queue/control.js';
import { Spool } from '../queue/spool.js';
import { parseSmartHost } from '../config/normalize.js';
import { configPath, fail, loadOrExit, usageError } from './common.js';

export async function drain(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, to: { type: 'string' } } });
  if (!values.to) throw usageError('drain needs --to HOST:PORT: the load balancer in front of the other gateways, or one of them');
  const peer = parseSmartHost(values.to);
  if (typeof peer === 'string') throw usageError(`drain --to: ${peer}`);
  const policy = loadOrExit(configPath(values.config), { checkFiles: false });
  const spool = new Spool(policy.gateway.queue.directory);
  const reply = await askDaemon(spool.dir, { op: 'drain', to: values.to }, 3_600_000);
  if (!reply) fail(`no gateway is running on the queue ${spool.dir}: start it (an interrupted drain resumes at start) and drain again`, 1);
  if (!reply.ok) fail(`drain refused: ${reply.error}`, 1);
  process.stdout.write((reply.lines ?? []).join('\n') + '\n');
  process.exit(reply.count === 0 ? 0 : 1);
}
