// The adapter to mailauth (postalsys: SPF, DKIM, ARC and DMARC, by the author of smtp-server and
// nodemailer) for inbound sender authentication (SPEC §11). It runs the checks on the message as
// the client sent it and turns mailauth's result objects into the plain AuthFacts that
// policy/authentication.ts decides on; it decides nothing. All DNS goes through the resolver it
// is given (gateway.dns.servers, answers kept for their TTLs); BIMI is off (it would fetch
// logos over HTTPS).
import type { Readable } from 'node:stream';
import { authenticate } from 'mailauth';
import getDmarcRecord from 'mailauth/lib/dmarc/get-dmarc-record.js';
import { dmarcResult, type AuthFacts, type AuthResult, type DmarcPolicy } from '../policy/authentication.js';

/** What the auth checks need of a DNS resolver: SecureResolver (delivery/dnssec-resolver.ts) is one. */
export interface DnsQuery {
  query(name: string, type: 'TXT' | 'A' | 'AAAA' | 'MX' | 'PTR'): Promise<{ rcode: string; records: unknown[] }>;
}

type Resolve = (name: string, rrtype: string) => Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** dns.promises.resolve's contract, which mailauth expects: its error codes tell "no record" (void) from a failure. */
export function mailauthResolver(dns: DnsQuery): Resolve {
  const fail = (code: string, message: string): Error => Object.assign(new Error(message), { code });
  return async (name, rrtype) => {
    const type = rrtype.toUpperCase();
    if (type !== 'TXT' && type !== 'A' && type !== 'AAAA' && type !== 'MX' && type !== 'PTR') throw fail('ENOTIMP', `${type} lookups are not made`);
    let answer: { rcode: string; records: unknown[] };
    try {
      answer = await dns.query(name, type);
    } catch (e) {
      throw fail('ETIMEOUT', (e as Error).message); // no answer at all: temperror, never a void lookup
    }
    if (answer.rcode === 'NXDOMAIN') throw fail('ENOTFOUND', `${name}: no such domain`);
    if (answer.rcode !== 'NOERROR') throw fail('ESERVFAIL', `${name} ${type}: ${answer.rcode}`);
    if (!answer.records.length) throw fail('ENODATA', `${name}: no ${type} record`);
    if (type === 'TXT') return answer.records.map((t) => [t as string]);
    if (type === 'MX') return (answer.records as Array<{ preference: number; exchange: string }>).map((m) => ({ priority: m.preference, exchange: m.exchange }));
    return answer.records;
  };
}

export interface Authenticated {
  facts: AuthFacts;
  /** Received-SPF and Authentication-Results, folded, each ending in CRLF: prepended to the message. */
  headers: string;
  /** The Authentication-Results payload (authserv-id; results), for the ARC seal's ARC-Authentication-Results. */
  authResults: string;
  /** The chain validation the seal records (cv=). */
  cv: 'none' | 'pass' | 'fail';
}

export interface Transmission {
  ip: string;
  helo: string;
  /** MAIL FROM; '' for the null sender (SPF then checks the HELO name). */
  sender: string;
  authservId: string;
}

const RESULTS = new Set<AuthResult>(['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror', 'policy']);
const result = (v: unknown): AuthResult => (typeof v === 'string' && RESULTS.has(v.toLowerCase() as AuthResult) ? (v.toLowerCase() as AuthResult) : 'none');
const POLICIES: readonly DmarcPolicy[] = ['reject', 'quarantine', 'none'];
const policyOf = (v: unknown): DmarcPolicy | null => (typeof v === 'string' && (POLICIES as readonly string[]).includes(v.toLowerCase()) ? (v.toLowerCase() as DmarcPolicy) : null);

/** Runs SPF, DKIM, ARC and DMARC on one message (a stream of the bytes the client sent). */
export async function authenticateMessage(message: Readable | Buffer, t: Transmission, resolve: Resolve | undefined): Promise<Authenticated> {
  const r = await authenticate(message, {
    ip: t.ip,
    helo: t.helo,
    sender: t.sender,
    mta: t.authservId,
    disableBimi: true,
    ...(resolve ? { resolver: resolve } : {}),
  });
  // A (sub)domain's record says what applies to it; pct= is not in mailauth's result, only in the record.
  const dm = r.dmarc as (Record<string, any> & { status?: { result?: string } }) | false; // eslint-disable-line @typescript-eslint/no-explicit-any
  let unevaluable: AuthFacts['dmarc']['unevaluable'] = null;
  let extra = '';
  if (!dm) {
    const reason = (r as { dmarcSkipReason?: string }).dmarcSkipReason ?? 'no-author-domain';
    const from = ((r.dkim as { headerFrom?: string[] } | undefined)?.headerFrom ?? []).map((a) => a.split('@').pop()!.toLowerCase()).filter((d) => d && /\./.test(d));
    const policies: Array<{ domain: string; policy: DmarcPolicy }> = [];
    for (const domain of [...new Set(from)]) {
      const rec = await getDmarcRecord(domain, resolve).catch(() => false as const);
      const p = rec ? policyOf(rec.isOrgRecord && rec.sp ? rec.sp : rec.p) : null;
      if (p) policies.push({ domain, policy: p });
    }
    policies.sort((a, b) => POLICIES.indexOf(a.policy) - POLICIES.indexOf(b.policy));
    unevaluable = { reason, policies };
    extra = `;\r\n dmarc=permerror (${reason})${from.length ? ` header.from=${from.join(',')}` : ''}`;
  }
  const headers = (r.headers as string).replace(/\r\n$/, '') + extra + '\r\n';
  const ar = /(?:^|\r\n)Authentication-Results: ([\s\S]*)$/i.exec(headers);
  const arc = r.arc as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const chain = (arc?.chain ?? []) as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const newest = chain[chain.length - 1];
  const sealer = (newest?.['arc-seal']?.parsed?.d?.value ?? arc?.signature?.signingDomain ?? null) as string | null;
  const aar = (arc?.authenticationResults ?? {}) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const sawPass = [aar.dmarc?.result, aar.spf?.result, ...((aar.dkim ?? []) as Array<{ result?: string }>).map((d) => d.result)].some((x) => x === 'pass');
  const arcResult = result(arc?.status?.result);
  const spf = r.spf as Record<string, any> | false; // eslint-disable-line @typescript-eslint/no-explicit-any
  const found: Authenticated = {
    facts: {
      spf: { result: spf ? result(spf.status?.result) : 'none', domain: spf ? String(spf.domain ?? '') : '' },
      dkim: ((r.dkim as { results?: Array<Record<string, any>> })?.results ?? []) // eslint-disable-line @typescript-eslint/no-explicit-any
        .filter((s) => s.signingDomain)
        .map((s) => ({ result: result(s.status?.result), domain: String(s.signingDomain).toLowerCase(), selector: String(s.selector ?? '') })),
      arc: { result: arcResult, sealer: sealer ? sealer.toLowerCase() : null, sealerSawPass: sawPass },
      dmarc: dm
        ? { domain: String(dm.domain ?? '').toLowerCase() || null, result: result(dm.status?.result), policy: policyOf(dm.policy), pct: pctOf(dm.rr), passedBy: passedBy(dm.alignment), unevaluable: null }
        : { domain: null, result: 'permerror', policy: null, pct: 100, passedBy: { spf: false, dkim: false, unsignedBytes: 0 }, unevaluable },
    },
    headers,
    authResults: ar ? ar[1]!.replace(/\r\n$/, '') : `${t.authservId}; none`,
    cv: arcResult === 'pass' ? 'pass' : arcResult === 'fail' ? 'fail' : 'none',
  };
  // The header says the DMARC result the gateway stands by (policy/authentication.ts), for the
  // session and `explain` alike.
  const ours = dmarcResult(found.facts.dmarc);
  return ours === found.facts.dmarc.result ? found : withDmarcResult(found, ours, `l= leaves ${found.facts.dmarc.passedBy.unsignedBytes} body bytes unsigned`);
}

function passedBy(alignment: { spf?: { result?: unknown }; dkim?: { result?: unknown; underSized?: unknown } } | undefined): AuthFacts['dmarc']['passedBy'] {
  return { spf: !!alignment?.spf?.result, dkim: !!alignment?.dkim?.result, unsignedBytes: Number(alignment?.dkim?.underSized ?? 0) || 0 };
}

/**
 * The Authentication-Results with our own DMARC result where it differs from mailauth's (a pass
 * that rests on a signature covering part of the body): the header says what we decided on.
 */
function withDmarcResult(a: Authenticated, ours: AuthResult, comment: string): Authenticated {
  const rewrite = (text: string): string => text.replace(/\bdmarc=pass\b(?: \([^)]*\))?/, `dmarc=${ours} (${comment})`);
  return { ...a, headers: rewrite(a.headers), authResults: rewrite(a.authResults) };
}

function pctOf(rr: unknown): number {
  const m = typeof rr === 'string' ? /(?:^|;)\s*pct\s*=\s*(\d{1,3})\s*(?:;|$)/i.exec(rr) : null;
  return m ? Math.min(100, Number(m[1])) : 100;
}
