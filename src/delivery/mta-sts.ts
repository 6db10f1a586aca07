// MTA-STS (RFC 8461) for MX delivery where DANE does not apply. Kept apart:
//   parseStsRecord, parseStsPolicy, mxAllowed — PURE: the TXT record, the policy file, the
//                 MX patterns (RFC 8461 §3.1, §3.2, §4.1);
//   fetchStsPolicy — I/O: https://mta-sts.<domain>/.well-known/mta-sts.txt, certificate checked
//                 against the system roots, no redirects, text/plain, at most 64 KB, its host's
//                 address looked up through gateway.dns.servers;
//   StsPolicies  — the cache: in memory and on disk beside the queue (one JSON file a domain),
//                 used for max_age, kept over restarts and HTTPS outages, refetched when the TXT
//                 id changes (RFC 8461 §5.1).
// Written here rather than taken from mailauth: its fetch reads a body of any size, and the
// package would add a second nodemailer; the parsing is a few lines RFC 8461 fixes exactly.
import fsp from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { LookupFunction } from 'node:net';

export interface StsPolicy {
  mode: 'enforce' | 'testing' | 'none';
  mx: string[]; // lower-case patterns: "mx.example.com" or "*.example.com"
  maxAge: number; // seconds
}

export interface CachedPolicy {
  domain: string;
  id: string;
  policy: StsPolicy;
  fetchedAt: string;
  expiresAt: string;
}

/** The `_mta-sts` TXT record: exactly one "v=STSv1" record with an id (1–32 letters and digits). */
export function parseStsRecord(txt: readonly string[]): { id: string } | { error: string } | null {
  const sts = txt.map((t) => t.trim()).filter((t) => /^v=STSv1\s*(;|$)/.test(t));
  if (!sts.length) return null;
  if (sts.length > 1) return { error: 'more than one STSv1 TXT record' };
  const fields = new Map(
    sts[0]!
      .split(';')
      .map((f) => f.trim())
      .filter(Boolean)
      .map((f) => [f.slice(0, f.indexOf('=')).trim(), f.slice(f.indexOf('=') + 1).trim()] as const),
  );
  const id = fields.get('id');
  if (!id || !/^[A-Za-z0-9]{1,32}$/.test(id)) return { error: `the TXT record has no valid id (${id ?? 'none'})` };
  return { id };
}

const MAX_AGE_LIMIT = 31_557_600;

/** The policy file (RFC 8461 §3.2): version, mode, max_age, mx lines; CRLF or LF. */
export function parseStsPolicy(text: string): StsPolicy | { error: string } {
  const fields: Array<[string, string]> = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return { error: `not a "key: value" line: ${line.slice(0, 80)}` };
    fields.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  const one = (k: string): string | undefined => fields.find(([f]) => f === k)?.[1];
  if (one('version') !== 'STSv1') return { error: `version is ${one('version') ?? 'missing'}, not STSv1` };
  const mode = one('mode');
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return { error: `mode is ${mode ?? 'missing'}` };
  const age = one('max_age');
  if (!age || !/^\d{1,10}$/.test(age) || Number(age) > MAX_AGE_LIMIT) return { error: `max_age is ${age ?? 'missing'}` };
  const mx = fields.filter(([f]) => f === 'mx').map(([, v]) => v.toLowerCase().replace(/\.$/, ''));
  if (mode !== 'none' && !mx.length) return { error: 'no mx line' };
  if (mx.some((m) => !/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(m))) return { error: `an mx pattern is not a host name: ${mx.join(', ')}` };
  return { mode, mx, maxAge: Number(age) };
}

/** RFC 8461 §4.1: an MX host matches a pattern exactly, or "*.example.com" by one left-most label. */
export function mxAllowed(policy: StsPolicy, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return policy.mx.some((p) => (p.startsWith('*.') ? h.endsWith(p.slice(1)) && !h.slice(0, -p.length + 1).includes('.') : p === h));
}

export const MAX_POLICY_BYTES = 64 * 1024;

/** Fetches a domain's policy; resolves with the text, rejects with the reason (never follows a redirect). */
export function fetchStsPolicy(domain: string, lookup: LookupFunction, timeoutMs = 10_000): Promise<string> {
  const host = `mta-sts.${domain}`;
  return new Promise((resolve, reject) => {
    const req = https.get({ host, servername: host, path: '/.well-known/mta-sts.txt', lookup, timeout: timeoutMs, rejectUnauthorized: true, headers: { 'user-agent': 'connector-gateway' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`HTTP ${res.statusCode} from https://${host}/.well-known/mta-sts.txt`));
      }
      if (!/^text\/plain\b/i.test(res.headers['content-type'] ?? '')) {
        res.resume();
        return reject(new Error(`content-type ${res.headers['content-type'] ?? 'missing'}, not text/plain`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_POLICY_BYTES) {
          req.destroy(new Error(`the policy is larger than ${MAX_POLICY_BYTES} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from https://${host} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export interface StsLookup {
  /** The TXT records of a name ([] when it has none); rejects when DNS fails. */
  txt: (name: string) => Promise<string[]>;
  /** For the HTTPS connection to mta-sts.<domain>. */
  lookup: LookupFunction;
}

export type StsResult = { policy: StsPolicy; id: string; source: 'fetched' | 'cached' } | { policy: null; why: string };

export type StsEvent = { event: 'mta-sts'; domain: string; result: 'fetched' | 'refetch-failed' | 'invalid-record' | 'invalid-policy' | 'fetch-failed'; detail?: string; id?: string; mode?: string };

/** The cache of policies (memory in front of one file a domain in `dir`). */
export class StsPolicies {
  private memory = new Map<string, CachedPolicy | null>();

  constructor(
    private readonly dir: string,
    private readonly dns: StsLookup,
    private readonly report: (e: StsEvent) => void = () => {},
    private readonly fetch: (domain: string, lookup: LookupFunction) => Promise<string> = fetchStsPolicy,
  ) {}

  private file(domain: string): string {
    return path.join(this.dir, `${domain.replace(/[^a-z0-9.-]/gi, '_')}.json`);
  }

  private async cached(domain: string, now: number): Promise<CachedPolicy | null> {
    let c = this.memory.get(domain);
    if (c === undefined) {
      try {
        c = JSON.parse(await fsp.readFile(this.file(domain), 'utf8')) as CachedPolicy;
      } catch {
        c = null;
      }
      this.memory.set(domain, c);
    }
    return c && Date.parse(c.expiresAt) > now ? c : null;
  }

  private async store(c: CachedPolicy): Promise<void> {
    this.memory.set(c.domain, c);
    await fsp.mkdir(this.dir, { recursive: true });
    const tmp = `${this.file(c.domain)}.${randomBytes(3).toString('hex')}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(c));
    await fsp.rename(tmp, this.file(c.domain));
  }

  /** The policy in force for a domain now (RFC 8461 §5.1), or why there is none. */
  async forDomain(domain: string, now = Date.now()): Promise<StsResult> {
    const cached = await this.cached(domain, now);
    // When anything fails, a cached policy within its max_age stays in force (RFC 8461 §5.1).
    const orCached = (why: string): StsResult => (cached ? { policy: cached.policy, id: cached.id, source: 'cached' } : { policy: null, why });
    let record: ReturnType<typeof parseStsRecord>;
    try {
      record = parseStsRecord(await this.dns.txt(`_mta-sts.${domain}`));
    } catch (e) {
      return orCached(`TXT _mta-sts.${domain}: ${(e as Error).message}`);
    }
    if (record && 'error' in record) this.report({ event: 'mta-sts', domain, result: 'invalid-record', detail: record.error });
    if (!record || 'error' in record) {
      return orCached(record ? record.error : 'no MTA-STS record');
    }
    if (cached && cached.id === record.id) return { policy: cached.policy, id: cached.id, source: 'cached' };
    let text: string;
    try {
      text = await this.fetch(domain, this.dns.lookup);
    } catch (e) {
      this.report({ event: 'mta-sts', domain, result: cached ? 'refetch-failed' : 'fetch-failed', detail: (e as Error).message, id: record.id });
      return orCached(`policy fetch failed: ${(e as Error).message}`);
    }
    const policy = parseStsPolicy(text);
    if ('error' in policy) {
      this.report({ event: 'mta-sts', domain, result: 'invalid-policy', detail: policy.error, id: record.id });
      return orCached(`invalid policy: ${policy.error}`);
    }
    await this.store({ domain, id: record.id, policy, fetchedAt: new Date(now).toISOString(), expiresAt: new Date(now + policy.maxAge * 1000).toISOString() });
    this.report({ event: 'mta-sts', domain, result: 'fetched', id: record.id, mode: policy.mode });
    return { policy, id: record.id, source: 'fetched' };
  }
}

/** The cache directory beside the queue (inside it, so it is as writable and as persistent). */
export function stsCacheDir(queueDir: string): string {
  return path.join(queueDir, '.mta-sts');
}
