// The indexed attribution agrees with a naive, linear reading of SPEC §3 on random policies.
import { describe, expect, it } from 'vitest';
import { evaluateSender } from '../../src/policy/inbound.js';
import { bestDomainMatch, certNameMatches, parseIp, type IpRange } from '../../src/policy/match.js';
import { PUBLIC_ROOTS, type InboundConnector } from '../../src/policy/types.js';
import { policySchema } from '../../src/config/schema.js';
import { normalize } from '../../src/config/normalize.js';
import { Diagnostics } from '../../src/config/diagnostics.js';
import { baseGateway } from './policy-helpers.js';

/** Schema and meaning only: random policies may well break lint rules (duplicates), and the
 * engine must still decide deterministically. */
function engineOf(inboundConnectors: unknown[], acceptedDomains: unknown[] = []) {
  const d = new Diagnostics();
  const policy = normalize(policySchema.parse({ gateway: baseGateway, inboundConnectors, acceptedDomains }), d, '/');
  if (d.errorCount) throw new Error(JSON.stringify(d.list));
  return policy;
}

function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
}

/** SPEC §3 rules 1–4 as plainly as they read, scanning everything. `accepted`: our domains as written. */
function reference(cs: InboundConnector[], f: { ip: string; tls: boolean; certNames: string[]; certAnchors: string[]; sender: string }, accepted: string[]) {
  const ip = parseIp(f.ip)!;
  const domain = f.sender.includes('@') ? f.sender.split('@')[1]!.toLowerCase() : '';
  const inRanges = (c: InboundConnector): IpRange | null => {
    let best: IpRange | null = null;
    for (const r of c.senderIPAddresses) if (r.v6 === ip.v6 && r.lo <= ip.value && ip.value <= r.hi && (!best || r.size < best.size)) best = r;
    return best;
  };
  // Per-connector trust: its own CA file; for a name in our accepted domains a public root only.
  const ourName = (text: string) => {
    const name = text.startsWith('*.') ? `a.${text.slice(2)}` : text;
    return accepted.some((a) => {
      const base = a.startsWith('*.') ? a.slice(2) : a;
      return name === base || name.endsWith(`.${base}`);
    });
  };
  const vouched = (c: InboundConnector) =>
    c.tlsCertificateAuthorities ? f.certAnchors.includes(c.tlsCertificateAuthorities) : ourName(c.tlsSenderCertificateName!.text) ? f.certAnchors.includes(PUBLIC_ROOTS) : true;
  const hasCert = (c: InboundConnector) => !!c.tlsSenderCertificateName && f.certNames.some((n) => certNameMatches(c.tlsSenderCertificateName!, n)) && vouched(c);
  const applies = cs
    .map((c, position) => ({ c, position, score: bestDomainMatch(c.senderDomains, domain), range: c.senderIPAddresses.length ? inRanges(c) : null }))
    .filter((x) => x.c.enabled && x.score >= 0 && (!x.c.senderIPAddresses.length || x.range) && (!x.c.tlsSenderCertificateName || hasCert(x.c)));
  const order = (a: (typeof applies)[0], b: (typeof applies)[0]) => {
    const ac = !!a.c.tlsSenderCertificateName, bc = !!b.c.tlsSenderCertificateName;
    if (ac !== bc) return ac ? -1 : 1;
    if (a.range && b.range && a.range.size !== b.range.size) return a.range.size < b.range.size ? -1 : 1;
    if (!!a.range !== !!b.range) return a.range ? -1 : 1;
    return b.score - a.score || a.position - b.position;
  };
  const onPrem = applies.filter((x) => x.c.connectorType === 'onPremises' && (x.range || x.c.tlsSenderCertificateName)).sort(order);
  const chosen = onPrem[0] ?? applies.filter((x) => x.c.connectorType === 'partner').sort(order)[0] ?? null;
  const claimants = onPrem.length
    ? []
    : cs
        .map((c, position) => ({ c, position, score: bestDomainMatch(c.senderDomains, domain) }))
        .filter((x) => x.c.enabled && x.c.connectorType === 'partner' && (x.c.restrictDomainsToIPAddresses || x.c.restrictDomainsToCertificate) && x.score >= 0)
        .sort((a, b) => b.score - a.score || a.position - b.position);
  const fails = (c: InboundConnector) => (c.restrictDomainsToIPAddresses && !inRanges(c) ? 'ip' : c.restrictDomainsToCertificate && !hasCert(c) ? 'cert' : null);
  // A connector in audit mode records what it would refuse and refuses nothing.
  if (!f.tls && [chosen?.c, ...claimants.map((x) => x.c)].some((c) => c && c.mode === 'enforce' && (c.requireTls || c.restrictDomainsToCertificate))) {
    return { connector: chosen?.c.name ?? null, reply: '530' };
  }
  if (claimants.length && claimants.every((x) => fails(x.c))) {
    const first = claimants.find((x) => x.c.mode === 'enforce');
    if (first) return { connector: chosen?.c.name ?? null, reply: `550 ${fails(first.c)} ${first.c.name}` };
  }
  return { connector: chosen?.c.name ?? null, reply: 'accept' };
}

describe('attribution: indexed engine = naive reference', () => {
  it('agrees on 3,000 random transactions over random policies', () => {
    const r = rng(7);
    const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)]!;
    const domains = ['a.example', 'b.example', 'sub.a.example', 'c.example'];
    const patterns = ['*', 'a.example', '*.a.example', 'b.example', 'c.example'];
    for (let round = 0; round < 30; round++) {
      const connectors = Array.from({ length: 12 }, (_, i) => {
        const byIp = r() < 0.5;
        const byCert = !byIp && r() < 0.4;
        const onPrem = r() < 0.15 && (byIp || byCert);
        return {
          name: `C${i}`,
          connectorType: onPrem ? 'onPremises' : 'partner',
          enabled: r() < 0.9,
          senderDomains: [pick(patterns)],
          senderIPAddresses: byIp ? [`10.0.${Math.floor(r() * 3)}.0/${pick([24, 25, 30, 32])}`] : [],
          restrictDomainsToIPAddresses: byIp && !onPrem && r() < 0.5,
          tlsSenderCertificateName: byCert ? pick(['*.a.example', 'mail.b.example']) : null,
          tlsCertificateAuthorities: byCert && r() < 0.4 ? pick(['/ca/onprem.pem', '/ca/partner.pem']) : null,
          restrictDomainsToCertificate: byCert && !onPrem && r() < 0.5,
          requireTls: r() < 0.3,
          mode: r() < 0.15 ? 'audit' : 'enforce',
        };
      });
      const accepted = r() < 0.5 ? [pick(['a.example', '*.a.example', 'b.example'])] : [];
      const policy = engineOf(connectors, accepted.map((domain) => ({ domain })));
      for (let k = 0; k < 100; k++) {
        const f = {
          ip: `10.0.${Math.floor(r() * 3)}.${Math.floor(r() * 256)}`,
          tls: r() < 0.7,
          certNames: r() < 0.5 ? [pick(['mail.a.example', 'x.sub.a.example', 'mail.b.example', 'other.test'])] : [],
          certAnchors: [pick([PUBLIC_ROOTS, '/ca/onprem.pem', '/ca/partner.pem'])],
          sender: r() < 0.1 ? '' : `u@${pick(domains)}`,
        };
        const got = evaluateSender(policy.inboundConnectors, f);
        const want = reference(policy.inboundConnectors, f, accepted);
        const gotReply = !got.refusal ? 'accept' : got.refusal.reply.code === 530 ? '530' : `550 ${got.refusal.rule === 'claim-ip' ? 'ip' : 'cert'} ${got.refusal.connector}`;
        expect({ connector: got.attribution.connector?.name ?? null, reply: gotReply }, JSON.stringify({ round, f })).toEqual(want);
      }
    }
  });
});
