// `connector-gateway explain`: the same pure decisions the daemon makes, told to an operator.
import { parseHeaderBlock, type HeaderField } from '../mail/headers.js';
import fs from 'node:fs';
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
import { authenticationApplies, authVerdict, dmarcResult, QUARANTINE_FIELD } from '../policy/authentication.js';
import { signingPlan } from '../policy/signing.js';
import { domainOf, mailboxDomain } from '../mail/address.js';
import { authenticateMessage } from '../auth/verify.js';
import { authResolverFor } from '../smtp/edge-auth.js';
import type { Route } from '../policy/outbound.js';
import { configPath, loadOrExit, usageError } from './common.js';

export async function explain(args: string[]): Promise<void> {
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
      message: { type: 'string' },
      helo: { type: 'string' },
    },
  });
  if (!values.ip || values.from === undefined) throw usageError('explain needs --ip and --from (and usually --to)');
  if (!isIP(values.ip)) throw usageError(`explain --ip ${values.ip}: not an IP address`);
  const file = configPath(values.config);
  const policy = loadOrExit(file, { checkFiles: false });
  const certNames = values['cert-name']!;
  // --message FILE.eml (Exchange's Test-Message): its header fields join --header's, its size is the message's.
  let message: Buffer | null = null;
  if (values.message) {
    try {
      message = fs.readFileSync(values.message);
    } catch (e) {
      throw usageError(`explain --message ${values.message}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    message = Buffer.from(message.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1'); // a file saved with LF line ends
  }
  const headers = [...(message ? parseHeaderBlock(headBlock(message)) : []), ...parseHeaderArgs(values.header!)];
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
  const routes: Route[] = [];
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
      routes.push(route);
    }
    if (accepted.length) {
      const data = { sender: values.from, recipients: accepted, headers, size: values.size ?? (message ? String(message.length) : undefined), message, ip: values.ip, helo: values.helo ?? '' };
      ruleRefusal = await explainData(out, policy, a, data);
      if (!ruleRefusal) explainSigning(out, policy, a, headers, values.from, accepted, routes);
    }
    else if (values.to!.length) out.push(`no recipient accepted: DATA would be refused (${formatReply(replies.needRcpt())})`);
  }
  process.stdout.write(out.join('\n') + '\n');
  // 0: the message would be accepted (for at least one recipient); 3: it would be refused.
  process.exit(d.refusal || ruleRefusal || (values.to!.length > 0 && accepted.length === 0) ? 3 : 0);
}

interface DataFacts {
  sender: string;
  recipients: string[];
  headers: HeaderField[];
  size: string | undefined;
  message: Buffer | null;
  ip: string;
  helo: string;
}

/** End of DATA: the header firewall, sender authentication and the mail flow rules. Returns whether the message is refused. */
async function explainData(out: string[], policy: Policy, a: Attribution, m: DataFacts): Promise<boolean> {
  const { sender, recipients, headers } = m;
  const size = m.size === undefined ? 0 : parseSize(m.size);
  if (size === null) throw usageError(`--size ${m.size}: not a size (e.g. 12MB)`);
  out.push(`DATA (${size} bytes${headers.length ? `, headers: ${headers.map((h) => h.name).join(', ')}` : ''})`);
  if (await explainAuthentication(out, policy, a, m)) return true;
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

/** SPEC §11 inbound: which checks run, and with --message what they find and decide. Returns whether DMARC refuses the message. */
async function explainAuthentication(out: string[], policy: Policy, a: Attribution, m: DataFacts): Promise<boolean> {
  const auth = policy.gateway.authentication;
  if (!auth) {
    out.push('  sender authentication: not configured (gateway.authentication): no SPF, DKIM, ARC or DMARC check');
    return false;
  }
  if (!authenticationApplies(auth, a.connector?.connectorType ?? null)) {
    out.push(`  sender authentication: not checked (onPremises connector ${a.connector?.name}: our own servers)`);
    return false;
  }
  const mailFromDomain = m.sender ? domainOf(m.sender) : '';
  out.push(`  sender authentication: SPF of ${mailFromDomain || `the HELO name${m.helo ? ` ${m.helo}` : ''}`} for ${m.ip}, every DKIM signature, the ARC chain, DMARC of the header From (dmarc: ${auth.dmarc}${auth.arcTrustedSealers.length ? `; trusted ARC sealers: ${auth.arcTrustedSealers.join(', ')}` : ''})`);
  out.push(`  forged results: Authentication-Results and ARC-Authentication-Results claiming "${auth.authservId}" are removed`);
  if (!m.message) {
    out.push('  (give --message FILE.eml to run the checks on a message)');
    return false;
  }
  const found = await authenticateMessage(m.message, { ip: m.ip, helo: m.helo, sender: m.sender, authservId: auth.authservId }, authResolverFor(policy));
  const f = found.facts;
  out.push(`  spf=${f.spf.result}${f.spf.domain ? ` (${f.spf.domain})` : ''}`);
  for (const d of f.dkim) out.push(`  dkim=${d.result} (d=${d.domain} s=${d.selector})`);
  if (!f.dkim.length) out.push('  dkim=none (not signed)');
  out.push(`  arc=${f.arc.result}${f.arc.sealer ? ` (newest seal by ${f.arc.sealer}${f.arc.sealerSawPass ? ', who saw a pass' : ''})` : ''}`);
  const dm = dmarcResult(f.dmarc);
  out.push(`  dmarc=${dm}${f.dmarc.domain ? ` (header From ${f.dmarc.domain}, policy ${f.dmarc.policy ?? 'none'}${f.dmarc.pct < 100 ? `, pct=${f.dmarc.pct}` : ''})` : ''}${f.dmarc.unevaluable ? ` (${f.dmarc.unevaluable.reason})` : ''}${dm !== f.dmarc.result ? ` (a pass resting on a signature whose l= leaves ${f.dmarc.passedBy.unsignedBytes} body bytes unsigned)` : ''}`);
  for (const line of found.headers.replace(/\r\n$/, '').split('\r\n')) out.push(`  | ${line}`);
  const v = authVerdict(auth.dmarc, auth.arcTrustedSealers, f, 0); // pct: as if the message fell inside the percentage
  out.push(`  verdict: ${v.action} — ${v.why}`);
  if (v.action === 'quarantine') out.push(`  marked ${QUARANTINE_FIELD} (junk folder) toward onPremises connectors with cloudServicesMailEnabled`);
  if (v.action === 'reject') {
    out.push(`  reply: ${formatReply(v.reply)}`);
    return true;
  }
  return false;
}

/** SPEC §11 outbound: the DKIM keys and the ARC seal each accepted recipient's route gets. */
function explainSigning(out: string[], policy: Policy, a: Attribution, headers: HeaderField[], sender: string, recipients: string[], routes: Route[]): void {
  const fromField = [...headers].reverse().find((h) => h.name.toLowerCase() === 'from')?.value;
  const fromDomain = fromField ? mailboxDomain(fromField) : sender ? domainOf(sender) : null;
  const authenticated = !!policy.gateway.authentication && authenticationApplies(policy.gateway.authentication, a.connector?.connectorType ?? null);
  recipients.forEach((rcpt, i) => {
    const plan = signingPlan(policy, fromDomain, routes[i]!, authenticated);
    const dkim = plan.dkim.length ? `DKIM ${plan.dkim.map((c) => `${c.selector}._domainkey.${c.domainName}`).join(', ')}` : `no DKIM signature${fromDomain ? ` (no enabled dkimSigningConfigs for ${fromDomain}, or the route is onPremises)` : ''}`;
    out.push(`  signing for ${rcpt} (header From ${fromDomain ?? 'unknown'}): ${dkim}${plan.arcSeal ? `; ARC seal ${plan.arcSeal.selector}._domainkey.${plan.arcSeal.domain}` : ''}`);
  });
}

/** The header section of a message (up to and including the CRLF of its last field). */
function headBlock(message: Buffer): string {
  const text = message.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return end < 0 ? text : text.slice(0, end + 2);
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
