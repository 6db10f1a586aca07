// Idle SMTP connections per next hop and TLS requirement, reused for the next message (one
// TLS handshake for many messages, as Postfix's connection cache does). A connection serves at
// most MAX_USES messages and is closed after IDLE_MS unused.
import type { Conn } from './nodemailer-adapter.js';

/** Ends a connection politely; errors of a closing socket are of no interest. */
export function dispose(conn: Conn): void {
  conn.removeAllListeners('error');
  conn.on('error', () => {});
  conn.quit();
}

interface IdleEntry {
  conn: Conn;
  uses: number;
  timer: NodeJS.Timeout;
  drop: () => void;
}

export class ConnectionPool {
  private idle = new Map<string, IdleEntry[]>();
  static readonly MAX_USES = 100;
  static readonly IDLE_MS = 5_000;

  take(key: string): { conn: Conn; uses: number } | null {
    const list = this.idle.get(key);
    const e = list?.pop();
    if (!list || !e) return null;
    if (!list.length) this.idle.delete(key);
    clearTimeout(e.timer);
    e.conn.removeListener('error', e.drop);
    e.conn.removeListener('end', e.drop);
    return { conn: e.conn, uses: e.uses };
  }

  give(key: string, conn: Conn, uses: number): void {
    if (uses >= ConnectionPool.MAX_USES) return dispose(conn);
    const list = this.idle.get(key) ?? [];
    const drop = (): void => {
      clearTimeout(entry.timer);
      const l = this.idle.get(key);
      const i = l?.indexOf(entry) ?? -1;
      if (l && i >= 0) l.splice(i, 1);
      if (l && !l.length) this.idle.delete(key);
      conn.removeListener('end', entry.drop);
      dispose(conn);
      conn.close();
    };
    const entry: IdleEntry = { conn, uses, timer: setTimeout(drop, ConnectionPool.IDLE_MS), drop };
    entry.timer.unref();
    conn.once('error', entry.drop);
    conn.once('end', entry.drop);
    list.push(entry);
    this.idle.set(key, list);
  }

  closeAll(): void {
    for (const list of [...this.idle.values()]) for (const e of [...list]) e.drop();
  }
}
