// Mail flow rules, rule-scoped connectors and the Exchange header firewall (SPEC §9, §3) against
// a running gateway, with swaks and nodemailer as clients and real smtp-server sinks.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { makePki, type TestPki } from '../helpers/pki.js';
import { runCli, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { swaks, dataReply } from '../helpers/swaks.js';
import { until } from '../helpers/wait.js';

const ONPREM_CLOUD = '127.0.0.20'; // onPremises, cloudServicesMailEnabled
const ONPREM_PLAIN = '127.0.0.21'; // onPremises without it
const PARTNER = '127.0.0.22';

let dir: string;
let pki: TestPki;
let gw: RunningGateway;
let file: string;
let onprem: Sink;
let archive: Sink;
let partner: Sink;
let policy: Record<string, unknown>;

const hop = (s: Sink) => `[127.0.0.1]:${s.port}`;
const SCL = 'X-MS-Exchange-Organization-SCL: -1';

function send(from: string, source: string, to: string[], headers: Record<string, string> = {}, text = 'hello'): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: gw.port, localAddress: source, tls: { rejectUnauthorized: false } } as never);
  return t.sendMail({ from, to, subject: 'rules', text, headers }).then((i) => i.response.split(' ').pop()!);
}
const sunk = (s: Sink, rcpt: string) => s.messages.filter((m) => m.to.includes(rcpt));

beforeAll(async () => {
  dir = tmpDir('rules');
  pki = makePki(path.join(dir, 'pki'));
  onprem = await startSink();
  archive = await startSink();
  partner = await startSink();
  policy = {
    gateway: testGateway(dir, pki, { queue: { directory: path.join(dir, 'queue'), retryIntervals: ['1h'] } }),
    acceptedDomains: [{ domain: 'contoso.com' }],
    inboundConnectors: [
      { name: 'OnPrem cloud', connectorType: 'onPremises', senderIPAddresses: [ONPREM_CLOUD], cloudServicesMailEnabled: true },
      { name: 'OnPrem plain', connectorType: 'onPremises', senderIPAddresses: [ONPREM_PLAIN] },
      { name: 'Partner', connectorType: 'partner', senderDomains: ['partner.test'], senderIPAddresses: [PARTNER] },
    ],
    outboundConnectors: [
      { name: 'To OnPrem', connectorType: 'onPremises', allAcceptedDomains: true, smartHosts: [hop(onprem)], cloudServicesMailEnabled: true },
      { name: 'Archive relay', connectorType: 'partner', isTransportRuleScoped: true, recipientDomains: ['archive.test'], smartHosts: [hop(archive)] },
      { name: 'To Partner', connectorType: 'partner', recipientDomains: ['partner.test'], smartHosts: [hop(partner)] },
    ],
    transportRules: [
      {
        name: 'Confidential to b via archive',
        priority: 1,
        conditions: { fromConnector: ['OnPrem cloud', 'OnPrem plain'], headerMatches: [{ name: 'X-Classification', pattern: '^Confidential' }], recipientAddresses: ['b@partner.test'] },
        exceptions: { senderAddresses: ['robot@contoso.com'] },
        actions: { routeMessageOutboundConnector: 'Archive relay', setHeaders: { 'X-Routed-By': 'gateway' }, removeHeaders: ['X-Internal-Only'] },
      },
      { name: 'Large from partners', priority: 2, conditions: { fromConnector: ['Partner'], messageSizeOver: '20KB' }, actions: { reject: { code: 550, enhanced: '5.7.1', text: 'Delivery not authorized: too large' } } },
      { name: 'Watch the CFO', priority: 3, mode: 'audit', conditions: { senderAddresses: ['cfo@contoso.com'], sentToScope: 'notInOrganization' }, actions: { reject: { code: 550, enhanced: '5.7.1', text: 'would be refused' } } },
    ],
  };
  file = writePolicy(dir, policy as never);
  gw = await startGateway(file);
});
afterAll(async () => {
  await gw?.stop();
  await Promise.all([onprem, archive, partner].map((s) => s?.close()));
});

describe('mail flow rules', () => {
  it('a rule routes one recipient of three to a rule-scoped connector: each sink gets exactly its recipients; header actions apply', async () => {
    await send('app@contoso.com', ONPREM_CLOUD, ['a@partner.test', 'b@partner.test', 'c@contoso.com'], { 'X-Classification': 'Confidential/Legal', 'X-Internal-Only': 'yes' });
    await until(() => sunk(partner, 'a@partner.test').length > 0 && sunk(archive, 'b@partner.test').length > 0 && sunk(onprem, 'c@contoso.com').length > 0, 10_000, 'three deliveries');
    expect(partner.messages.flatMap((m) => m.to)).toEqual(['a@partner.test']);
    expect(archive.messages.flatMap((m) => m.to)).toEqual(['b@partner.test']);
    expect(onprem.messages.flatMap((m) => m.to)).toEqual(['c@contoso.com']);
    for (const s of [partner, archive, onprem]) {
      expect(s.messages[0]!.raw).toMatch(/^X-Routed-By: gateway\r$/m);
      expect(s.messages[0]!.raw).not.toMatch(/X-Internal-Only/);
      expect(s.messages[0]!.raw).toMatch(/^X-Classification: Confidential\/Legal\r$/m);
    }
    const rule = await gw.logged('rule', (e) => e.rule === 'Confidential to b via archive');
    expect(rule).toMatchObject({ mode: 'enforce', recipients: ['b@partner.test'], actions: ['route', 'setHeaders', 'removeHeaders'] });
    expect((await gw.logged('delivered', (e) => e.recipient === 'b@partner.test')).connector).toBe('Archive relay');
  });

  it('the exception skips the rule; without the header the rule does not fire', async () => {
    const before = archive.messages.length;
    await send('robot@contoso.com', ONPREM_CLOUD, ['b@partner.test'], { 'X-Classification': 'Confidential' });
    await send('app@contoso.com', ONPREM_PLAIN, ['b@partner.test'], { 'X-Classification': 'Public' });
    await until(() => sunk(partner, 'b@partner.test').length >= 2, 10_000, 'both at the partner sink');
    expect(archive.messages.length).toBe(before);
  });

  it('reject at end of DATA (swaks): the rule\'s reply, nothing queued', async () => {
    const body = 'x'.repeat(30 * 1024);
    const r = await swaks(['--server', `127.0.0.1:${gw.port}`, '--local-interface', PARTNER, '--from', 'big@partner.test', '--to', 'c@contoso.com', '--body', body]);
    expect(dataReply(r)).toBe('550 5.7.1 Delivery not authorized: too large');
    const queued = fs.readdirSync(path.join(dir, 'queue')).filter((n) => n.endsWith('.json') || n.endsWith('.eml'));
    expect(queued).toEqual([]);
    expect(await gw.logged('refusal', (e) => e.rule === 'transport-rule')).toMatchObject({ transportRule: 'Large from partners' });
    // A small one from the same partner is accepted.
    const ok = await swaks(['--server', `127.0.0.1:${gw.port}`, '--local-interface', PARTNER, '--from', 'small@partner.test', '--to', 'c@contoso.com']);
    expect(dataReply(ok)).toMatch(/^250 2\.6\.0 Queued as /);
  });

  it('audit mode: the message is delivered and the rule is logged with what it would do', async () => {
    const id = await send('cfo@contoso.com', ONPREM_CLOUD, ['d@partner.test']);
    await gw.waitFor((e) => e.event === 'delivered' && e.qid === id, 10_000);
    expect(await gw.logged('rule', (e) => e.qid === id)).toMatchObject({ rule: 'Watch the CFO', mode: 'audit', actions: ['reject'] });
  });

  it('a rule-scoped connector is never chosen by domain', async () => {
    const id = await send('app@contoso.com', ONPREM_CLOUD, ['x@archive.test']);
    const d = await gw.waitFor((e) => e.event === 'deferred' && e.qid === id, 10_000);
    expect(d.connector).toBe('mx'); // MX lookup (DNS closed in tests), not the Archive relay
    expect(archive.messages.some((m) => m.to.includes('x@archive.test'))).toBe(false);
    const ex = await runCli(['explain', '--ip', ONPREM_CLOUD, '--from', 'app@contoso.com', '--to', 'x@archive.test', '--config', file], dir);
    expect(ex.stdout).toContain('outbound: no connector; MX lookup of archive.test');
  });

  it('explain shows the rules that would fire, given --header and --size', async () => {
    const ex = await runCli(['explain', '--ip', ONPREM_CLOUD, '--from', 'app@contoso.com', '--to', 'a@partner.test', '--to', 'b@partner.test', '--header', 'X-Classification: Confidential', '--config', file], dir);
    expect(ex.code).toBe(0);
    expect(ex.stdout).toContain('rule "Confidential to b via archive" (enforce) applies to b@partner.test: route to Archive relay; remove headers X-Internal-Only; set headers X-Routed-By: gateway');
    expect(ex.stdout).toContain('b@partner.test: routed by rule "Confidential to b via archive" to outbound connector Archive relay');
    const big = await runCli(['explain', '--ip', PARTNER, '--from', 'x@partner.test', '--to', 'c@contoso.com', '--size', '25KB', '--config', file], dir);
    expect(big.stdout).toContain('reply: 550 5.7.1 Delivery not authorized: too large (rule "Large from partners")');
    expect(big.code).toBe(3);
  });

  it('a reload with a broken rule is refused and the running rules stay in force', async () => {
    const broken = structuredClone(policy) as { transportRules: Array<{ actions: Record<string, unknown> }> };
    broken.transportRules[0]!.actions.routeMessageOutboundConnector = 'No such connector';
    writePolicy(dir, broken as never);
    const refused = await gw.waitFor((e) => e.event === 'reload-refused', 10_000);
    expect((refused.errors as string[]).join('\n')).toMatch(/no outbound connector is named "No such connector"/);
    const n = archive.messages.length;
    await send('app@contoso.com', ONPREM_CLOUD, ['b@partner.test'], { 'X-Classification': 'Confidential' });
    await until(() => archive.messages.length > n, 10_000, 'the rule still routing to the archive');
    writePolicy(dir, policy as never);
  });

  it('check refuses a backreference (RE2 has none: every pattern matches in linear time)', async () => {
    const p = structuredClone(policy) as { transportRules: Array<{ conditions: Record<string, unknown> }> };
    p.transportRules[0]!.conditions.headerMatches = [{ name: 'Subject', pattern: '^(\\w+)\\1$' }];
    const f = writePolicy(dir, p as never, 'redos.yaml');
    const r = await runCli(['check', '--config', f], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/redos\.yaml:\d+:\d+: error: transportRules\[0\]\.conditions\.headerMatches\[0\]\.pattern: not a valid RE2 regular expression/);
  });
});

describe('the Exchange header firewall', () => {
  it('from a partner session: removed before on-premises Exchange sees it; the count is logged', async () => {
    const r = await swaks(['--server', `127.0.0.1:${gw.port}`, '--local-interface', PARTNER, '--from', 'p@partner.test', '--to', 'fw1@contoso.com', '--add-header', SCL, '--add-header', 'X-MS-Exchange-CrossPremises-AuthAs: Internal']);
    const id = dataReply(r).split(' ').pop();
    await until(() => sunk(onprem, 'fw1@contoso.com').length > 0, 10_000, 'delivery on-premises');
    expect(sunk(onprem, 'fw1@contoso.com')[0]!.raw).not.toMatch(/X-MS-Exchange-/i);
    expect((await gw.logged('queued', (e) => e.qid === id)).strippedExchangeHeaders).toBe(2);
  });
  it('from an onPremises session with cloudServicesMailEnabled to on-premises: kept', async () => {
    await send('app@contoso.com', ONPREM_CLOUD, ['fw2@contoso.com'], { 'X-MS-Exchange-Organization-SCL': '-1' });
    await until(() => sunk(onprem, 'fw2@contoso.com').length > 0, 10_000, 'delivery on-premises');
    expect(sunk(onprem, 'fw2@contoso.com')[0]!.raw).toMatch(/^X-MS-Exchange-Organization-SCL: -1\r$/im); // nodemailer writes the name as X-Ms-Exchange-Organization-Scl
  });
  it('from an onPremises session without it: removed', async () => {
    await send('app@contoso.com', ONPREM_PLAIN, ['fw3@contoso.com'], { 'X-MS-Exchange-Organization-SCL': '-1' });
    await until(() => sunk(onprem, 'fw3@contoso.com').length > 0, 10_000, 'delivery on-premises');
    expect(sunk(onprem, 'fw3@contoso.com')[0]!.raw).not.toMatch(/X-MS-Exchange-Organization-SCL/);
  });
  it('on the way to a partner: removed, though the session kept it; the count is logged', async () => {
    const id = await send('app@contoso.com', ONPREM_CLOUD, ['fw4@partner.test'], { 'X-MS-Exchange-Organization-SCL': '-1', 'X-MS-Exchange-Forest-RulesExecuted': 'x' });
    await until(() => sunk(partner, 'fw4@partner.test').length > 0, 10_000, 'delivery to the partner');
    expect(sunk(partner, 'fw4@partner.test')[0]!.raw).not.toMatch(/X-MS-Exchange-/i);
    const d = await gw.waitFor((e) => e.event === 'delivered' && e.qid === id, 5_000);
    expect(d.strippedExchangeHeaders).toBe(2);
  });
});
