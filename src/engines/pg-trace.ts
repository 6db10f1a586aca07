// One message trace for every node (SPEC §12), in PostgreSQL. Each node writes the traced events
// of its log lines (observe/events.ts, the same the SQLite trace keeps) with its node name; any
// node's `trace` and /trace search them all.
//
// Writing: lines are buffered and written in one transaction every 250 ms, in order. When
// PostgreSQL does not answer, the batch stays first in line and what waits is also appended to
// a journal beside the queue (<queue>/.trace/pg-pending.jsonl), so that a restart during the
// outage loses nothing; once PostgreSQL answers, the journal is written first, in order, then
// removed. The outage is logged once (engine-down) and shown by gateway_cluster_engine_up.
//
// The schema is created and changed by numbered migrations (MIGRATIONS), applied once under an
// advisory lock: nodes starting together do not race.
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { messageStatusSql, traceWrites, type TraceWrite } from '../trace/writes.js';
import { searchConditions, tracedMessage } from '../trace/rows.js';
import type { TraceEvent, TracedMessage, TraceQuery } from '../trace/store.js';
import type { EngineEvents } from './redis-client.js';

/** The schema, step by step. A step is never edited once released: a change is a new step. */
export const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE messages (
        qid TEXT PRIMARY KEY, node TEXT NOT NULL, received_at BIGINT NOT NULL, sender TEXT NOT NULL,
        message_id TEXT, size INTEGER, client_ip TEXT, connector TEXT, tls TEXT, status TEXT NOT NULL);
      CREATE INDEX messages_received ON messages (received_at);
      CREATE INDEX messages_sender ON messages (lower(sender), received_at);
      CREATE INDEX messages_message_id ON messages (message_id);
      CREATE TABLE recipients (
        qid TEXT NOT NULL, address TEXT NOT NULL, status TEXT NOT NULL, detail TEXT, PRIMARY KEY (qid, address));
      CREATE INDEX recipients_address ON recipients (address, qid);
      CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY, qid TEXT NOT NULL, node TEXT NOT NULL, at BIGINT NOT NULL,
        event TEXT NOT NULL, recipient TEXT, detail JSONB NOT NULL);
      CREATE INDEX events_qid ON events (qid, at, id);`,
  },
];

const MIGRATION_LOCK = 4_242_001;

/** Applies the steps the database lacks, in order, each in its own transaction; returns the version reached. */
export async function migrate(client: pg.ClientBase): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [m.version]);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
  return Math.max(0, ...MIGRATIONS.map((m) => m.version));
}

export function pgJournalFile(queueDir: string): string {
  return path.join(queueDir, '.trace', 'pg-pending.jsonl');
}

export class PgTrace {
  private readonly pool: pg.Pool;
  private pending: string[] = [];
  /** How many of `pending` (from the front) are already in the journal file. */
  private journaled = 0;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  /** The schema brought up to date, once per process (again after a failure). */
  private migration: Promise<void> | null = null;
  private healthy = true;

  constructor(
    url: string,
    private readonly node: string,
    private readonly journal: string | null,
    private readonly events: EngineEvents | null = null,
  ) {
    this.pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 3_000, idleTimeoutMillis: 30_000 });
    this.pool.on('error', () => {}); // an idle client's connection broke: the next write reports it
    if (journal && fs.existsSync(journal)) {
      // Lines of an earlier run that never reached PostgreSQL: first in line, already journaled.
      this.pending = fs.readFileSync(journal, 'utf8').split('\n').filter(Boolean);
      this.journaled = this.pending.length;
    }
  }

  /** Takes a log line (JSON); traced events are written with the next batch. */
  push(line: string): void {
    this.pending.push(line);
    this.schedule();
  }

  private schedule(delay = 250): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delay);
    this.timer.unref();
  }

  /** Writes what waits, in order; on failure it stays (journaled) and is tried again in a second. */
  flush(): Promise<void> {
    if (this.writing) return this.writing.then(() => this.flush());
    if (!this.pending.length) return Promise.resolve();
    this.writing = this.write().finally(() => (this.writing = null));
    return this.writing;
  }

  private async write(): Promise<void> {
    const batch = this.pending.slice(0, 5_000);
    let client: pg.PoolClient | null = null;
    try {
      await this.migrated();
      client = await this.pool.connect();
      await client.query('BEGIN');
      await this.apply(client, batch);
      await client.query('COMMIT');
      this.pending.splice(0, batch.length);
      this.journaled = Math.max(0, this.journaled - batch.length);
      if (this.journal && this.journaled === 0 && fs.existsSync(this.journal)) {
        // Everything journaled is written; what waits beyond it is journaled again if this fails later.
        fs.rmSync(this.journal, { force: true });
      }
      this.up();
      if (this.pending.length) this.schedule(0);
    } catch (e) {
      await client?.query('ROLLBACK').catch(() => {});
      this.down(e as Error);
      this.journalWaiting();
      this.schedule(1_000);
    } finally {
      client?.release();
    }
  }

  /** Writing waits for the schema (a fresh database gets it from whichever node writes first). */
  private migrated(): Promise<void> {
    this.migration ??= (async () => {
      const c = await this.pool.connect();
      try {
        await migrate(c);
      } finally {
        c.release();
      }
    })().catch((e: unknown) => {
      this.migration = null;
      throw e;
    });
    return this.migration;
  }

  /** Appends what waits and is not in the journal yet. */
  private journalWaiting(): void {
    if (!this.journal || this.journaled >= this.pending.length) return;
    fs.mkdirSync(path.dirname(this.journal), { recursive: true, mode: 0o700 });
    fs.appendFileSync(this.journal, this.pending.slice(this.journaled).join('\n') + '\n', { mode: 0o600 });
    this.journaled = this.pending.length;
  }

  private up(): void {
    if (this.healthy) return;
    this.healthy = true;
    this.events?.up('postgresql');
  }

  private down(err: Error): void {
    if (!this.healthy) return;
    this.healthy = false;
    this.events?.down('postgresql', err);
  }

  /**
   * A batch's writes in six statements, whatever its size (one round trip each, the rows as
   * arrays): new messages, their recipients, the events in their order, the recipients' latest
   * statuses, the messages' statuses, deletions.
   */
  private async apply(c: pg.PoolClient, lines: readonly string[]): Promise<void> {
    const messages = new Map<string, Extract<TraceWrite, { op: 'message' }>>();
    const recipients: Array<Extract<TraceWrite, { op: 'recipient' }>> = [];
    const events: Array<Extract<TraceWrite, { op: 'event' }>> = [];
    const statuses = new Map<string, Extract<TraceWrite, { op: 'recipientStatus' }>>(); // the last one per recipient stands
    const touched = new Set<string>();
    const deleted = new Set<string>();
    for (const line of lines) {
      for (const w of traceWrites(line)) {
        if (w.op === 'message') messages.set(w.qid, w);
        else if (w.op === 'recipient') recipients.push(w);
        else if (w.op === 'event') events.push(w);
        else if (w.op === 'recipientStatus') (statuses.delete(`${w.qid} ${w.address}`), statuses.set(`${w.qid} ${w.address}`, w));
        else if (w.op === 'status') touched.add(w.qid);
        else deleted.add(w.qid);
      }
    }
    const m = [...messages.values()];
    if (m.length) {
      await c.query(
        `INSERT INTO messages (qid, node, received_at, sender, message_id, size, client_ip, connector, tls, status)
         SELECT q, $1, a, s, mid, sz, ip, con, t, 'queued' FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[]) AS x(q, a, s, mid, sz, ip, con, t)
         ON CONFLICT (qid) DO UPDATE SET node = EXCLUDED.node, received_at = EXCLUDED.received_at, sender = EXCLUDED.sender, message_id = EXCLUDED.message_id, size = EXCLUDED.size, client_ip = EXCLUDED.client_ip, connector = EXCLUDED.connector, tls = EXCLUDED.tls`,
        [this.node, m.map((w) => w.qid), m.map((w) => w.at), m.map((w) => w.sender), m.map((w) => w.messageId), m.map((w) => w.size), m.map((w) => w.ip), m.map((w) => w.connector), m.map((w) => w.tls)],
      );
    }
    if (recipients.length) {
      await c.query(`INSERT INTO recipients (qid, address, status) SELECT q, a, 'queued' FROM unnest($1::text[], $2::text[]) AS x(q, a) ON CONFLICT DO NOTHING`, [recipients.map((w) => w.qid), recipients.map((w) => w.address)]);
    }
    if (events.length) {
      await c.query(
        `INSERT INTO events (qid, node, at, event, recipient, detail)
         SELECT q, $1, a, e, r, d::jsonb FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS x(q, a, e, r, d, n) ORDER BY n`,
        [this.node, events.map((w) => w.qid), events.map((w) => w.at), events.map((w) => w.event), events.map((w) => w.recipient), events.map((w) => w.detail)],
      );
    }
    const st = [...statuses.values()];
    if (st.length) {
      await c.query(
        `UPDATE recipients SET status = x.s, detail = x.d FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(q, a, s, d) WHERE recipients.qid = x.q AND recipients.address = x.a`,
        [st.map((w) => w.qid), st.map((w) => w.address), st.map((w) => w.status), st.map((w) => w.detail)],
      );
    }
    if (touched.size) await c.query(messageStatusSql('ANY($1)'), [[...touched]]);
    if (deleted.size) {
      await c.query(`UPDATE messages SET status = 'deleted' WHERE qid = ANY($1)`, [[...deleted]]);
      await c.query(`UPDATE recipients SET status = 'deleted' WHERE qid = ANY($1) AND status NOT IN ('delivered', 'failed')`, [[...deleted]]);
    }
  }

  /** Removes what is older than `retentionMs` (any node may: it is the same rule); returns how many messages went. */
  async purge(retentionMs: number, now = Date.now()): Promise<number> {
    const before = now - retentionMs;
    await this.migrated();
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query('DELETE FROM events WHERE qid IN (SELECT qid FROM messages WHERE received_at < $1)', [before]);
      await c.query('DELETE FROM recipients WHERE qid IN (SELECT qid FROM messages WHERE received_at < $1)', [before]);
      const r = await c.query('DELETE FROM messages WHERE received_at < $1', [before]);
      await c.query('COMMIT');
      return r.rowCount ?? 0;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  async search(q: TraceQuery): Promise<Array<TracedMessage & { node: string }>> {
    const args: Array<string | number> = [];
    const arg = (v: string | number): string => (args.push(v), `$${args.length}`);
    const where = searchConditions(q, arg, (p) => `lower(m.sender) = lower(${p})`);
    const limit = arg(q.limit ?? 100);
    const rows = (await this.pool.query(`SELECT * FROM messages m ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY m.received_at DESC LIMIT ${limit}`, args)).rows as Array<Record<string, string | number | null>>;
    const qids = rows.map((r) => String(r.qid));
    const rcpts = qids.length ? ((await this.pool.query('SELECT qid, address, status, detail FROM recipients WHERE qid = ANY($1) ORDER BY address', [qids])).rows as Array<{ qid: string; address: string; status: string; detail: string | null }>) : [];
    return rows.map((r) => ({ ...tracedMessage(r, rcpts.filter((x) => x.qid === r.qid)), node: String(r.node) }));
  }

  async timeline(qid: string): Promise<Array<TraceEvent & { node: string }>> {
    const rows = (await this.pool.query('SELECT at, node, event, recipient, detail FROM events WHERE qid = $1 ORDER BY at, id', [qid])).rows as Array<{ at: string; node: string; event: string; recipient: string | null; detail: Record<string, unknown> }>;
    return rows.map((e) => ({ at: new Date(Number(e.at)).toISOString(), node: e.node, event: e.event, recipient: e.recipient, detail: e.detail }));
  }

  /** Writes what it can (a short wait when PostgreSQL is down: the rest is in the journal) and closes. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await Promise.race([this.flush(), new Promise((r) => setTimeout(r, 2_000))]);
    this.journalWaiting();
    await this.pool.end().catch(() => {});
  }
}
