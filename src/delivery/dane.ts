// DANE for SMTP (RFC 7672) on MX routes. Three steps, kept apart:
//   lookupMx    — I/O: MX, the hosts' addresses and their TLSA records, each with its DNSSEC
//                 status, from the validating resolver (dnssec-resolver.ts);
//   planMx      — PURE: those facts and the mode → the next hops, each with what its TLS must
//                 prove (a TLSA match, or encryption only), or why the domain cannot be used;
//   matchTlsa   — PURE: does a server's certificate chain match a usable TLSA record?
// Exchange Online's codes: 4.7.321 (no STARTTLS where TLSA is secure), 4.7.323 (no TLSA record
// matches), 4.7.324 (DNSSEC bogus, or mandatory mode without secure TLSA).
import { createHash, X509Certificate } from 'node:crypto';
import type { DnsAnswer, SecureResolver, TlsaRecord } from './dnssec-resolver.js';
import { DnsQueryError } from './dnssec-resolver.js';
import { DNS_STATUS, hopFailure, type HopFailure } from './status.js';
import type { NextHop } from './resolve.js';

import type { DaneMode } from '../policy/types.js';

/** What a hop's TLS must prove. */
export type HopSecurity =
  | { kind: 'dane'; tlsa: TlsaRecord[]; names: string[] } // a usable TLSA record must match
  | { kind: 'encrypt' } // secure TLSA records, none usable: TLS without authentication (RFC 7672 §2.2)
  | { kind: 'sts'; mode: 'enforce' | 'testing'; policy: string[] } // MTA-STS (mta-sts.ts): PKIX for the MX name; the policy's lines
  | { kind: 'none' }; // no DANE for this host: the connector's (or opportunistic) TLS

export interface SecuredHop extends NextHop {
  security: HopSecurity;
}

// ---------------------------------------------------------------------------------------
// Facts

type Lookup<T extends 'MX' | 'A' | 'AAAA' | 'TLSA'> = DnsAnswer<T> | { error: string };

export interface MxFacts {
  domain: string;
  mx: Lookup<'MX'>;
  hosts: Array<{ name: string; a: Lookup<'A'>; aaaa: Lookup<'AAAA'>; tlsa: Lookup<'TLSA'> | null }>;
}

async function ask<T extends 'MX' | 'A' | 'AAAA' | 'TLSA'>(resolver: SecureResolver, name: string, type: T): Promise<Lookup<T>> {
  try {
    return await resolver.query(name, type);
  } catch (e) {
    if (e instanceof DnsQueryError) return { error: e.message };
    throw e;
  }
}

/** The DNS facts DANE needs for a domain (TLSA only where the MX and the host's addresses are secure). */
export async function lookupMx(domain: string, resolver: SecureResolver, port = 25): Promise<MxFacts> {
  const mx = await ask(resolver, domain, 'MX');
  let names: string[] = [];
  if (!('error' in mx) && mx.rcode === 'NOERROR') {
    names = mx.records.length ? [...mx.records].sort((x, y) => x.preference - y.preference).map((r) => r.exchange.toLowerCase().replace(/\.$/, '')) : [domain];
  }
  const hosts: MxFacts['hosts'] = [];
  for (const name of names) {
    if (name === '' || name === '.') continue; // null MX: planMx says so
    const [a, aaaa] = await Promise.all([ask(resolver, name, 'A'), ask(resolver, name, 'AAAA')]);
    const secureAddresses = [a, aaaa].some((x) => !('error' in x) && x.secure && x.records.length);
    const mxSecure = !('error' in mx) && mx.secure;
    const tlsa = mxSecure && secureAddresses ? await ask(resolver, `_${port}._tcp.${name}`, 'TLSA') : null;
    hosts.push({ name, a, aaaa, tlsa });
  }
  return { domain, mx, hosts };
}

// ---------------------------------------------------------------------------------------
// Plan

/** RFC 8914 extended DNS errors 6–12: DNSSEC bogus, signature expired or not yet valid, no DNSKEY, … */
const bogus = (x: { extendedErrors: number[] }): boolean => x.extendedErrors.some((c) => c >= 6 && c <= 12);

function lookupFailure(what: string, x: { error: string } | DnsAnswer<'MX' | 'A' | 'AAAA' | 'TLSA'>): HopFailure {
  if ('error' in x) return hopFailure('dns', `DNS query failed for ${what}: ${x.error}`);
  if (bogus(x)) return hopFailure('dnssec-invalid', `dnssec-invalid: the DNSSEC answer for ${what} is bogus (${x.rcode})`);
  return hopFailure('dns', `DNS query failed for ${what}: ${x.rcode}`);
}

/** TLSA records usable for SMTP (RFC 7672 §3.1.3): DANE-TA(2) and DANE-EE(3), selector 0/1, matching 0/1/2. */
export function usableTlsa(records: readonly TlsaRecord[]): TlsaRecord[] {
  return records.filter((r) => (r.usage === 2 || r.usage === 3) && (r.selector === 0 || r.selector === 1) && r.matchingType <= 2);
}

export type MxPlan = { ok: true; hops: SecuredHop[] } | { ok: false; permanent: boolean; status: string; failure: HopFailure };

export function planMx(facts: MxFacts, mode: Exclude<DaneMode, 'none'>, port = 25): MxPlan {
  const { domain, mx } = facts;
  const fail = (f: HopFailure, permanent = false, status = f.code): MxPlan => ({ ok: false, permanent, status, failure: f });
  if ('error' in mx || (mx.rcode !== 'NOERROR' && mx.rcode !== 'NXDOMAIN')) return fail(lookupFailure(`MX ${domain}`, mx));
  if (mx.rcode === 'NXDOMAIN') return fail(hopFailure('dns', `DNS domain ${domain} does not exist`), true, DNS_STATUS.noSuchDomain);
  if (mx.records.length === 1 && (mx.records[0]!.exchange === '' || mx.records[0]!.exchange === '.')) {
    return fail(hopFailure('dns', `${domain} does not accept mail (null MX)`), true, DNS_STATUS.nullMx);
  }
  if (!mx.secure && mode === 'mandatory') return fail(hopFailure('dnssec-invalid', `dnssec-invalid: the MX records of ${domain} are not DNSSEC-signed (smtpDaneMode: mandatory)`));

  const hops: SecuredHop[] = [];
  let last: HopFailure = hopFailure('dns', `no address for the MX hosts of ${domain}`);
  for (const h of facts.hosts) {
    const addresses = [h.a, h.aaaa].flatMap((x) => ('error' in x || x.rcode !== 'NOERROR' ? [] : x.records));
    if (!addresses.length) {
      last = [h.a, h.aaaa].map((x) => ('error' in x || (x.rcode !== 'NOERROR' && x.rcode !== 'NXDOMAIN') ? lookupFailure(`${h.name}`, x) : null)).find((f) => f) ?? last;
      continue;
    }
    let security: HopSecurity = { kind: 'none' };
    if (h.tlsa) {
      const t = h.tlsa;
      if ('error' in t || (t.rcode !== 'NOERROR' && t.rcode !== 'NXDOMAIN')) {
        last = lookupFailure(`TLSA _${port}._tcp.${h.name}`, t); // RFC 7672 §2.2.1: the host is unusable
        continue;
      }
      if (t.secure && t.records.length) {
        const usable = usableTlsa(t.records);
        security = usable.length ? { kind: 'dane', tlsa: usable, names: [h.name, domain] } : { kind: 'encrypt' };
      }
    }
    if (mode === 'mandatory' && security.kind === 'none') {
      last = hopFailure('dnssec-invalid', `dnssec-invalid: ${h.name} has no DNSSEC-secure TLSA record (smtpDaneMode: mandatory)`);
      continue;
    }
    for (const address of addresses) hops.push({ name: h.name, address, port, security });
  }
  return hops.length ? { ok: true, hops } : fail(last);
}

// ---------------------------------------------------------------------------------------
// Match

function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
}

function associated(data: Buffer, matchingType: number): Buffer {
  return matchingType === 0 ? data : createHash(matchingType === 1 ? 'sha256' : 'sha512').update(data).digest();
}

const matches = (r: TlsaRecord, cert: X509Certificate): boolean => associated(selected(cert, r.selector), r.matchingType).equals(r.data);

/**
 * RFC 7672 §3: DANE-EE(3) matches the server certificate itself, its name and dates ignored.
 * DANE-TA(2) matches a certificate of the chain the server sent, from which the server
 * certificate must chain by signature, and the server certificate must carry one of `names`.
 */
export function matchTlsa(records: readonly TlsaRecord[], chain: readonly X509Certificate[], names: readonly string[]): { ok: true; how: string } | { ok: false; reason: string } {
  const leaf = chain[0];
  if (!leaf) return { ok: false, reason: 'the server sent no certificate' };
  for (const r of records) if (r.usage === 3 && matches(r, leaf)) return { ok: true, how: `DANE-EE ${r.usage} ${r.selector} ${r.matchingType}` };
  const ta = records.filter((r) => r.usage === 2);
  for (let i = 0; i < chain.length && ta.length; i++) {
    const anchor = chain[i]!;
    const r = ta.find((x) => matches(x, anchor));
    if (!r) continue;
    if (!chainsTo(chain.slice(0, i + 1))) return { ok: false, reason: 'the trust anchor named by TLSA does not sign the server certificate' };
    if (!names.some((n) => leaf.checkHost(n) !== undefined)) return { ok: false, reason: `the certificate is for none of ${names.join(', ')}` };
    const now = Date.now();
    if (Date.parse(leaf.validTo) < now || Date.parse(leaf.validFrom) > now) return { ok: false, reason: 'the certificate is expired or not yet valid' };
    return { ok: true, how: `DANE-TA ${r.usage} ${r.selector} ${r.matchingType}` };
  }
  return { ok: false, reason: `no TLSA record matches the certificate (${records.map((r) => `${r.usage} ${r.selector} ${r.matchingType}`).join(', ')})` };
}

/** Each certificate is issued and signed by the next one. */
function chainsTo(chain: readonly X509Certificate[]): boolean {
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i]!;
    const parent = chain[i + 1]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) return false;
  }
  return true;
}
