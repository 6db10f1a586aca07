// `connector-gateway validate CONNECTOR [--to ADDR]`: probe each next hop of an outbound
// connector the way delivery will (banner, STARTTLS, TLS version, chain, name), step by step,
// and optionally send a test message through the daemon's own delivery code.
import fs from 'node:fs';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import type { NextHop } from '../delivery/resolve.js';
import { checkName, domainToValidate } from '../delivery/tls-policy.js';
import { deliver, lookupPlan } from '../delivery/client.js';
import { SmtpDialogue } from '../delivery/dialogue.js';
import type { OutboundConnector, Policy } from '../policy/types.js';
import { newQueueId } from '../queue/spool.js';
import { Readable } from 'node:stream';
import { rfc5322Date } from '../mail/date.js';
import { domainOf } from '../mail/address.js';
import { contextTrustingRoots } from '../tls/context.js';
import { buildDeliveryDeps, type BuiltDeliveryDeps } from '../delivery/deps.js';
import { describePolicies, outboundPolicies } from '../delivery/plan.js';
import type { Route } from '../policy/outbound.js';
import { configPath, loadOrExit, usageError } from './common.js';

/** One step of a probe: whether its check passed, and whether the connector requires it (PASS, FAIL, or INFO for a check not required). */
type Step = { ok: boolean; what: string; detail: string; required: boolean };
const verdict = (s: Step): 'PASS' | 'FAIL' | 'INFO' => (s.ok ? 'PASS' : s.required ? 'FAIL' : 'INFO');

async function probe(hop: NextHop, c: OutboundConnector, policy: Policy, rcptDomain: string, trust: tls.SecureContext): Promise<Step[]> {
  const steps: Step[] = [];
  const tlsRequired = c.tlsSettings !== null;
  const d = new SmtpDialogue(hop, 15_000);
  d.raw.setTimeout(15_000, () => d.raw.destroy(new Error('timed out')));
  try {
    await d.connected();
    steps.push({ ok: true, what: 'connect', detail: `${hop.address}:${hop.port}`, required: true });
    const reply = async (line: string | null) => (await d.ask(line)).lines.join('\n');
    const banner = await reply(null);
    steps.push({ ok: banner.startsWith('220'), what: 'banner', detail: banner.split('\n')[0]!, required: true });
    const ehlo = await reply(`EHLO ${policy.gateway.hostname}`);
    const offered = /^250[ -]STARTTLS\b/im.test(ehlo);
    steps.push({ ok: offered, what: 'STARTTLS offered', detail: offered ? 'yes' : 'no', required: tlsRequired });
    if (!offered) return steps;
    const st = await reply('STARTTLS');
    if (!st.startsWith('220')) {
      steps.push({ ok: false, what: 'STARTTLS', detail: st, required: tlsRequired });
      return steps;
    }
    const secure = await d.starttls({ servername: hop.name !== hop.address ? hop.name : undefined, rejectUnauthorized: false, secureContext: trust, minVersion: 'TLSv1.2' });
    steps.push({ ok: true, what: 'TLS', detail: `${secure.getProtocol()} ${secure.getCipher()?.standardName ?? ''}`, required: tlsRequired });
    const chainNeeded = c.tlsSettings === 'certificateValidation' || c.tlsSettings === 'domainValidation';
    steps.push({
      ok: secure.authorized,
      what: 'certificate chain',
      detail: secure.authorized ? 'verified' : `not verified (${secure.authorizationError})`,
      required: chainNeeded,
    });
    if (c.tlsSettings === 'domainValidation') {
      const pattern = domainToValidate(c.tlsDomain, rcptDomain);
      const err = checkName(pattern, secure.getPeerCertificate());
      steps.push({ ok: !err, what: 'certificate name', detail: err ? err.message : `matches ${pattern.text}`, required: true });
    }
    d.quit();
  } catch (e) {
    steps.push({ ok: false, what: 'connection', detail: (e as Error).message, required: true });
  } finally {
    d.destroy();
  }
  return steps;
}

export async function validate(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string' }, to: { type: 'string' }, from: { type: 'string' } },
  });
  const name = positionals.join(' ');
  if (!name) throw usageError('validate needs the name of an outbound connector');
  const file = configPath(values.config);
  const policy = loadOrExit(file);
  const c = policy.outboundConnectors.find((x) => x.name.toLowerCase() === name.toLowerCase());
  if (!c) {
    process.stderr.write(`no outbound connector "${name}"; connectors: ${policy.outboundConnectors.map((x) => x.name).join(', ')}\n`);
    process.exit(1);
  }
  const exact = c.recipientDomains.find((d) => d.kind === 'exact');
  const rcptDomain = values.to ? domainOf(values.to) : exact?.kind === 'exact' ? exact.name : '';
  const deps = buildDeliveryDeps(policy);
  const resolver = deps.resolver;
  // The same trust as the daemon's deliveries: bundled roots plus the connector's CAs.
  const trust = contextTrustingRoots({ minVersion: 'TLSv1.2' }, c.tlsCertificateAuthorities ? [fs.readFileSync(c.tlsCertificateAuthorities, 'utf8')] : []);
  let hops: NextHop[] = [];
  const out: string[] = [`connector "${c.name}" (tlsSettings: ${c.tlsSettings ?? 'null (opportunistic)'})`];
  try {
    if (c.useMXRecord) {
      if (!rcptDomain) throw new Error('useMXRecord: give --to ADDR to know which domain to look up');
      hops = await resolver.domain(rcptDomain);
      out.push(...(await describeMxSecurity(c, rcptDomain, deps)));
    } else for (const h of c.smartHosts) hops.push(...(await resolver.smartHost(h)));
  } catch (e) {
    out.push(`FAIL resolve: ${(e as Error).message}`);
  }
  let failed = hops.length === 0;
  for (const hop of hops) {
    out.push(`next hop ${hop.name} [${hop.address}]:${hop.port}`);
    for (const s of await probe(hop, c, policy, rcptDomain, trust)) {
      out.push(`  ${verdict(s)} ${s.what}: ${s.detail}${verdict(s) === 'INFO' ? ` (not required by tlsSettings ${c.tlsSettings ?? 'null'})` : ''}`);
      if (verdict(s) === 'FAIL') failed = true;
    }
  }
  if (values.to) {
    const id = newQueueId();
    const from = values.from ?? `postmaster@${policy.gateway.hostname}`;
    const msg = `From: <${from}>\r\nTo: <${values.to}>\r\nSubject: connector-gateway validate ${c.name}\r\nDate: ${rfc5322Date()}\r\nMessage-ID: <${id}@${policy.gateway.hostname}>\r\n\r\nTest message sent by connector-gateway validate.\r\n`;
    const result = await deliver(
      {
        envelope: { id, sender: from, recipients: [], size: msg.length, bodyType: '7bit' },
        recipients: [values.to],
        route: { kind: 'connector', connector: c, matchedBy: 'validate' },
        content: () => Readable.from([Buffer.from(msg)]),
      },
      deps,
    );
    const o = result.get(values.to)!;
    out.push(`${o.status === 'delivered' ? 'PASS' : 'FAIL'} test message to ${values.to}: ${o.status} ${o.code} ${o.detail}`);
    if (o.status !== 'delivered') failed = true;
  }
  out.push(failed ? 'result: FAIL' : 'result: PASS');
  process.stdout.write(out.join('\n') + '\n');
  process.exit(failed ? 1 : 0);
}

/** For an MX connector: the outbound plan delivery would make now (SPEC §8), hop by hop. */
async function describeMxSecurity(c: OutboundConnector, domain: string, deps: BuiltDeliveryDeps): Promise<string[]> {
  const route: Route = { kind: 'connector', connector: c, matchedBy: 'validate' };
  const p = outboundPolicies(deps.policy, route, domain, { requireTls: false, tlsRequiredNo: false }, deps.readCa, !!deps.secureResolver);
  const out = describePolicies(p).map((l) => `security: ${l}`);
  const plan = await lookupPlan(p, route, deps);
  if (!plan.ok) return [...out, `plan: ${plan.outcome.status} ${plan.outcome.code} ${plan.outcome.detail}`];
  const tlsWords = `tlsSettings ${c.tlsSettings ?? 'null (opportunistic)'}`;
  for (const h of plan.hops) {
    const s = h.security;
    const what = s.kind === 'dane' ? `TLSA ${s.tlsa.map((t) => `${t.usage} ${t.selector} ${t.matchingType}`).join(', ')} must match` : s.kind === 'encrypt' ? 'TLSA unusable: TLS required, not authenticated' : s.kind === 'sts' ? `MTA-STS ${s.mode}: TLS with a certificate valid for ${h.name}` : p.dane ? `no secure TLSA: ${tlsWords}` : tlsWords;
    out.push(`  ${h.name} [${h.address}]: ${what}`);
  }
  return out;
}
