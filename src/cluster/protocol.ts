// The messages between the first process (scheduler, delivery, queue, admin) and its SMTP
// worker processes (node:cluster IPC). Each request that wants an answer carries an id the
// answer repeats. Workers never touch the queue's state beyond writing and committing new
// messages; everything else happens in the first process.
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Envelope } from '../queue/spool.js';
import type { Verdict } from '../delivery/verify.js';

export type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>;

export type FromWorker =
  /** Listening (its 'listening' log lines written): the ports, for the 'started' line. */
  | { t: 'listening'; ports: Array<{ name: string; address: string; port: number }> }
  | { t: 'start-failed'; error: string }
  /**
   * A message is committed: the queue manager takes it from here. Sent before the worker answers
   * 250, which waits for the 'taken' answer — so no acknowledged message exists only on disk.
   */
  | { t: 'queued'; id: number; env: Envelope }
  /** Log lines for the message trace (the first process is its only writer). */
  | { t: 'trace'; lines: string[] }
  | { t: 'open'; id: number; ip: string }
  | { t: 'close'; ip: string }
  | { t: 'message'; id: number; ip: string }
  /** recipientVerification: callout, through the first process's verifier (one cache for all). */
  | { t: 'verify'; id: number; address: string; connector: string }
  | { t: 'metrics'; id: number; metrics: MetricsJson }
  | { t: 'reloaded'; id: number; error: string | null };

export type ToWorker =
  | { t: 'taken'; id: number }
  | { t: 'opened'; id: number; perIp: number; total: number }
  | { t: 'rate'; id: number; rate: number }
  | { t: 'verified'; id: number; verdict: Verdict }
  | { t: 'metrics'; id: number }
  | { t: 'reload'; id: number }
  | { t: 'stop'; graceMs: number };

const FROM_WORKER = new Set(['listening', 'start-failed', 'queued', 'trace', 'open', 'close', 'message', 'verify', 'metrics', 'reloaded']);
const TO_WORKER = new Set(['taken', 'opened', 'rate', 'verified', 'metrics', 'reload', 'stop']);

const tagged = (m: unknown, tags: Set<string>): boolean => typeof m === 'object' && m !== null && tags.has(String((m as { t?: unknown }).t));

/** Messages of this protocol (node:cluster also carries its own on the same channel). */
export function isFromWorker(m: unknown): m is FromWorker {
  return tagged(m, FROM_WORKER);
}
export function isToWorker(m: unknown): m is ToWorker {
  return tagged(m, TO_WORKER);
}
