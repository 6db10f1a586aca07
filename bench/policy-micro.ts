// Policy micro-benchmark: load time and lookup cost with many connectors and IP ranges.
import { performance } from 'node:perf_hooks';
import { loadPolicyText } from '../src/config/load.js';
import { evaluateSender } from '../src/policy/inbound.js';
import { routeDomain } from '../src/policy/outbound.js';
import { evaluateRules } from '../src/policy/rules.js';

function ipOf(n: number): string {
  return `${10 + ((n >>> 24) & 0x3f)}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export async function policyMicroBenchmark(connectors: number, ranges: number) {
  const perConnector = Math.max(1, Math.ceil(ranges / connectors));
  const outbound = Math.max(1, Math.floor(connectors / 10));
  const parts: string[] = [
    'gateway:\n  hostname: micro.bench.test\n  listeners: [{ name: mx, port: 2525 }]\n  tls: { certificate: x.crt, key: x.key }\nacceptedDomains:\n  - domain: contoso.com\ninboundConnectors:\n',
  ];
  let block = 0;
  for (let i = 0; i < connectors; i++) {
    const cidrs: string[] = [];
    for (let j = 0; j < perConnector; j++) cidrs.push(`${ipOf(block++ * 16)}/28`);
    parts.push(
      `  - name: P${i}\n    connectorType: partner\n    senderDomains: [partner${i}.example]\n    senderIPAddresses: [${cidrs.join(', ')}]\n    restrictDomainsToIPAddresses: ${i % 2 === 0}\n`,
    );
  }
  parts.push('outboundConnectors:\n');
  for (let i = 0; i < outbound; i++) parts.push(`  - name: O${i}\n    connectorType: partner\n    recipientDomains: [dest${i}.example, "*.dest${i}.example"]\n    smartHosts: ["[192.0.2.1]:25"]\n`);
  // 100 mail flow rules without header patterns (issue 14's target), of every other condition
  // kind, each about one partner or domain as real rule sets are: a message meets a few.
  const RULES = 100;
  parts.push('transportRules:\n');
  for (let i = 0; i < RULES; i++) {
    const cond = [
      `fromConnector: [P${i % connectors}, P${(i * 7) % connectors}]`,
      `senderDomains: [partner${i % connectors}.example, "*.sub${i}.example"]`,
      `senderAddresses: [boss${i}@partner${i % connectors}.example]`,
      `recipientDomains: [dest${i % outbound}.example]`,
      `recipientAddresses: [user${i}@contoso.com]`,
      `sentToScope: ${i % 2 ? 'inOrganization' : 'notInOrganization'}, recipientDomains: ["*.dest${i % outbound}.example"]`,
    ][i % 6];
    parts.push(`  - name: R${i}\n    conditions: { ${cond}, messageSizeOver: ${i % 3 ? '1KB' : '1MB'} }\n    actions: { setHeaders: { X-Rule: r${i} } }\n`);
  }
  const text = parts.join('');

  const t0 = performance.now();
  const r = loadPolicyText(text, 'micro.yaml', { checkFiles: false });
  if (!r.policy) throw new Error(`micro policy invalid: ${JSON.stringify(r.diagnostics.slice(0, 3))}`);
  const policy = r.policy;
  evaluateSender(policy.inboundConnectors, { ip: '10.0.0.1', tls: true, certNames: [], sender: 'a@partner0.example' }); // builds the indexes
  routeDomain(policy, 'dest0.example');
  const loadMs = performance.now() - t0;

  // Random transactions: half from inside their partner's ranges, half from elsewhere.
  const N = 200_000;
  const facts = Array.from({ length: 4096 }, (_, k) => {
    const i = Math.floor(Math.random() * connectors);
    const inside = k % 2 === 0;
    const blockNo = inside ? i * perConnector + Math.floor(Math.random() * perConnector) : connectors * perConnector + k;
    return { ip: ipOf(blockNo * 16 + 3), tls: true, certNames: [] as string[], sender: `x@partner${i}.example` };
  });
  let refusals = 0;
  let t = performance.now();
  for (let n = 0; n < N; n++) if (evaluateSender(policy.inboundConnectors, facts[n & 4095]!).refusal) refusals++;
  const attributionNs = ((performance.now() - t) * 1e6) / N;
  const domains = Array.from({ length: 4096 }, (_, k) => (k % 3 === 0 ? `mx.dest${k % outbound}.example` : k % 3 === 1 ? `dest${k % outbound}.example` : `nowhere${k}.example`));
  t = performance.now();
  let routed = 0;
  for (let n = 0; n < N; n++) if (routeDomain(policy, domains[n & 4095]!).kind === 'connector') routed++;
  const routingNs = ((performance.now() - t) * 1e6) / N;

  // Rule evaluation per message: 3 recipients, 10 header fields, sizes around the thresholds.
  const headers = Array.from({ length: 10 }, (_, k) => ({ name: `X-H${k}`, value: `value ${k}` }));
  const messages = Array.from({ length: 4096 }, (_, k) => ({
    connector: `P${(k * 13) % connectors}`,
    sender: k % 5 ? `x@partner${(k * 17) % connectors}.example` : `boss${k % RULES}@partner${k % connectors}.example`,
    recipients: [`user${(k * 3) % (RULES * 4)}@contoso.com`, `a@dest${(k * 11) % (outbound * 4)}.example`, `b@mx.dest${k % outbound}.example`],
    headers,
    size: (k % 4) * 700_000,
  }));
  const R = 50_000;
  let fired = 0;
  t = performance.now();
  for (let n = 0; n < R; n++) fired += evaluateRules(policy, messages[n & 4095]!).fired.length;
  const rulesNs = ((performance.now() - t) * 1e6) / R;
  return { connectors, ranges: connectors * perConnector, outboundConnectors: outbound, rules: RULES, loadMs, attributionNs, routingNs, rulesNs, rulesFiredPerMessage: fired / R, refusalShare: refusals / N, routedShare: routed / N };
}
