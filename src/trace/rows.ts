// PURE. The search both trace stores answer (SQLite: store.ts; PostgreSQL: engines/pg-trace.ts):
// the conditions of a query, with the store's own placeholders, and a message row as the
// TracedMessage the CLI and /trace print.
import type { TraceQuery, TracedMessage } from './store.js';

/** The WHERE conditions of a search; `arg` takes a value and returns its placeholder (? or $n). */
export function searchConditions(q: TraceQuery, arg: (v: string | number) => string, caseless: (placeholder: string) => string): string[] {
  const where: string[] = [];
  if (q.queueId) where.push(`m.qid = ${arg(q.queueId)}`);
  if (q.sender) where.push(caseless(arg(q.sender)));
  if (q.messageId) where.push(`m.message_id = ${arg(q.messageId.replace(/^<|>$/g, ''))}`);
  if (q.recipient) where.push(`m.qid IN (SELECT qid FROM recipients WHERE address = ${arg(q.recipient.toLowerCase())})`);
  if (q.since !== undefined) where.push(`m.received_at >= ${arg(q.since)}`);
  if (q.until !== undefined) where.push(`m.received_at < ${arg(q.until)}`);
  if (q.status) where.push(`m.status = ${arg(q.status)}`);
  return where;
}

type Row = Record<string, string | number | null>;
const text = (v: string | number | null | undefined): string | null => (v === null || v === undefined ? null : String(v));

export function tracedMessage(r: Row, recipients: ReadonlyArray<{ address: string; status: string; detail: string | null }>): TracedMessage {
  return {
    qid: String(r.qid),
    receivedAt: new Date(Number(r.received_at)).toISOString(),
    sender: String(r.sender),
    messageId: text(r.message_id),
    size: Number(r.size),
    clientIp: text(r.client_ip),
    connector: text(r.connector),
    tls: text(r.tls),
    status: String(r.status),
    recipients: recipients.map((x) => ({ address: x.address, status: x.status, detail: x.detail })),
  };
}
