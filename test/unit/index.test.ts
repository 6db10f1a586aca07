import { describe, expect, it } from 'vitest';
import { DomainIndex, IpIndex } from '../../src/policy/index.js';
import { domainMatchScore, parseDomainPattern, parseIp, parseIpRange, type DomainPattern, type IpRange } from '../../src/policy/match.js';

// A small deterministic PRNG so that failures reproduce.
function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
}

describe('IpIndex agrees with a linear scan', () => {
  it('on random nested and overlapping IPv4 and IPv6 ranges', () => {
    const r = rng(42);
    const entries: Array<{ item: number; range: IpRange }> = [];
    for (let i = 0; i < 400; i++) {
      const a = `10.${Math.floor(r() * 4)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}`;
      const kind = r();
      const text = kind < 0.4 ? `${a}/${16 + Math.floor(r() * 17)}` : kind < 0.7 ? a : kind < 0.9 ? `${a}-10.3.255.255` : `2001:db8:${Math.floor(r() * 4).toString(16)}::/${48 + Math.floor(r() * 80)}`;
      entries.push({ item: i % 50, range: parseIpRange(text) as IpRange });
    }
    const idx = new IpIndex(entries);
    for (let k = 0; k < 2000; k++) {
      const text = r() < 0.85 ? `10.${Math.floor(r() * 5)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}` : `2001:db8:${Math.floor(r() * 5).toString(16)}::${Math.floor(r() * 65535).toString(16)}`;
      const ip = parseIp(text)!;
      const want = entries.filter((e) => e.range.v6 === ip.v6 && e.range.lo <= ip.value && ip.value <= e.range.hi);
      const got = idx.lookup(ip);
      expect(new Set(got), text).toEqual(new Set(want));
    }
  });
});

describe('DomainIndex agrees with pattern scores', () => {
  it('returns every matching item with its best score', () => {
    const pats = ['*', 'contoso.com', '*.contoso.com', '*.sales.contoso.com', 'sales.contoso.com', '*.com', 'fabrikam.com'];
    const items = pats.map((p, i) => ({ i, p: [parseDomainPattern(p) as DomainPattern] }));
    const idx = new DomainIndex<number>();
    for (const it of items) idx.add(it.i, it.p);
    for (const d of ['contoso.com', 'sales.contoso.com', 'eu.sales.contoso.com', 'x.com', 'fabrikam.com', 'org', '']) {
      const want = items.map((it) => ({ item: it.i, score: domainMatchScore(it.p[0]!, d) })).filter((h) => h.score >= 0);
      expect(idx.lookup(d).sort((a, b) => a.item - b.item), d).toEqual(want);
    }
  });
});
