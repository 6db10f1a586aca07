// The one place that reaches into smtp-server beyond its documented API.
// test/unit/adapters.test.ts fails loudly when an upgrade changes anything relied on here:
//   - SMTPConnection.prototype.send, patched once so that our replies keep their own enhanced
//     code (smtp-server derives one from the reply code: 550 → 5.1.1, contradicting SPEC §3),
//     and smtp-server's own refusals get SPEC §3's words: the size refusal (its context
//     MESSAGE_TOO_BIG) and REQUIRETLS on a session without TLS (the only 530 smtp-server sends
//     itself when authentication is optional);
//   - server._resolveSNI, answered with "no other context";
//   - server.secureContext (the default context, to add the operator's client CAs);
//   - server.connections (the open sessions: counted, and told 421 at shutdown).
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
  send: (code: number, text: string) => void;
  close: () => void;
}
interface ServerInternals {
  _resolveSNI: (name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;
  secureContext: Map<string, tls.SecureContext>;
  connections: Set<OpenConnection>;
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
