// PURE. A trace search from its words — the CLI's options or the admin HTTP's query string.
import { parseDuration } from '../config/units.js';
import type { TraceQuery } from './store.js';

const STATUSES = ['queued', 'delivered', 'deferred', 'failed', 'deleted'] as const;

/** "2026-11-24", "2026-11-24T10:00Z" (a time), or "24h", "7d" (that long ago). */
export function parseTime(text: string, now = Date.now()): number {
  const ago = parseDuration(text);
  if (ago !== null && /[smhd]$/.test(text.trim())) return now - ago;
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Error(`"${text}" is not a time: write 2026-11-24, 2026-11-24T10:00Z, or 24h (ago)`);
  return t;
}

/** Reads a search from named values (undefined = not given); throws with the reason on a bad one. */
export function parseTraceQuery(get: (name: string) => string | undefined, now = Date.now()): TraceQuery {
  const q: TraceQuery = {};
  const s = (name: string): string | undefined => get(name)?.trim() || undefined;
  if (s('sender') !== undefined) q.sender = s('sender');
  if (s('recipient') !== undefined) q.recipient = s('recipient');
  if (s('message-id') !== undefined) q.messageId = s('message-id');
  if (s('queue-id') !== undefined) q.queueId = s('queue-id');
  const since = s('since');
  const until = s('until');
  if (since) q.since = parseTime(since, now);
  if (until) q.until = parseTime(until, now);
  const status = s('status');
  if (status) {
    if (!(STATUSES as readonly string[]).includes(status)) throw new Error(`status "${status}": one of ${STATUSES.join(', ')}`);
    q.status = status as TraceQuery['status'];
  }
  const limit = s('limit');
  if (limit) {
    if (!/^\d{1,5}$/.test(limit) || Number(limit) < 1) throw new Error(`limit "${limit}": a number from 1 to 99999`);
    q.limit = Number(limit);
  }
  return q;
}
