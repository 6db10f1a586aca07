// The one place that reaches into smtp-server beyond its documented API.
// test/unit/adapters.test.ts fails loudly when an upgrade changes anything relied on here:
//   - SMTPConnection.prototype.send, patched once so that our replies keep their own enhanced
//     code (smtp-server derives one from the reply code: 550 → 5.1.1, contradicting SPEC §3),
//     and smtp-server's own refusals get SPEC §3's words: the size refusal (its context
//     MESSAGE_TOO_BIG) and REQUIRETLS on a session without TLS (the only 530 smtp-server sends
//     itself when authentication is optional);
//   - server._resolveSNI, answered with "no other context";
//   - server.secureContext (the default context, to add the operator's client CAs);
//   - server.connections (the open sessions: counted, told 421 at shutdown, and — found by their
//     id, which is the session's — given a shorter idle timeout under stress or closed with 421);
//   - SMTPConnection._socket.setTimeout (its idle timer: smtp-server answers 421 when it fires);
//   - server._pendingSockets (an accepted socket's topmost socket before its session begins: a
//     socket in mid-handshake is ended by destroying its TLS wrap, never the socket under it —
//     that crashes Node, as smtp-server's own close() notes).
import type tls from 'node:tls';
import type { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { Reply } from '../policy/replies.js';

const ENHANCED_IN_TEXT = /^[245]\.\d{1,3}\.\d{1,3} /;

type Send = (code: number, data: unknown, context?: unknown) => void;
interface ConnectionProto {
  send: Send;
  __gwPatched?: boolean;
}
interface OpenConnection {
  id: string;
  send: (code: number, text: string) => void;
  close: () => void;
  _socket?: { setTimeout: (ms: number) => void };
}
interface ServerInternals {
  _resolveSNI: (name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;
  secureContext: Map<string, tls.SecureContext>;
  connections: Set<OpenConnection>;
  /** Accepted sockets not yet sessions: raw socket → its topmost socket (the TLS wrap once upgrading). */
  _pendingSockets: Map<unknown, { destroy: () => void }>;
}
const internals = (server: SMTPServer): ServerInternals => server as unknown as ServerInternals;

/**
 * Installs the reply patch (once per process): a reply whose text starts with an enhanced code
 * is sent as it is; smtp-server's own size and REQUIRETLS refusals are sent in our words.
 */
export function installReplyPatch(ours: { tooBig: Reply; requireTlsWithoutTls: Reply }): void {
  const proto = SMTPConnection.prototype as unknown as ConnectionProto;
  if (proto.__gwPatched) return;
  const original = proto.send;
  const text = (r: Reply): string => `${r.enhanced} ${r.text}`;
  proto.send = function (this: unknown, code: number, data: unknown, context?: unknown) {
    if (typeof data === 'string' && ENHANCED_IN_TEXT.test(data)) return original.call(this, code, data, false);
    if (code === 552 && context === 'MESSAGE_TOO_BIG') return original.call(this, code, text(ours.tooBig), false);
    if (code === 530) return original.call(this, code, text(ours.requireTlsWithoutTls), false);
    return original.call(this, code, data, context);
  };
  proto.__gwPatched = true;
}

/** The error object smtp-server turns into a reply (the enhanced code travels in the text). */
export function smtpError(r: Reply): Error & { responseCode: number } {
  return Object.assign(new Error(`${r.enhanced} ${r.text}`), { responseCode: r.code });
}

/**
 * smtp-server answers every SNI name with its default context, and Node then switches the
 * connection to that same context, duplicating its client-CA name list into each connection
 * (~115 KB per TLS session). Answering "no other context" keeps the connection on the default
 * one. (We serve one certificate.)
 */
export function keepDefaultContextOnSni(server: SMTPServer): void {
  internals(server)._resolveSNI = (_name, cb) => cb(null, undefined);
}

/** The context smtp-server built from our options (rebuilt by updateSecureContext). */
export function defaultSecureContext(server: SMTPServer): tls.SecureContext {
  const ctx = internals(server).secureContext.get('*');
  if (!ctx) throw new Error('smtp-server has no default TLS context');
  return ctx;
}

/** Sessions open on this server now. */
export function openSessionCount(server: SMTPServer): number {
  return internals(server).connections?.size ?? 0;
}

/** Sends `r` to every open session and closes it (shutdown after the grace period). */
export function closeOpenSessions(server: SMTPServer, r: Reply): void {
  for (const c of [...internals(server).connections]) {
    c.send(r.code, `${r.enhanced} ${r.text}`);
    c.close();
  }
}

function connectionById(server: SMTPServer, id: string): OpenConnection | undefined {
  for (const c of internals(server).connections) if (c.id === id) return c;
  return undefined;
}

/** Gives one session its own idle timeout (smtp-server's timer: at its end the client gets its 421). */
export function setSessionIdleTimeout(server: SMTPServer, sessionId: string, ms: number): boolean {
  const c = connectionById(server, sessionId);
  if (!c?._socket) return false;
  c._socket.setTimeout(ms);
  return true;
}

/** Ends one session now: `r` is sent, then the connection closed. False when it is not on this server. */
export function closeSession(server: SMTPServer, sessionId: string, r: Reply): boolean {
  const c = connectionById(server, sessionId);
  if (!c) return false;
  c.send(r.code, `${r.enhanced} ${r.text}`);
  c.close();
  return true;
}

/**
 * Ends an accepted socket that has not become a session (its TLS handshake is late): destroys the
 * topmost socket smtp-server keeps for it. False when it is not pending any more.
 */
export function endPendingSocket(server: SMTPServer, raw: unknown): boolean {
  const top = internals(server)._pendingSockets.get(raw);
  if (!top) return false;
  top.destroy();
  return true;
}
