// The durable spool (SPEC §5). One message = <id>.eml (content) + <id>.json (envelope and state).
// The envelope file is the commit point. At receipt:
//   1. the content file is fsynced and, side by side, the envelope is written to a temporary
//      name and fsynced (two fsyncs in flight at once, not one after the other);
//   2. only when both are durable is the envelope renamed into place — the commit point;
//   3. the directory is fsynced (shared by the messages committed together: DirSyncer), which makes
//      the content file's name and the rename durable; then, and only then, 250.
// An envelope is never visible before its content is durable. A .eml without .json is an
// interrupted receipt: never acknowledged, so removed at recovery; a left .tmp likewise.
// Later changes of the envelope (the queue's state) are temp file, fsync, rename, directory fsync.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { domainOf, normalizeDomain } from '../mail/address.js';

export type RecipientStatus = 'pending' | 'delivered' | 'failed';

export interface QueuedRecipient {
  address: string;
  status: RecipientStatus;
  /** Outbound connector chosen at RCPT time (informational; routing is re-evaluated at delivery). */
  connector: string | null;
  attempts: number;
  lastResult?: string;
  /** RFC 3461 NOTIFY of the RCPT (absent: the default, failures and delays). */
  notify?: DsnNotify[];
  /** RFC 3461 ORCPT, decoded: "rfc822;user@example.com". */
  orcpt?: string;
  /** A mail flow rule routes this recipient through an outbound connector (SPEC §9). */
  rule?: { name: string; connector: string };
}

export type DsnNotify = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

export interface Envelope {
  version: 1;
  id: string;
  receivedAt: string;
  sender: string; // "" = null sender
  recipients: QueuedRecipient[];
  size: number;
  bodyType: '7bit' | '8bitmime';
  smtpUtf8: boolean;
  client: { ip: string; helo: string; sessionId: string; connector: string | null; tls: string | null };
  nextAttemptAt?: string;
  delayNotified?: boolean;
  /** RFC 3461 parameters of MAIL FROM: RET (what a DSN returns) and ENVID (decoded). */
  dsn?: { ret: 'FULL' | 'HDRS' | null; envid: string | null };
  /** RFC 8689 REQUIRETLS: delivered only over verified TLS to a next hop that offers it. */
  requireTls?: true;
  /** RFC 8689 §5: the message said `TLS-Required: No` (and was not sent with REQUIRETLS). */
  tlsRequiredNo?: true;
  /** Mail flow rules that fired at end of DATA (audit ones too), in order. */
  rules?: Array<{ name: string; mode: 'enforce' | 'audit' }>;
  /** On hold (`queue hold`, Postfix's postsuper -h): kept, never attempted until released. */
  held?: true;
  /**
   * SPEC §11: a message from outside, authenticated at the edge: our Authentication-Results
   * payload and the ARC chain's validation, which the ARC seal carries on the way out.
   */
  auth?: { authResults: string; cv: 'none' | 'pass' | 'fail' };
}

/** Whether the message still has a recipient to deliver at `domain` (normalized by the caller). */
export function pendingAt(env: Envelope, domain: string): boolean {
  return env.recipients.some((r) => r.status === 'pending' && normalizeDomain(domainOf(r.address)) === domain);
}

/** The envelope format this code reads and writes. */
export const ENVELOPE_VERSION = 1;

/** An envelope file that exists but is not one this code can read. */
export class EnvelopeError extends Error {}

const ID_RE = /^[0-9A-Z]{10,32}$/;

export function isQueueId(id: string): boolean {
  return ID_RE.test(id);
}

/** Time-ordered, unique queue ids: 9 base-36 characters of milliseconds + 10 hex characters. */
export function newQueueId(): string {
  return Date.now().toString(36).toUpperCase().padStart(9, '0') + randomBytes(5).toString('hex').toUpperCase();
}

/**
 * Group commit of directory fsyncs: a caller waits for a sync that *starts* after its own
 * rename, but concurrent callers share it, so N messages committed together cost one fsync.
 */
export class DirSyncer {
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  /** The directory, opened once and kept: an fsync is then one call, not open, fsync, close. */
  private handle: Promise<fsp.FileHandle> | null = null;
  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    if (!this.running) return (this.running = this.run());
    // A sync is in flight: it may have started before our rename; join the next one.
    this.queued ??= this.running.then(
      () => this.startQueued(),
      () => this.startQueued(),
    );
    return this.queued;
  }

  private startQueued(): Promise<void> {
    this.queued = null;
    return (this.running = this.run());
  }

  private async run(): Promise<void> {
    try {
      this.handle ??= fsp.open(this.dir, 'r');
      await (await this.handle).sync();
    } catch (e) {
      this.handle = null; // opened again by the next sync (the directory may have been recreated)
      throw e;
    } finally {
      this.running = null;
    }
  }
}

export class MessageWriter {
  private bytes = 0;
  private closed = false;
  constructor(
    readonly spool: Spool,
    readonly id: string,
    private handle: fsp.FileHandle,
  ) {}

  get size(): number {
    return this.bytes;
  }

  async write(buf: Buffer): Promise<void> {
    if (!buf.length) return;
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await this.handle.write(buf, off, buf.length - off);
      off += bytesWritten;
    }
    this.bytes += buf.length;
  }

  /**
   * Replaces the first `oldLength` bytes written (the header block) by `head`, before commit:
   * the content is copied to a new file (head, then the rest) that takes the old one's name.
   * For mail flow rules that set or remove headers, known only at end of DATA.
   */
  async replaceHead(oldLength: number, head: Buffer): Promise<void> {
    const file = this.spool.contentPath(this.id);
    const tmp = `${file}.${randomBytes(3).toString('hex')}.tmp`;
    const out = await fsp.open(tmp, 'wx', 0o600);
    try {
      await out.write(head);
      const buf = Buffer.alloc(256 * 1024);
      for (let pos = oldLength; ; ) {
        const { bytesRead } = await this.handle.read(buf, 0, buf.length, pos);
        if (!bytesRead) break;
        await out.write(buf, 0, bytesRead);
        pos += bytesRead;
      }
      await fsp.rename(tmp, file);
    } catch (e) {
      await out.close().catch(() => {});
      await fsp.unlink(tmp).catch(() => {});
      throw e;
    }
    await this.handle.close();
    this.handle = out;
    this.bytes = this.bytes - oldLength + head.length;
  }

  /** Makes the message durable (the protocol in this file's header); only after this resolves may the gateway answer 250. */
  async commit(envelope: Omit<Envelope, 'id' | 'size' | 'version'>): Promise<Envelope> {
    const env: Envelope = { version: ENVELOPE_VERSION, id: this.id, size: this.bytes, ...envelope };
    // 1. Content fsync and envelope temp file (written, fsynced) side by side.
    const content = this.handle.sync().finally(() => {
      this.closed = true;
      return this.handle.close();
    });
    const written = this.spool.writeEnvelopeTemp(env);
    const [c, t] = await Promise.allSettled([content, written]);
    if (c.status === 'rejected' || t.status === 'rejected') {
      if (t.status === 'fulfilled') await fsp.unlink(t.value).catch(() => {});
      throw c.status === 'rejected' ? c.reason : (t as PromiseRejectedResult).reason;
    }
    // 2. The commit point, 3. the directory.
    await this.spool.installEnvelope(t.value, env.id);
    return env;
  }

  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => {});
    }
    // A commit that failed after its rename (the directory fsync) was never acknowledged either.
    await fsp.unlink(this.spool.envelopePath(this.id)).catch(() => {});
    await fsp.unlink(this.spool.contentPath(this.id)).catch(() => {});
  }
}

export class Spool {
  private readonly dirSync: DirSyncer;
  constructor(readonly dir: string) {
    this.dirSync = new DirSyncer(dir);
  }

  contentPath(id: string): string {
    return path.join(this.dir, `${id}.eml`);
  }
  envelopePath(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  /**
   * Creates the directory and removes what an interrupted receipt left. Returns queued ids.
   * Only files older than `before` are leftovers: the listeners may already be receiving
   * (worker processes start while the queue is recovered), and a receipt in progress has a
   * content file without its envelope too.
   */
  async recover(before = Date.now()): Promise<{ ids: string[]; removed: string[] }> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fsp.chmod(this.dir, 0o700); // a queue made by an earlier release (0755) is closed too
    const names = await fsp.readdir(this.dir);
    const present = new Set(names);
    const envelopes = new Set(names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)));
    const removed: string[] = [];
    for (const n of names) {
      const orphan = n.endsWith('.eml') && !envelopes.has(n.slice(0, -4));
      if (orphan || n.endsWith('.tmp')) {
        const file = path.join(this.dir, n);
        const st = await fsp.stat(file).catch(() => null);
        if (!st || st.mtimeMs >= before) continue; // gone, or a receipt of this run
        await fsp.unlink(file).catch(() => {});
        removed.push(n);
      }
    }
    for (const id of envelopes) {
      if (!present.has(`${id}.eml`)) {
        // An envelope without content cannot be delivered; keep it visible rather than drop it.
        removed.push(`${id}.json (content missing, moved aside)`);
        await fsp.rename(this.envelopePath(id), path.join(this.dir, `${id}.json.corrupt`)).catch(() => {});
        envelopes.delete(id);
      }
    }
    return { ids: [...envelopes].sort(), removed };
  }

  async create(): Promise<MessageWriter> {
    const id = newQueueId();
    const handle = await fsp.open(this.contentPath(id), 'wx+', 0o600); // read too: replaceHead copies from it
    return new MessageWriter(this, id, handle);
  }

  /** Atomically and durably replaces the envelope (temp file, fsync, rename, directory fsync). */
  async writeEnvelope(env: Envelope): Promise<void> {
    await this.installEnvelope(await this.writeEnvelopeTemp(env), env.id);
  }

  /** The envelope written to a temporary name and fsynced; returns that name. */
  async writeEnvelopeTemp(env: Envelope): Promise<string> {
    const tmp = `${this.envelopePath(env.id)}.${randomBytes(3).toString('hex')}.tmp`;
    const h = await fsp.open(tmp, 'wx', 0o600);
    try {
      await h.writeFile(JSON.stringify(env, null, 1));
      await h.sync();
    } catch (e) {
      await h.close().catch(() => {});
      await fsp.unlink(tmp).catch(() => {});
      throw e;
    }
    await h.close();
    return tmp;
  }

  /** Renames a durable temporary envelope into place (the commit point) and fsyncs the directory. */
  async installEnvelope(tmp: string, id: string): Promise<void> {
    await fsp.rename(tmp, this.envelopePath(id));
    await this.dirSync.sync();
  }

  async readEnvelope(id: string): Promise<Envelope> {
    const env = JSON.parse(await fsp.readFile(this.envelopePath(id), 'utf8')) as Partial<Envelope>;
    // A queue written by a newer release (or damaged) is not read as if it were ours.
    if (env.version !== ENVELOPE_VERSION || env.id !== id || !Array.isArray(env.recipients)) {
      throw new EnvelopeError(`${this.envelopePath(id)}: not an envelope of version ${ENVELOPE_VERSION} for ${id} (version ${String(env.version)})`);
    }
    return env as Envelope;
  }

  contentStream(id: string): Readable {
    return fs.createReadStream(this.contentPath(id));
  }

  async list(): Promise<Envelope[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: Envelope[] = [];
    for (const n of names.filter((x) => x.endsWith('.json')).sort()) {
      try {
        out.push(await this.readEnvelope(n.slice(0, -5)));
      } catch {
        // removed between readdir and read (delivered meanwhile)
      }
    }
    return out;
  }

  /**
   * Removes a message: envelope first, so that a crash in between leaves only an orphan .eml.
   * No fsync: a removal that a crash undoes only means the message is delivered again, which
   * at-least-once delivery allows.
   */
  async remove(id: string): Promise<void> {
    await fsp.unlink(this.envelopePath(id));
    await fsp.unlink(this.contentPath(id)).catch(() => {});
  }
}
