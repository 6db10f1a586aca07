// PURE. Who may read the admin HTTP's /trace (every sender and recipient of the last 30 days):
// a request that names this gateway in its Host header (an IP address, localhost, or the
// gateway's host name — a browser led there by DNS rebinding sends the attacker's name) and
// carries the operator's bearer token. /metrics, /healthz and /readyz stay open: they tell
// counts, not addresses.
import { timingSafeEqual } from 'node:crypto';
import net from 'node:net';

export interface AccessFacts {
  host: string | undefined;
  authorization: string | undefined;
}

export interface AccessSettings {
  /** Host names this admin HTTP answers to besides IP literals and localhost. */
  hostnames: readonly string[];
  /** The bearer token; null: none configured, so /trace is closed. */
  token: string | null;
}

export type Access = { ok: true } | { ok: false; status: 401 | 403 | 421; error: string; headers?: Record<string, string> };

/** The host part of a Host header ("[::1]:8025" → "::1", "a.b:80" → "a.b"), lower-cased. */
function hostOf(header: string): string {
  const h = header.trim().toLowerCase();
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(h);
  if (v6) return v6[1]!;
  return h.replace(/:\d+$/, '').replace(/\.$/, '');
}

export function traceAccess(facts: AccessFacts, settings: AccessSettings): Access {
  const host = facts.host === undefined ? '' : hostOf(facts.host);
  const known = host !== '' && (net.isIP(host) !== 0 || host === 'localhost' || settings.hostnames.some((n) => n.toLowerCase() === host));
  if (!known) return { ok: false, status: 421, error: `this admin HTTP does not answer to the host "${facts.host ?? ''}"` };
  if (settings.token === null) return { ok: false, status: 403, error: 'the message trace over HTTP is closed: set gateway.admin.tokenFile (or GATEWAY_ADMIN_TOKEN)' };
  const m = /^Bearer\s+(\S+)\s*$/i.exec(facts.authorization ?? '');
  const given = Buffer.from(m?.[1] ?? '');
  const want = Buffer.from(settings.token);
  if (!m || given.length !== want.length || !timingSafeEqual(given, want)) {
    return { ok: false, status: 401, error: 'a bearer token is required', headers: { 'www-authenticate': 'Bearer realm="connector-gateway"' } };
  }
  return { ok: true };
}
