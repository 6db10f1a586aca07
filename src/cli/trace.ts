// `connector-gateway trace`: the message trace (SPEC §10), like Exchange's message trace: one
// line per message found, or — for one queue id — its whole timeline. --json for scripts.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { TraceStore, traceFile, type TracedMessage } from '../trace/store.js';
import { parseTraceQuery } from '../trace/query.js';
import { PgTrace } from '../engines/pg-trace.js';
import { configPath, fail, loadOrExit, usageError } from './common.js';

export async function trace(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      sender: { type: 'string' },
      recipient: { type: 'string' },
      'message-id': { type: 'string' },
      'queue-id': { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      status: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  let query;
  try {
    query = parseTraceQuery((n) => values[n as keyof typeof values] as string | undefined);
  } catch (e) {
    throw usageError(`trace: ${(e as Error).message}`);
  }
  const policy = loadOrExit(configPath(values.config), { checkFiles: false });
  const cluster = policy.gateway.cluster;
  if (cluster?.traceDatabase) {
    // SPEC §12: the cluster's one trace, whichever node asks.
    const pgTrace = new PgTrace(cluster.traceDatabase, cluster.node, null);
    try {
      const found = await pgTrace.search(query);
      const timeline = query.queueId && found[0] ? await pgTrace.timeline(query.queueId) : null;
      print(found, timeline, values.json!);
    } catch (e) {
      fail(`the cluster's trace database (${redact(cluster.traceDatabase)}) did not answer: ${(e as Error).message}`, 1);
    } finally {
      await pgTrace.close();
    }
    return;
  }
  const file = traceFile(policy.gateway.queue.directory);
  if (!fs.existsSync(file)) fail(`no message trace at ${file} (gateway.trace.retention is 0, or no gateway has run on this queue)`, 1);
  const store = new TraceStore(file, { readOnly: true });
  try {
    const found = store.search(query);
    const timeline = query.queueId && found[0] ? store.timeline(query.queueId) : null;
    print(found, timeline, values.json!);
  } finally {
    store.close();
  }
}

type Found = TracedMessage & { node?: string };
type Timeline = Array<{ at: string; event: string; recipient: string | null; detail: Record<string, unknown>; node?: string }>;

function print(found: Found[], timeline: Timeline | null, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(timeline ? { ...found[0], timeline } : found, null, 2) + '\n');
    return;
  }
  for (const m of found) process.stdout.write(line(m) + '\n');
  if (timeline) for (const e of timeline) process.stdout.write(`  ${e.at}  ${e.node ? `[${e.node}] ` : ''}${e.event}${e.recipient ? ` ${e.recipient}` : ''}  ${describe(e.detail)}\n`);
  process.stdout.write(`${found.length} message(s)\n`);
}

/** A database URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured URL';
  }
}

function line(m: Found): string {
  const rcpts = m.recipients.map((r) => `${r.address} (${r.status})`).join(', ');
  return `${m.receivedAt}  ${m.qid}  ${m.node ? `${m.node}  ` : ''}${m.status.padEnd(9)}  <${m.sender}> → ${rcpts}  via ${m.connector ?? 'none'}${m.tls ? `, ${m.tls}` : ', no TLS'}${m.messageId ? `  <${m.messageId}>` : ''}`;
}

function describe(d: Record<string, unknown>): string {
  const keys = ['connector', 'code', 'result', 'remote', 'security', 'rule', 'mode', 'actions', 'kind', 'to'];
  return keys
    .filter((k) => d[k] !== undefined && d[k] !== null)
    .map((k) => `${k}=${typeof d[k] === 'string' ? d[k] : JSON.stringify(d[k])}`)
    .join(' ');
}
