// `connector-gateway explain`: the same pure decisions the daemon makes, told to an operator.
import type { HeaderField } from '../mail/headers.js';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { isIP } from 'node:net';
import { evaluateRecipient, evaluateSender, type Attribution } from '../policy/inbound.js';
import { evaluateRules } from '../policy/rules.js';
import { isExchangeTrustedHeader, keepExchangeHeadersFrom } from '../policy/headers.js';
import { PUBLIC_ROOTS, type Policy, type TransportRule } from '../policy/types.js';
import { parseSize } from '../config/units.js';
import { describePolicies, outboundPolicies } from '../delivery/plan.js';
import { formatReply, replies } from '../policy/replies.js';
import { tlsFlags } from '../policy/envelope.js';
import { applyOrganizationRules } from '../policy/organization.js';
import { describeCallout } from '../policy/verification.js';
import { configPath, loadOrExit, usageError } from './common.js';

export function explain(args: string[]): void {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      ip: { type: 'string' },
      'cert-name': { type: 'string', multiple: true, default: [] },
      'cert-ca': { type: 'string', multiple: true, default: [] },
      tls: { type: 'boolean', default: false },
      from: { type: 'string' },
      to: { type: 'string', multiple: true, default: [] },
      header: { type: 'string', multiple: true, default: [] },
      size: { type: 'string' },
      requiretls: { type: 'boolean', default: false },
    },
  });
  if (!values.ip || values.from === undefined) throw usageError('explain needs --ip and --from (and usually --to)');
  if (!isIP(values.ip)) throw usageError(`explain --ip ${values.ip}: not an IP address`);
  const file = configPath(values.config);
  const policy = loadOrExit(file, { checkFiles: false });
  const certNames = values['cert-name']!;
  const headers = parseHeaderArgs(values.header!);
  // RFC 8689 as the session would queue it: REQUIRETLS on MAIL FROM, or the header TLS-Required: No.
  const flags = tlsFlags(values.requiretls!, headers);
  const envelopeTls = { requireTls: !!flags.requireTls, tlsRequiredNo: !!flags.tlsRequiredNo };
  const tls = values.tls || certNames.length > 0;
  const out: string[] = [];
  // Which anchor vouched for the certificate: a CA file of the policy (--cert-ca FILE), or a public root.
  const certAnchors = values['cert-ca']!.length ? values['cert-ca']!.map((f) => (f === 'public' ? PUBLIC_ROOTS : path.resolve(f))) : [PUBLIC_ROOTS];
  out.push(`session: ip ${values.ip}, ${tls ? 'TLS' : 'no TLS'}${certNames.length ? `, verified certificate names: ${certNames.join(', ')} (issued under ${certAnchors.join(', ')})` : ''}`);
  const senderFacts = { ip: values.ip, tls, certNames, certAnchors, sender: values.from };
  const d = applyOrganizationRules(policy, senderFacts, evaluateSender(policy.inboundConnectors, senderFacts));
  out.push(`MAIL FROM:<${values.from}>`);
  for (const t of d.trace) out.push(`  ${t}`);
  const a = d.attribution;
  out.push(`  inbound connector: ${a.connector ? `${a.connector.name} (${a.connector.connectorType}, by ${a.identifiedBy}: ${a.matched})` : 'none'}${a.mayRelay ? ', may relay to any domain' : ''}`);
  for (const au of d.audits) out.push(`  audit: connector ${au.connector} would answer ${formatReply(au.reply)}`);
  const accepted: string[] = [];
  let ruleRefusal = false;
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
      // The outbound plan's first step (delivery/plan.ts): what may secure this delivery, before DNS.
      const plan = outboundPolicies(policy, route, rd.domain, envelopeTls, () => '');
      const [first, ...more] = describePolicies(plan);
      out.push(`  security: ${first}`);
      for (const line of more) out.push(`  ${line}`);
      if (rd.verifyWith && rd.accepted) out.push(`  recipient verification: ${describeCallout(rd.accepted, rd.verifyWith.name)}`);
      out.push('  reply: 250 Accepted');
      accepted.push(to);
    }
    if (accepted.length) ruleRefusal = explainData(out, policy, a, values.from, accepted, headers, values.size);
    else if (values.to!.length) out.push(`no recipient accepted: DATA would be refused (${formatReply(replies.needRcpt())})`);
  }
  process.stdout.write(out.join('\n') + '\n');
  // 0: the message would be accepted (for at least one recipient); 3: it would be refused.
  process.exit(d.refusal || ruleRefusal || (values.to!.length > 0 && accepted.length === 0) ? 3 : 0);
}

/** End of DATA: the header firewall and the mail flow rules. Returns whether a rule refuses the message. */
function explainData(out: string[], policy: Policy, a: Attribution, sender: string, recipients: string[], headers: HeaderField[], sizeArg: string | undefined): boolean {
  const size = sizeArg === undefined ? 0 : parseSize(sizeArg);
  if (size === null) throw usageError(`--size ${sizeArg}: not a size (e.g. 12MB)`);
  out.push(`DATA (${size} bytes${headers.length ? `, headers: ${headers.map((h) => h.name).join(', ')}` : ''})`);
  const keep = keepExchangeHeadersFrom(a);
  out.push(`  header firewall: X-MS-Exchange-Organization-*, -CrossPremises-*, -Forest-* from this session are ${keep ? 'kept (onPremises connector with cloudServicesMailEnabled)' : 'removed'}`);
  const kept = keep ? headers : headers.filter((h) => !isExchangeTrustedHeader(h.name));
  const r = evaluateRules(policy, { connector: a.connector?.name ?? null, sender, recipients, headers: kept, size });
  if (!policy.transportRules.length) out.push('  mail flow rules: none in the policy');
  else if (!r.fired.length) out.push('  mail flow rules: none applies');
  for (const f of r.fired) {
    const rule = policy.transportRules.find((x) => x.name === f.rule)!;
    const acts = describeActions(rule);
    out.push(`  rule "${f.rule}" (${f.mode}${f.mode === 'audit' ? ': logged, not done' : ''}) applies to ${f.recipients.join(', ')}: ${acts || 'no action'}`);
  }
  for (const [rcpt, route] of r.routes) out.push(`  ${rcpt}: routed by rule "${route.rule}" to outbound connector ${route.connector}`);
  if (r.reject) {
    out.push(`  reply: ${formatReply(r.reject.reply)} (rule "${r.reject.rule}")`);
    return true;
  }
  out.push('  reply: 250 2.6.0 Queued');
  return false;
}

function parseHeaderArgs(args: string[]): HeaderField[] {
  return args.map((h) => {
    const colon = h.indexOf(':');
    if (colon <= 0) throw usageError(`--header "${h}": write "Name: value"`);
    return { name: h.slice(0, colon).trim(), value: h.slice(colon + 1).trim() };
  });
}

function describeActions(rule: TransportRule): string {
  const a = rule.actions;
  const parts: string[] = [];
  if (a.reject) parts.push(`reject ${a.reject.code} ${a.reject.enhanced} ${a.reject.text}`);
  if (a.routeMessageOutboundConnector) parts.push(`route to ${a.routeMessageOutboundConnector}`);
  if (a.removeHeaders.length) parts.push(`remove headers ${a.removeHeaders.join(', ')}`);
  if (a.setHeaders.length) parts.push(`set headers ${a.setHeaders.map(([n, v]) => `${n}: ${v}`).join(', ')}`);
  if (a.stopRuleProcessing) parts.push('stop processing more rules');
  return parts.join('; ');
}
