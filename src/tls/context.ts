// Secure contexts that trust Node's bundled root CAs plus a few CAs of the operator's.
//
// The obvious way, `ca: [...tls.rootCertificates, ...extra]`, parses all 144 bundled roots again
// for every context and, on a server that asks for client certificates, also makes every
// root a "client CA name": OpenSSL sends the whole list in each CertificateRequest and
// every TLS session keeps its own copy (measured: ~20 KB a session, 40 MB at 2,000 idle
// sessions). Without `ca`, Node gives a context its shared store of bundled roots and no
// client CA names; `addCACert` then copies that store before adding to it (so other
// contexts are unaffected) and lists only the added CA. Same trust, a fraction of the memory.
// (Like Postfix with smtpd_tls_CApath: public roots are trusted, not advertised.)
import { createHash } from 'node:crypto';
import tls from 'node:tls';

interface NativeContext {
  addCACert(pem: string): void;
}

/** A context for `options` (which must not carry `ca`) trusting the bundled roots and `extraCa`. */
export function contextTrustingRoots(options: Omit<tls.SecureContextOptions, 'ca'>, extraCa: readonly string[]): tls.SecureContext {
  const ctx = tls.createSecureContext(options);
  addTrustedCas(ctx, extraCa);
  return ctx;
}

/** Adds CAs (PEM, one or several certificates each) to a context made without `ca`. */
export function addTrustedCas(ctx: tls.SecureContext, extraCa: readonly string[]): void {
  const native = (ctx as unknown as { context: NativeContext }).context;
  for (const pem of extraCa) native.addCACert(pem);
}

/** A short key naming a set of extra CAs, for caches of contexts and connections. */
export function caSetKey(extraCa: readonly string[]): string {
  if (!extraCa.length) return 'roots';
  const h = createHash('sha256');
  for (const pem of extraCa) h.update(pem).update('\0');
  return h.digest('base64url').slice(0, 16);
}
