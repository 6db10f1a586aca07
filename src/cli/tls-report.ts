// `connector-gateway tls-report send [--now]`: RFC 8460 reports now — today's so far with --now,
// else yesterday's — through the running daemon (its queue sends the report mail). Without a
// daemon the reports are prepared here: HTTPS ones are posted, mail ones wait in the queue for
// the gateway's next start.
import { parseArgs } from 'node:util';
import { askDaemon } from '../queue/control.js';
import { Spool } from '../queue/spool.js';
import { TlsReportSender } from '../queue/tls-report-sender.js';
import { dayOf, TlsResultLog, tlsResultDir } from '../delivery/tls-results.js';
import { buildDeliveryDeps } from '../delivery/deps.js';
import { createLogger } from '../observe/log.js';
import { configPath, fail, loadOrExit, usageError } from './common.js';

export async function tlsReport(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string' }, now: { type: 'boolean', default: false } } });
  if (positionals[0] !== 'send' || positionals.length > 1) throw usageError('tls-report send [--now]');
  const policy = loadOrExit(configPath(values.config), { checkFiles: false });
  if (!policy.gateway.outbound.tlsReporting) fail('TLS reporting is off (gateway.outbound.tlsReporting: false)', 1);
  const spool = new Spool(policy.gateway.queue.directory);
  const reply = await askDaemon(spool.dir, { op: 'tls-report', now: values.now! });
  let lines: string[];
  if (reply) {
    if (!reply.ok) fail(reply.error, 1);
    lines = reply.lines ?? [];
  } else {
    const { resolver } = buildDeliveryDeps(policy, {}, { identity: false });
    const reporter = new TlsReportSender({
      results: new TlsResultLog(tlsResultDir(spool.dir)),
      spool,
      enqueue: () => {}, // the gateway picks the report mail up at its next start
      hostname: () => policy.gateway.hostname,
      txt: (name) => resolver.txt(name),
      lookup: resolver.lookup,
      log: createLogger('silent'),
    });
    const day = values.now ? dayOf(new Date()) : dayOf(new Date(Date.now() - 86_400_000));
    lines = (await reporter.send(day, values.now ? new Date() : undefined)).map((o) => `${o.ok ? 'sent' : 'FAILED'} ${o.domain} → ${o.rua}: ${o.detail}`);
    lines.push('(no gateway is running on this queue: report mail waits in the queue for its next start)');
  }
  process.stdout.write(lines.length ? lines.join('\n') + '\n' : 'no TLS report to send: no session under DANE or MTA-STS to a domain that asks for reports\n');
  if (lines.some((l) => l.startsWith('FAILED'))) process.exit(1);
}
