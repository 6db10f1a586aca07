// Recipient verification by callout (SPEC §3, recipientVerification: callout): before a
// recipient of an authoritative domain is accepted, the domain's outbound connector is asked
// whether it exists — connect with the connector's TLS demands, EHLO, MAIL FROM:<>,
// RCPT TO:<address>, QUIT — as Postfix's reject_unverified_recipient does. Answers are cached
// (positive 1 h before asking again, negative 10 min); concurrent questions about one address share one probe;
// at most 10 probes run at once.
//
// A probe that cannot get an answer (host down, TLS refused, 4xx) gives "unknown". What follows
// is decided by policy/verification.ts from the answer and the address's last positive answer,
// which this file keeps on disk beside the queue (one JSON line per positive answer), so that an
// outage that begins right after a restart still knows who was verified.
import fs from 'node:fs';
import path from 'node:path';
import { domainOf } from '../mail/address.js';
import { Limiter } from '../mail/limiter.js';
import type { OutboundConnector } from '../policy/types.js';
import { connectorHops } from './client.js';
import { connectorTlsRequirement } from './plan.js';
import { SmtpDialogue } from './dialogue.js';
import type { HopResolver, NextHop } from './resolve.js';
import { connectionTlsOptions, type ClientIdentity } from './tls-policy.js';

export type VerifyResult = 'valid' | 'invalid' | 'unknown';

export interface Verdict {
  result: VerifyResult;
  /** The last positive answer for this address through this connector (ms since epoch), or null. */
  lastValidAt: number | null;
  /** The next hop's reply to RCPT, or why there is none. */
  detail: string;
  cached: boolean;
}

export interface VerifierDeps {
  hostname: string;
  identity: ClientIdentity;
  resolver: HopResolver;
  readCa: (file: string) => string;
}

export interface VerifierOptions {
  positiveTtlMs: number;
  negativeTtlMs: number;
  /** "unknown" is remembered briefly, so an outage is not probed for every RCPT. */
  unknownTtlMs: number;
  maxEntries: number;
  concurrency: number;
  timeoutMs: number;
  /** Where positive answers are kept across restarts; none = in memory only. */
  positiveFile?: string;
}

const DEFAULTS: VerifierOptions = {
  positiveTtlMs: 3_600_000,
  negativeTtlMs: 600_000,
  unknownTtlMs: 60_000,
  maxEntries: 100_000,
  concurrency: 10,
  timeoutMs: 15_000,
};

/** Where the daemon keeps the positive answers: beside the queue. */
export function verifiedAddressesFile(queueDir: string): string {
  return path.join(queueDir, '.verify', 'verified.jsonl');
}

/** Positive answers by key, most recent last; appended to a file of JSON lines and read back at start. */
class PositiveAnswers {
  private readonly at = new Map<string, number>();
  private out: fs.WriteStream | null = null;

  constructor(
    private readonly file: string | undefined,
    private readonly max: number,
  ) {
    if (!file) return;
    let lines = 0;
    try {
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (!line) continue;
        lines++;
        try {
          const { k, t } = JSON.parse(line) as { k: unknown; t: unknown };
          if (typeof k === 'string' && typeof t === 'number') this.keep(k, t);
        } catch {
          /* a torn last line after a crash: skipped */
        }
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // Compacted at start when most lines are stale: one line per address then.
    if (lines > 2 * this.at.size + 1000) {
      const tmp = `${file}.tmp`;
      fs.writeFileSync(tmp, [...this.at].map(([k, t]) => JSON.stringify({ k, t }) + '\n').join(''), { mode: 0o600 });
      fs.renameSync(tmp, file);
    }
    this.out = fs.createWriteStream(file, { flags: 'a', mode: 0o600 });
    this.out.on('error', () => (this.out = null)); // then in memory only; answers are a cache, not mail
  }

  get(key: string): number | null {
    return this.at.get(key) ?? null;
  }

  set(key: string, t: number): void {
    this.keep(key, t);
    this.out?.write(JSON.stringify({ k: key, t }) + '\n');
  }

  private keep(key: string, t: number): void {
    this.at.delete(key);
    this.at.set(key, t);
    while (this.at.size > this.max) this.at.delete(this.at.keys().next().value!);
  }

  close(): void {
    this.out?.end();
    this.out = null;
  }
}

export class RecipientVerifier {
  private readonly cache = new Map<string, { result: VerifyResult; detail: string; until: number }>();
  private readonly positives: PositiveAnswers;
  private readonly inflight = new Map<string, Promise<Verdict>>();
  private readonly probes: Limiter;
  private readonly o: VerifierOptions;

  constructor(
    private deps: () => VerifierDeps,
    options: Partial<VerifierOptions> = {},
  ) {
    this.o = { ...DEFAULTS, ...options };
    this.probes = new Limiter(this.o.concurrency);
    this.positives = new PositiveAnswers(this.o.positiveFile, this.o.maxEntries);
  }

  close(): void {
    this.positives.close();
  }

  /** Forgets the cached answers (a new policy may route the domains elsewhere); positive answers stay as history. */
  clear(): void {
    this.cache.clear();
  }

  async verify(address: string, connector: OutboundConnector): Promise<Verdict> {
    const key = `${connector.name}\0${address.toLowerCase()}`;
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return { result: hit.result, detail: hit.detail, cached: true, lastValidAt: this.positives.get(key) };
    let p = this.inflight.get(key);
    if (!p) {
      p = this.probes.run(() => probeRecipient(address, connector, this.deps(), this.o.timeoutMs)).then((v) => {
        this.remember(key, v.result, v.detail);
        if (v.result === 'valid') this.positives.set(key, Date.now());
        return { ...v, lastValidAt: this.positives.get(key) };
      });
      this.inflight.set(key, p);
      void p.finally(() => this.inflight.delete(key));
    }
    return p;
  }

  private remember(key: string, result: VerifyResult, detail: string): void {
    const ttl = result === 'valid' ? this.o.positiveTtlMs : result === 'invalid' ? this.o.negativeTtlMs : this.o.unknownTtlMs;
    this.cache.delete(key);
    this.cache.set(key, { result, detail, until: Date.now() + ttl });
    // Bounded: a dictionary attack cannot grow it without end (oldest entries go first).
    while (this.cache.size > this.o.maxEntries) this.cache.delete(this.cache.keys().next().value!);
  }
}

/** Asks the connector's next hops, in order, until one gives a definite answer. */
export async function probeRecipient(address: string, connector: OutboundConnector, deps: VerifierDeps, timeoutMs: number): Promise<Omit<Verdict, 'lastValidAt'>> {
  const domain = domainOf(address);
  let hops: NextHop[];
  try {
    hops = await connectorHops(connector, domain, deps.resolver);
  } catch (e) {
    return { result: 'unknown', detail: `no next hop: ${(e as Error).message}`, cached: false };
  }
  const req = connectorTlsRequirement(connector, domain, deps.readCa);
  let last = 'no next hop';
  for (const hop of hops) {
    const t = connectionTlsOptions(req, deps.identity, hop.name !== hop.address ? hop.name : undefined);
    try {
      const reply = await rcptDialogue(hop, address, deps.hostname, t, timeoutMs);
      if (reply.startsWith('2')) return { result: 'valid', detail: reply, cached: false };
      if (reply.startsWith('5')) return { result: 'invalid', detail: reply, cached: false };
      last = `${hop.name}: ${reply}`;
    } catch (e) {
      last = `${hop.name}: ${(e as Error).message}`;
    }
  }
  return { result: 'unknown', detail: last, cached: false };
}

/** One probe session; resolves with the reply to RCPT TO, rejects when there is none. */
async function rcptDialogue(hop: NextHop, address: string, helo: string, t: ReturnType<typeof connectionTlsOptions>, timeoutMs: number): Promise<string> {
  const d = new SmtpDialogue(hop, timeoutMs);
  const timer = setTimeout(() => d.socket.destroy(new Error('timed out')), timeoutMs);
  try {
    await d.connected();
    const ask = async (line: string | null, want: string, what: string): Promise<string> => {
      const r = await d.ask(line);
      if (!r.last.startsWith(want)) throw new Error(`${what}: ${r.last}`);
      return r.lines.join('\n');
    };
    await ask(null, '220', 'greeting');
    const ehlo = await ask(`EHLO ${helo}`, '250', 'EHLO');
    const offered = /^250[ -]STARTTLS\b/im.test(ehlo);
    if (offered && (t.requireTLS || t.opportunisticTLS)) {
      await ask('STARTTLS', '220', 'STARTTLS');
      await d.starttls(t.tls);
      await ask(`EHLO ${helo}`, '250', 'EHLO after STARTTLS');
    } else if (t.requireTLS) {
      throw new Error('TLS required but STARTTLS not offered');
    }
    await ask('MAIL FROM:<>', '250', 'MAIL FROM');
    const rcpt = (await d.ask(`RCPT TO:<${address}>`)).last;
    if (rcpt === '(closed)') throw new Error('connection closed before the reply to RCPT');
    d.quit();
    return rcpt;
  } finally {
    clearTimeout(timer);
    setTimeout(() => d.destroy(), 1000).unref();
  }
}
