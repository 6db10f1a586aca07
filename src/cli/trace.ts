// `connector-gateway trace`: the message trace (SPEC §10), like Exchange's message trace: one
// line per message found, or — for one queue id — its whole timeline. --json for scripts.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { TraceStore, traceFile, type TracedMessage } from '../trace/store.js';
import { parseTraceQuery } from '../trace/query.js';
import { configPath, fail, loadOrExit, usageError } from './common.js';

export function trace(args: string[]): void {
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
  const file = traceFile(policy.gateway.queue.directory);
  if (!fs.existsSync(file)) fail(`no message trace at ${file} (gateway.trace.retention is 0, or no gateway has run on this queue)`, 1);
  const store = new TraceStore(file, { readOnly: true });
  try {
    const found = store.search(query);
    const timeline = query.queueId && found[0] ? store.timeline(query.queueId) : null;
    if (values.json) {
      process.stdout.write(JSON.stringify(timeline ? { ...found[0], timeline } : found, null, 2) + '\n');
      return;
    }
    for (const m of found) process.stdout.write(line(m) + '\n');
    if (timeline) for (const e of timeline) process.stdout.write(`  ${e.at}  ${e.event}${e.recipient ? ` ${e.recipient}` : ''}  ${describe(e.detail)}\n`);
    process.stdout.write(`${found.length} message(s)\n`);
  } finally {
    store.close();
  }
}

function line(m: TracedMessage): string {
  const rcpts = m.recipients.map((r) => `${r.address} (${r.status})`).join(', ');
  return `${m.receivedAt}  ${m.qid}  ${m.status.padEnd(9)}  <${m.sender}> → ${rcpts}  via ${m.connector ?? 'none'}${m.tls ? `, ${m.tls}` : ', no TLS'}${m.messageId ? `  <${m.messageId}>` : ''}`;
}

function describe(d: Record<string, unknown>): string {
  const keys = ['connector', 'code', 'result', 'remote', 'security', 'rule', 'mode', 'actions', 'kind', 'to'];
  return keys
    .filter((k) => d[k] !== undefined && d[k] !== null)
    .map((k) => `${k}=${typeof d[k] === 'string' ? d[k] : JSON.stringify(d[k])}`)
    .join(' ');
}
