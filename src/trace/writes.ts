// PURE. What one log line does to the message trace, for every store that keeps it (the SQLite
// of one node, trace/store.ts; the PostgreSQL of a cluster, engines/pg-trace.ts): the line is
// read once here into writes, and each store performs them with its own SQL.
import { TRACED_EVENTS, type TracedLine } from '../observe/events.js';

export type TraceWrite =
  | { op: 'message'; qid: string; at: number; sender: string; messageId: string | null; size: number; ip: string | null; connector: string | null; tls: string | null }
  | { op: 'recipient'; qid: string; address: string }
  | { op: 'event'; qid: string; at: number; event: string; recipient: string | null; detail: string }
  | { op: 'recipientStatus'; qid: string; address: string; status: 'delivered' | 'deferred' | 'failed'; detail: string }
  /** The message's status from its recipients' (messageStatusSql). */
  | { op: 'status'; qid: string }
  | { op: 'deleted'; qid: string };

/** The writes of one log line; none for a line that is not a traced event about one message. */
export function traceWrites(line: string): TraceWrite[] {
  let e: TracedLine;
  try {
    const parsed = JSON.parse(line) as { event?: unknown; qid?: unknown };
    // Any log line may come here: only the traced events (observe/events.ts) about one message stay.
    if (typeof parsed.event !== 'string' || !TRACED_EVENTS.has(parsed.event) || typeof parsed.qid !== 'string') return [];
    e = parsed as TracedLine;
  } catch {
    return [];
  }
  const qid = e.qid!;
  const at = Date.parse(String(e.time ?? '')) || Date.now();
  const recipient = 'recipient' in e ? e.recipient : null;
  const { level: _l, time: _t, svc: _s, msg: _m, event: _e, qid: _q, sid: _sid, ...rest } = e;
  const detail = JSON.stringify(rest);
  const out: TraceWrite[] = [];
  if (e.event === 'queued') {
    out.push({ op: 'message', qid, at, sender: e.sender, messageId: e.messageId, size: e.size, ip: e.ip ?? null, connector: e.connector, tls: e.tls });
    for (const r of e.recipients) out.push({ op: 'recipient', qid, address: r.toLowerCase() });
  }
  out.push({ op: 'event', qid, at, event: e.event, recipient, detail });
  // A report about a message belongs to its timeline too.
  if (e.event === 'dsn') out.push({ op: 'event', qid: e.original, at, event: 'dsn-sent', recipient: null, detail });
  if (e.event === 'delivered' || e.event === 'deferred' || e.event === 'bounced') {
    out.push({ op: 'recipientStatus', qid, address: e.recipient.toLowerCase(), status: e.event === 'bounced' ? 'failed' : e.event, detail: `${'code' in e ? e.code : ''} ${e.result}`.trim() });
    out.push({ op: 'status', qid });
  }
  if (e.event === 'deleted') out.push({ op: 'deleted', qid });
  return out;
}

/** A message's status from its recipients' (delivered, deferred, failed…), with the store's placeholder for its queue id. */
export function messageStatusSql(qidParam: string): string {
  return `
  UPDATE messages SET status = CASE
    WHEN status = 'deleted' THEN 'deleted'
    WHEN NOT EXISTS (SELECT 1 FROM recipients r WHERE r.qid = messages.qid AND r.status <> 'delivered') THEN 'delivered'
    WHEN EXISTS (SELECT 1 FROM recipients r WHERE r.qid = messages.qid AND r.status = 'deferred') THEN 'deferred'
    WHEN EXISTS (SELECT 1 FROM recipients r WHERE r.qid = messages.qid AND r.status = 'failed') THEN 'failed'
    ELSE 'queued' END
  WHERE qid = ${qidParam}`;
}
