// The message trace (SPEC §10): "did the mail from X reach Y yesterday, through which
// connector, over TLS?" An embedded SQLite store (node:sqlite, built into Node 24) beside the
// queue, fed from the same events the logs carry — so it adds no event the logs lack — and
// written off the hot path: events are buffered and written in one transaction every 250 ms.
// Kept for gateway.trace.retention. `connector-gateway trace` and the admin HTTP's /trace read it.
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { messageStatusSql, traceWrites } from './writes.js';
import { searchConditions, tracedMessage } from './rows.js';


export interface TraceQuery {
  sender?: string;
  recipient?: string;
  messageId?: string;
  queueId?: string;
  since?: number; // ms
  until?: number; // ms
  status?: 'queued' | 'delivered' | 'deferred' | 'failed' | 'deleted';
  limit?: number;
}

export interface TracedMessage {
  qid: string;
  receivedAt: string;
  sender: string;
  messageId: string | null;
  size: number;
  clientIp: string | null;
  connector: string | null;
  tls: string | null;
  status: string;
  recipients: Array<{ address: string; status: string; detail: string | null }>;
}

export interface TraceEvent {
  at: string;
  event: string;
  recipient: string | null;
  detail: Record<string, unknown>;
}

export function traceFile(queueDir: string): string {
  return path.join(queueDir, '.trace', 'trace.sqlite');
}

const SCHEMA = `
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = NORMAL;
  CREATE TABLE IF NOT EXISTS messages (
    qid TEXT PRIMARY KEY, received_at INTEGER NOT NULL, sender TEXT NOT NULL, message_id TEXT,
    size INTEGER, client_ip TEXT, connector TEXT, tls TEXT, status TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS messages_received ON messages (received_at);
  CREATE INDEX IF NOT EXISTS messages_sender ON messages (sender COLLATE NOCASE, received_at);
  CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id);
  CREATE TABLE IF NOT EXISTS recipients (
    qid TEXT NOT NULL, address TEXT NOT NULL, status TEXT NOT NULL, detail TEXT, PRIMARY KEY (qid, address));
  CREATE INDEX IF NOT EXISTS recipients_address ON recipients (address, qid);
  CREATE TABLE IF NOT EXISTS events (qid TEXT NOT NULL, at INTEGER NOT NULL, event TEXT NOT NULL, recipient TEXT, detail TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS events_qid ON events (qid, at);
`;

export class TraceStore {
  private readonly db: DatabaseSync;
  private pending: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly st: Record<'message' | 'recipient' | 'recipientStatus' | 'event' | 'status' | 'deleted' | 'recipientsDeleted', StatementSync>;

  constructor(
    readonly file: string,
    readonly options: { readOnly?: boolean } = {},
  ) {
    if (!options.readOnly) {
      // Every sender and recipient is in here: the owner's alone, as the queue (0700, 0600), even
      // when an earlier release made it 0755/0644.
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      fs.chmodSync(path.dirname(file), 0o700);
    }
    this.db = new DatabaseSync(file, { readOnly: !!options.readOnly });
    if (!options.readOnly) {
      this.db.exec(SCHEMA);
      for (const f of [file, `${file}-wal`, `${file}-shm`]) if (fs.existsSync(f)) fs.chmodSync(f, 0o600);
    }
    const prep = (sql: string): StatementSync => (options.readOnly ? (null as unknown as StatementSync) : this.db.prepare(sql));
    this.st = {
      message: prep('INSERT OR REPLACE INTO messages (qid, received_at, sender, message_id, size, client_ip, connector, tls, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      recipient: prep(`INSERT OR IGNORE INTO recipients (qid, address, status, detail) VALUES (?, ?, 'queued', NULL)`),
      recipientStatus: prep('UPDATE recipients SET status = ?, detail = ? WHERE qid = ? AND address = ?'),
      event: prep('INSERT INTO events (qid, at, event, recipient, detail) VALUES (?, ?, ?, ?, ?)'),
      status: prep(messageStatusSql('?')),
      deleted: prep(`UPDATE messages SET status = 'deleted' WHERE qid = ?`),
      // A deleted message's recipients that were still waiting will never be delivered: deleted, not deferred.
      recipientsDeleted: prep(`UPDATE recipients SET status = 'deleted' WHERE qid = ? AND status NOT IN ('delivered', 'failed')`),
    };
  }

  /** Takes a log line (JSON); traced events are kept for the next write. Cheap: no parsing here. */
  push(line: string): void {
    this.pending.push(line);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), 250);
      this.timer.unref();
    }
  }

  /** Writes what is buffered, in one transaction. */
  flush(): void {
    this.timer = null;
    const lines = this.pending.splice(0);
    if (!lines.length) return;
    this.db.exec('BEGIN');
    try {
      for (const line of lines) this.apply(line);
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  private apply(line: string): void {
    for (const w of traceWrites(line)) {
      switch (w.op) {
        case 'message':
          this.st.message.run(w.qid, w.at, w.sender, w.messageId, w.size, w.ip, w.connector, w.tls, 'queued');
          break;
        case 'recipient':
          this.st.recipient.run(w.qid, w.address);
          break;
        case 'event':
          this.st.event.run(w.qid, w.at, w.event, w.recipient, w.detail);
          break;
        case 'recipientStatus':
          this.st.recipientStatus.run(w.status, w.detail, w.qid, w.address);
          break;
        case 'status':
          this.st.status.run(w.qid);
          break;
        case 'deleted':
          this.st.deleted.run(w.qid);
          this.st.recipientsDeleted.run(w.qid);
          break;
      }
    }
  }

  /** Removes what is older than `retentionMs`; returns how many messages went. */
  purge(retentionMs: number, now = Date.now()): number {
    const before = now - retentionMs;
    const old = this.db.prepare('SELECT qid FROM messages WHERE received_at < ?').all(before) as Array<{ qid: string }>;
    this.db.exec('BEGIN');
    try {
      this.db.prepare('DELETE FROM events WHERE qid IN (SELECT qid FROM messages WHERE received_at < ?)').run(before);
      this.db.prepare('DELETE FROM recipients WHERE qid IN (SELECT qid FROM messages WHERE received_at < ?)').run(before);
      this.db.prepare('DELETE FROM messages WHERE received_at < ?').run(before);
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
    return old.length;
  }

  search(q: TraceQuery): TracedMessage[] {
    const args: Array<string | number> = [];
    const where = searchConditions(q, (v) => (args.push(v), '?'), (p) => `m.sender = ${p} COLLATE NOCASE`);
    const rows = this.db
      .prepare(`SELECT * FROM messages m ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY m.received_at DESC LIMIT ?`)
      .all(...args, q.limit ?? 100) as Array<Record<string, string | number | null>>;
    const rcpts = this.db.prepare('SELECT address, status, detail FROM recipients WHERE qid = ? ORDER BY address');
    return rows.map((r) => tracedMessage(r, rcpts.all(String(r.qid)) as Array<{ address: string; status: string; detail: string | null }>));
  }

  timeline(qid: string): TraceEvent[] {
    return (this.db.prepare('SELECT at, event, recipient, detail FROM events WHERE qid = ? ORDER BY at, rowid').all(qid) as Array<{ at: number; event: string; recipient: string | null; detail: string }>).map((e) => ({
      at: new Date(e.at).toISOString(),
      event: e.event,
      recipient: e.recipient,
      detail: JSON.parse(e.detail) as Record<string, unknown>,
    }));
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    if (!this.options.readOnly) this.flush();
    this.db.close();
  }
}
