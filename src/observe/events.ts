// The events a message's story is told by, typed once. The session (smtp/session.ts) and the queue
// (queue/manager.ts, from queue/schedule.ts's decisions) write them as log lines; the message trace
// (trace/store.ts) reads those lines back. Each side names the same types, so a renamed or retyped
// field breaks the build instead of silently emptying a column of the trace.

/** A message was committed and acknowledged (`250 2.6.0`). */
export interface QueuedEvent {
  event: 'queued';
  qid: string;
  size: number;
  sender: string;
  recipients: string[];
  connector: string | null;
  tls: string | null;
  messageId: string | null;
  stripped: number;
  strippedExchangeHeaders: number;
  rules: string[];
  /**
   * Where the time from the final dot to the 250 went, in ms (as Postfix's delays=): the end of
   * DATA checks and mail flow rules, then the commit (content fsync, envelope, directory fsync).
   */
  delays?: { checks: number; commit: number };
}

/** A mail flow rule matched at end of DATA (audit ones too). */
export interface RuleEvent {
  event: 'rule';
  qid?: string;
  rule: string;
  mode: 'enforce' | 'audit';
  recipients: string[];
  actions: string[];
}

/** One recipient's outcome of an attempt (queue/schedule.ts afterAttempt decides them). */
export type RecipientEvent =
  | { event: 'delivered'; recipient: string; connector: string | null; remote?: string; result: string; strippedExchangeHeaders?: number; signed?: { dkim: string[]; arc: string | null }; security?: string }
  | { event: 'bounced'; recipient: string; connector: string | null; code: string; result: string; expired: false; security?: string }
  | { event: 'bounced'; recipient: string; connector: string | null; code: string; result: 'expired'; expired: true; last: string }
  | { event: 'deferred'; recipient: string; connector: string | null; code: string; result: string; attempts: number; security?: string };

/** Sender authentication at end of DATA (SPEC §11): what each check found, and the DMARC verdict. */
export interface AuthenticationEvent {
  event: 'authentication';
  qid?: string;
  spf?: { result: string; domain: string };
  dkim?: Array<{ result: string; domain: string; selector: string }>;
  arc?: { result: string; sealer: string | null; sealerSawPass: boolean };
  dmarc?: { domain: string | null; result: string; policy: string | null; unevaluable?: string };
  action?: 'accept' | 'quarantine' | 'reject';
  why?: string;
  /** The checks themselves failed: the message was accepted unchecked. */
  result?: 'error';
  err?: string;
}

/** A DSN about `original` was queued as `qid`. */
export interface DsnEvent {
  event: 'dsn';
  qid: string;
  original: string;
  kind: 'failed' | 'delayed' | 'relayed';
  to: string;
  recipients: string[];
}

export interface DsnSuppressedEvent {
  event: 'dsn-suppressed';
  qid: string;
  reason: 'NOTIFY' | 'null sender';
  recipients?: string[];
}

/** The operator's commands and the end of a message's life in the queue. */
export interface OperatorEvent {
  event: 'deleted' | 'held' | 'released';
  qid?: string;
  destination?: string;
  messages?: number;
  when?: string;
}

/** SPEC §12: recipients of a queued message handed to another node by `drain` (the peer's 250). */
export interface DrainedEvent {
  event: 'drained';
  qid: string;
  to: string;
  recipients: string[];
}

export interface RemovedEvent {
  event: 'removed';
  qid: string;
  delivered: number;
  failed: number;
}

/** What the trace keeps: each event with its message's queue id. */
export type TracedEvent = QueuedEvent | RuleEvent | AuthenticationEvent | (RecipientEvent & { qid: string }) | DsnEvent | DsnSuppressedEvent | OperatorEvent | RemovedEvent | DrainedEvent;

/** A log line as the trace reads it back: the event, pino's own fields, and the session's bindings. */
export type TracedLine = TracedEvent & { time?: string | number; level?: number; msg?: string; svc?: string; sid?: string; ip?: string; worker?: number };

export const TRACED_EVENTS: ReadonlySet<string> = new Set<TracedEvent['event']>(['queued', 'rule', 'authentication', 'delivered', 'deferred', 'bounced', 'dsn', 'dsn-suppressed', 'deleted', 'held', 'released', 'removed', 'drained']);

/** Marks an object as a traced event at the place it is logged: the compiler checks its fields. */
export const traced = <E extends TracedEvent>(e: E): E => e;
