// The bounce room (Postfix's bounce daemon): turns the scheduler's decision "send this DSN"
// into a message in the queue. It reads what it returns of the original (the header block, or the
// whole message for RET=FULL), composes the RFC 3464 report (dsn.ts) and commits it to the spool
// addressed to the original sender, from the null sender. The queue manager decides when
// (queue/schedule.ts) and enqueues what this returns; this file decides nothing.
import fsp from 'node:fs/promises';
import type { Policy } from '../policy/types.js';
import { dsnReturns, type DsnKind, type DsnRecipient } from '../queue/schedule.js';
import type { Envelope, Spool } from '../queue/spool.js';
import { buildDsn } from './dsn.js';

/** What the queue manager needs of the bounce room. */
export interface Bouncer {
  /** Commits one DSN about `env` to the spool; resolves with its envelope (the caller enqueues it). */
  bounce(env: Envelope, kind: DsnKind, recipients: DsnRecipient[], policy: Policy): Promise<Envelope>;
}

export class SpoolBouncer implements Bouncer {
  constructor(private readonly spool: Spool) {}

  async bounce(env: Envelope, kind: DsnKind, recipients: DsnRecipient[], policy: Policy): Promise<Envelope> {
    const original = this.spool.contentPath(env.id);
    const text = buildDsn({
      kind,
      hostname: policy.gateway.hostname,
      queueId: env.id,
      originalSender: env.sender,
      arrivalDate: new Date(env.receivedAt),
      recipients,
      originalHeaders: await readHeaders(original),
      originalMessage: dsnReturns(env, kind) === 'full' ? await fsp.readFile(original) : null,
      envid: env.dsn?.envid ?? null,
    });
    const w = await this.spool.create();
    try {
      await w.write(text);
      return await w.commit({
        receivedAt: new Date().toISOString(),
        sender: '',
        recipients: [{ address: env.sender, status: 'pending', connector: null, attempts: 0 }],
        bodyType: '8bitmime',
        smtpUtf8: false,
        // RFC 8689 §5: a report about a REQUIRETLS message is protected as the message was.
        ...(env.requireTls ? { requireTls: true as const } : {}),
        client: { ip: '127.0.0.1', helo: policy.gateway.hostname, sessionId: `dsn:${env.id}`, connector: null, tls: null },
      });
    } catch (e) {
      await w.abort();
      throw e;
    }
  }
}

/** The header block of a spooled message (bounded), for text/rfc822-headers. */
async function readHeaders(file: string, max = 64 * 1024): Promise<string> {
  const h = await fsp.open(file, 'r');
  try {
    const buf = Buffer.alloc(max);
    const { bytesRead } = await h.read(buf, 0, max, 0);
    const text = buf.subarray(0, bytesRead).toString('utf8');
    const end = text.indexOf('\r\n\r\n');
    return end >= 0 ? text.slice(0, end + 2) : text;
  } finally {
    await h.close();
  }
}
