// Sending SMTP TLS reports (RFC 8460 §5): for each policy domain with recorded sessions, the
// `_smtp._tls.<domain>` record's rua URIs get the day's report — gzip JSON, as a mail
// (multipart/report, application/tlsrpt+gzip) through the gateway's own queue, or as an HTTPS
// POST. Report mail carries TLS-Required: No: it is exempt from the TLS checks it reports on.
// Once a day for the day before (a marker file keeps a day from being sent twice), or on demand
// (`connector-gateway tls-report send --now`: today so far).
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import type { LookupFunction } from 'node:net';
import { rfc5322Date } from '../mail/date.js';
import { buildReport, dayOf, parseTlsRptRecord, type TlsResultLog } from '../delivery/tls-results.js';
import type { Logger } from '../observe/log.js';
import type { Envelope, Spool } from './spool.js';

export interface TlsReportSenderDeps {
  results: TlsResultLog;
  spool: Spool;
  enqueue: (env: Envelope) => void;
  /** The gateway's hostname: the submitter, and the report mail's From and Message-ID. */
  hostname: () => string;
  txt: (name: string) => Promise<string[]>;
  lookup: LookupFunction;
  log: Logger;
}

export interface ReportOutcome {
  domain: string;
  rua: string;
  ok: boolean;
  detail: string;
}

const MAX_ANSWER = 64 * 1024;

export class TlsReportSender {
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly deps: TlsReportSenderDeps) {}

  /** Sends the reports of one day (whole, or until `end`); returns what happened per rua. */
  async send(day: string, end?: Date): Promise<ReportOutcome[]> {
    const results = await this.deps.results.read(day);
    const start = new Date(`${day}T00:00:00Z`);
    const stop = end ?? new Date(start.getTime() + 86_400_000 - 1000);
    const domains = [...new Set(results.map((r) => r.domain))].sort();
    const out: ReportOutcome[] = [];
    for (const domain of domains) {
      let record: ReturnType<typeof parseTlsRptRecord>;
      try {
        record = parseTlsRptRecord(await this.deps.txt(`_smtp._tls.${domain}`));
      } catch (e) {
        out.push({ domain, rua: '', ok: false, detail: `TXT _smtp._tls.${domain}: ${(e as Error).message}` });
        continue;
      }
      if (!record) continue; // the domain asks for no reports
      const hostname = this.deps.hostname();
      const reportId = `${day}.${domain}.${randomBytes(4).toString('hex')}@${hostname}`;
      const report = buildReport({ organization: hostname, contact: `postmaster@${hostname}`, reportId, start, end: stop, domain, sendingIp: '0.0.0.0', results });
      const gz = gzipSync(Buffer.from(JSON.stringify(report)));
      const fileName = `${hostname}!${domain}!${Math.floor(start.getTime() / 1000)}!${Math.floor(stop.getTime() / 1000)}.json.gz`;
      for (const rua of record.rua) {
        try {
          const detail = rua.toLowerCase().startsWith('mailto:') ? await this.mail(rua.slice(7), domain, reportId, fileName, gz) : await this.post(rua, gz);
          out.push({ domain, rua, ok: true, detail });
        } catch (e) {
          out.push({ domain, rua, ok: false, detail: (e as Error).message });
        }
      }
    }
    for (const o of out) this.deps.log[o.ok ? 'info' : 'warn']({ event: 'tls-report', day, ...o }, `TLS report for ${o.domain} to ${o.rua}: ${o.ok ? 'sent' : 'failed'}`);
    return out;
  }

  /** Once a day, shortly after midnight UTC, the day before (unless already sent). */
  start(): void {
    const next = (): number => {
      const now = Date.now();
      const midnight = Math.ceil(now / 86_400_000) * 86_400_000;
      return midnight + 5 * 60_000 - now;
    };
    const run = (): void => {
      const day = dayOf(new Date(Date.now() - 86_400_000));
      const marker = path.join(this.deps.results.dir, `${day}.sent`);
      if (!fs.existsSync(marker)) {
        void this.send(day).then(() => fs.writeFileSync(marker, new Date().toISOString()), (e: Error) => this.deps.log.error({ event: 'tls-report', day, err: e.message }, 'TLS reports failed'));
      }
      this.timer = setTimeout(run, next());
      this.timer.unref();
    };
    this.timer = setTimeout(run, next());
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  /** RFC 8460 §5.3: a multipart/report with the gzip JSON, queued like any message. */
  private async mail(to: string, domain: string, reportId: string, fileName: string, gz: Buffer): Promise<string> {
    const hostname = this.deps.hostname();
    const boundary = `tlsrpt-${randomBytes(8).toString('hex')}`;
    const text = [
      `From: TLS reports <postmaster@${hostname}>`,
      `To: <${to}>`,
      `Subject: Report Domain: ${domain} Submitter: ${hostname} Report-ID: <${reportId}>`,
      `Date: ${rfc5322Date()}`,
      `Message-ID: <${reportId}>`,
      `TLS-Report-Domain: ${domain}`,
      `TLS-Report-Submitter: ${hostname}`,
      'TLS-Required: No',
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=us-ascii',
      '',
      `This is an aggregate TLS report (RFC 8460) for ${domain} from ${hostname}.`,
      '',
      `--${boundary}`,
      `Content-Type: application/tlsrpt+gzip; name="${fileName}"`,
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment; filename="${fileName}"`,
      '',
      ...(gz.toString('base64').match(/.{1,76}/g) ?? []),
      '',
      `--${boundary}--`,
      '',
    ].join('\r\n');
    const w = await this.deps.spool.create();
    try {
      await w.write(Buffer.from(text));
      const env = await w.commit({
        receivedAt: new Date().toISOString(),
        sender: '', // reports are not to be bounced back and forth
        recipients: [{ address: to, status: 'pending', connector: null, attempts: 0 }],
        bodyType: '7bit',
        smtpUtf8: false,
        tlsRequiredNo: true,
        client: { ip: '127.0.0.1', helo: hostname, sessionId: 'tls-report', connector: null, tls: null },
      });
      this.deps.enqueue(env);
      return `queued as ${env.id}`;
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  /** RFC 8460 §5.4: POST application/tlsrpt+gzip; any 2xx is success. */
  private post(uri: string, gz: Buffer): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = https.request(uri, { method: 'POST', lookup: this.deps.lookup, timeout: 30_000, headers: { 'content-type': 'application/tlsrpt+gzip', 'content-length': gz.length } }, (res) => {
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER) req.destroy(new Error('answer too large'));
        });
        res.on('end', () => ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300 ? resolve(`HTTP ${res.statusCode}`) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end(gz);
    });
  }
}
