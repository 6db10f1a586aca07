// SMTP TLS reporting (RFC 8460). Each MX session under a policy (DANE's TLSA, or MTA-STS) is
// recorded — success, or a failure with its RFC 8460 result type — in a log of JSON lines, one
// file a day, beside the queue. Reports are built from that log (PURE: buildReport) and sent to
// each `rua` of the domain's `_smtp._tls` record (queue/tls-report-sender.ts does the sending).
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { HopFailureKind } from './status.js';

export type PolicyType = 'tlsa' | 'sts';

export type ResultType =
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | 'tlsa-invalid'
  | 'dnssec-invalid';

/** One TLS negotiation with an MX host under a policy. */
export interface SessionResult {
  at: string; // ISO time
  domain: string; // the policy domain (the recipient domain)
  policyType: PolicyType;
  /** The policy as RFC 8460 §4.3 writes it: TLSA records, or the MTA-STS policy's lines. */
  policyString: string[];
  mxHost: string;
  receivingIp: string;
  result: 'success' | ResultType;
}

/** The RFC 8460 result type of a hop failure, or null when it is not a TLS negotiation result (refused, timed out…). */
export function resultTypeOf(kind: HopFailureKind): ResultType | null {
  switch (kind) {
    case 'starttls-required':
      return 'starttls-not-supported';
    case 'tlsa-invalid':
    case 'dnssec-invalid':
    case 'certificate-expired':
    case 'certificate-host-mismatch':
      return kind;
    case 'certificate':
      return 'certificate-not-trusted';
    default:
      return null;
  }
}

/** `_smtp._tls` TXT: one "v=TLSRPTv1" record; its rua is a comma-separated list of mailto: and https: URIs. */
export function parseTlsRptRecord(txt: readonly string[]): { rua: string[] } | null {
  const recs = txt.map((t) => t.trim()).filter((t) => /^v=TLSRPTv1\s*(;|$)/.test(t));
  if (recs.length !== 1) return null;
  const rua = /(?:^|;)\s*rua=([^;]*)/.exec(recs[0]!)?.[1];
  if (!rua) return null;
  const uris = rua
    .split(',')
    .map((u) => u.trim())
    .filter((u) => /^mailto:[^@\s]+@[^@\s]+$/i.test(u) || /^https:\/\/\S+$/i.test(u));
  return uris.length ? { rua: uris } : null;
}

export interface ReportInput {
  organization: string;
  contact: string;
  reportId: string;
  start: Date;
  end: Date;
  domain: string;
  sendingIp: string;
  results: readonly SessionResult[];
}

/** The RFC 8460 §4.4 JSON report for one policy domain. */
export function buildReport(r: ReportInput): object {
  const byPolicy = new Map<string, SessionResult[]>();
  for (const s of r.results) {
    if (s.domain !== r.domain) continue;
    const key = `${s.policyType}\n${s.policyString.join('\n')}`;
    byPolicy.set(key, [...(byPolicy.get(key) ?? []), s]);
  }
  return {
    'organization-name': r.organization,
    'date-range': { 'start-datetime': r.start.toISOString().replace(/\.\d{3}Z$/, 'Z'), 'end-datetime': r.end.toISOString().replace(/\.\d{3}Z$/, 'Z') },
    'contact-info': r.contact,
    'report-id': r.reportId,
    policies: [...byPolicy.values()].map((sessions) => {
      const first = sessions[0]!;
      const failures = new Map<string, { result: ResultType; mx: string; ip: string; count: number }>();
      for (const s of sessions) {
        if (s.result === 'success') continue;
        const k = `${s.result}|${s.mxHost}|${s.receivingIp}`;
        const f = failures.get(k) ?? { result: s.result, mx: s.mxHost, ip: s.receivingIp, count: 0 };
        f.count++;
        failures.set(k, f);
      }
      const failed = [...failures.values()].reduce((n, f) => n + f.count, 0);
      return {
        policy: {
          'policy-type': first.policyType,
          'policy-string': first.policyString,
          'policy-domain': r.domain,
          'mx-host': [...new Set(sessions.map((s) => s.mxHost))],
        },
        summary: { 'total-successful-session-count': sessions.length - failed, 'total-failure-session-count': failed },
        'failure-details': [...failures.values()].map((f) => ({
          'result-type': f.result,
          'sending-mta-ip': r.sendingIp,
          'receiving-mx-hostname': f.mx,
          'receiving-ip': f.ip,
          'failed-session-count': f.count,
        })),
      };
    }),
  };
}

/** The day (UTC) a time falls on, as the log's file name. */
export const dayOf = (d: Date): string => d.toISOString().slice(0, 10);

/** The results log: one JSON line a session, one file a day, in `dir` (beside the queue). */
export class TlsResultLog {
  private pending: string[] = [];
  private flushing: Promise<void> | null = null;
  constructor(readonly dir: string) {}

  record(r: SessionResult): void {
    this.pending.push(JSON.stringify(r));
    this.flushing ??= this.flush();
  }

  private async flush(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    while (this.pending.length) {
      const lines = this.pending.splice(0);
      const byDay = new Map<string, string[]>();
      for (const l of lines) {
        const day = (JSON.parse(l) as SessionResult).at.slice(0, 10);
        byDay.set(day, [...(byDay.get(day) ?? []), l]);
      }
      for (const [day, ls] of byDay) await fsp.appendFile(path.join(this.dir, `${day}.jsonl`), ls.join('\n') + '\n');
    }
    this.flushing = null;
  }

  /** Waits until what was recorded is written. */
  async settled(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  async read(day: string): Promise<SessionResult[]> {
    await this.settled();
    try {
      const text = await fsp.readFile(path.join(this.dir, `${day}.jsonl`), 'utf8');
      return text
        .split('\n')
        .filter(Boolean)
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as SessionResult];
          } catch {
            return []; // a line cut by a crash
          }
        });
    } catch {
      return [];
    }
  }
}

/** The results log's directory: beside the queue (inside it, as writable and persistent). */
export function tlsResultDir(queueDir: string): string {
  return path.join(queueDir, '.tlsrpt');
}
