// PURE. Lookup structures derived from the policy, so that attribution and routing do not scan
// every connector or range: a domain-pattern index (exact / suffix / "*") and an IP interval
// index (binary search over elementary intervals). Built once per policy, memoized.
import type { DomainPattern, IpRange } from './match.js';

export interface Hit<T> {
  item: T;
  score: number; // as domainMatchScore: exact 100000 > longer suffix > "*" 0
}

/** Every item whose patterns match a domain, with the best score per item. */
export class DomainIndex<T> {
  private exact = new Map<string, T[]>();
  private suffix = new Map<string, T[]>(); // key "x.com" for "*.x.com"
  private any: T[] = [];

  add(item: T, patterns: readonly DomainPattern[]): void {
    for (const p of patterns) {
      if (p.kind === 'any') this.any.push(item);
      else if (p.kind === 'exact') push(this.exact, p.name, item);
      else push(this.suffix, p.suffix.slice(1), item);
    }
  }

  lookup(domain: string): Hit<T>[] {
    const best = new Map<T, number>();
    const note = (items: T[] | undefined, score: number) => {
      for (const it of items ?? []) if ((best.get(it) ?? -1) < score) best.set(it, score);
    };
    note(this.exact.get(domain), 100_000);
    for (let i = domain.indexOf('.'); i >= 0; i = domain.indexOf('.', i + 1)) {
      const parent = domain.slice(i + 1);
      note(this.suffix.get(parent), parent.length + 1);
    }
    note(this.any, 0);
    return [...best].map(([item, score]) => ({ item, score }));
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

interface Entry<T> {
  item: T;
  range: IpRange;
}

/** Which (item, range) pairs contain an address: elementary intervals, binary searched. */
export class IpIndex<T> {
  private v4Bounds: Float64Array = new Float64Array(0);
  private v4Covers: Entry<T>[][] = [];
  private v6Bounds: bigint[] = [];
  private v6Covers: Entry<T>[][] = [];

  constructor(entries: ReadonlyArray<Entry<T>>) {
    const v4 = entries.filter((e) => !e.range.v6);
    const v6 = entries.filter((e) => e.range.v6);
    const a = IpIndex.build(v4);
    this.v4Bounds = Float64Array.from(a.bounds.map(Number));
    this.v4Covers = a.covers;
    const b = IpIndex.build(v6);
    this.v6Bounds = b.bounds;
    this.v6Covers = b.covers;
  }

  /** Sweep line: a boundary at every start and every end+1; the cover of each segment. */
  private static build<T>(entries: Entry<T>[]): { bounds: bigint[]; covers: Entry<T>[][] } {
    const events: Array<{ at: bigint; add: boolean; e: Entry<T> }> = [];
    for (const e of entries) {
      events.push({ at: e.range.lo, add: true, e });
      events.push({ at: e.range.hi + 1n, add: false, e });
    }
    events.sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));
    const bounds: bigint[] = [];
    const covers: Entry<T>[][] = [];
    const active = new Set<Entry<T>>();
    for (let i = 0; i < events.length; ) {
      const at = events[i]!.at;
      for (; i < events.length && events[i]!.at === at; i++) {
        const ev = events[i]!;
        if (ev.add) active.add(ev.e);
        else active.delete(ev.e);
      }
      bounds.push(at);
      covers.push([...active]);
    }
    return { bounds, covers };
  }

  lookup(ip: { v6: boolean; value: bigint }): Entry<T>[] {
    if (!ip.v6) {
      const i = lastAtMost(this.v4Bounds, Number(ip.value));
      return i < 0 ? [] : this.v4Covers[i]!;
    }
    const i = lastAtMost(this.v6Bounds, ip.value);
    return i < 0 ? [] : this.v6Covers[i]!;
  }
}

/** Index of the last bound <= v in a sorted array, or -1. */
function lastAtMost<V extends number | bigint>(bounds: ArrayLike<V>, v: V): number {
  let lo = 0;
  let hi = bounds.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (bounds[mid]! <= v) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** Memoizes a derived structure per policy array (the policy is immutable once loaded). */
export function memo<K extends object, V>(cache: WeakMap<K, V>, key: K, build: () => V): V {
  let v = cache.get(key);
  if (v === undefined) {
    v = build();
    cache.set(key, v);
  }
  return v;
}
