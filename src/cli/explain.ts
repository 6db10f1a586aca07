// `connector-gateway explain`: the same pure decisions the daemon makes, told to an operator.
import { parseArgs } from 'node:util';
import { evaluateRecipient, evaluateSender } from '../policy/inbound.js';
import { formatReply } from '../policy/replies.js';
import { configPath, loadOrExit, usageError } from './common.js';

export function explain(args: string[]): void {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      ip: { type: 'string' },
      'cert-name': { type: 'string', multiple: true, default: [] },
      tls: { type: 'boolean', default: false },
      from: { type: 'string' },
      to: { type: 'string', multiple: true, default: [] },
    },
  });
  if (!values.ip || values.from === undefined) throw usageError('explain needs --ip and --from (and usually --to)');
  const file = configPath(values.config);
  const policy = loadOrExit(file, { checkFiles: false });
  const certNames = values['cert-name']!;
  const tls = values.tls || certNames.length > 0;
  const out: string[] = [];
  out.push(`session: ip ${values.ip}, ${tls ? 'TLS' : 'no TLS'}${certNames.length ? `, verified certificate names: ${certNames.join(', ')}` : ''}`);
  const d = evaluateSender(policy.inboundConnectors, { ip: values.ip, tls, certNames, sender: values.from });
  out.push(`MAIL FROM:<${values.from}>`);
  for (const t of d.trace) out.push(`  ${t}`);
  const a = d.attribution;
  out.push(`  inbound connector: ${a.connector ? `${a.connector.name} (${a.connector.connectorType}, by ${a.identifiedBy}: ${a.matched})` : 'none'}${a.mayRelay ? ', may relay to any domain' : ''}`);
  for (const au of d.audits) out.push(`  audit: connector ${au.connector} would answer ${formatReply(au.reply)}`);
  if (d.refusal) {
    out.push(`  reply: ${formatReply(d.refusal.reply)}`);
  } else {
    out.push('  reply: 250 Accepted');
    for (const to of values.to!) {
      const rd = evaluateRecipient(policy, a, to);
      out.push(`RCPT TO:<${to}>`);
      if (rd.refusal) {
        out.push(`  reply: ${formatReply(rd.refusal.reply)}`);
        continue;
      }
      out.push(`  accepted domain: ${rd.accepted ? `${rd.accepted.pattern.text} (${rd.accepted.domainType})` : 'no (relay)'}`);
      const route = rd.route;
      if (route.kind === 'connector') {
        const c = route.connector;
        const hops = c.useMXRecord ? `MX of ${rd.domain}` : c.smartHosts.map((h) => h.text).join(', ');
        out.push(`  outbound connector: ${c.name} (matched ${route.matchedBy}), next hops: ${hops}, tlsSettings: ${c.tlsSettings ?? 'null (opportunistic)'}`);
      } else {
        out.push(`  outbound: no connector; MX lookup of ${rd.domain}, opportunistic TLS`);
      }
      if (rd.verifyWith) out.push(`  recipient verification: callout to the next hops of ${rd.verifyWith.name}; 550 5.4.1 if they refuse the address (explain does not call out)`);
      out.push('  reply: 250 Accepted');
    }
  }
  process.stdout.write(out.join('\n') + '\n');
  process.exit(d.refusal ? 3 : 0);
}
