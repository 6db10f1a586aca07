// The scheduler's two containers, so that its cost per message does not grow with the number of
// messages waiting: a binary min-heap keyed by time (O(log n) push and pop) and a FIFO with O(1)
// push and shift. Neither removes from the middle: the scheduler marks an item stale instead
// (its entry's version moved on) and skips it when it comes out.

export class MinHeap<T> {
  private items: Array<{ key: number; value: T }> = [];

  get size(): number {
    return this.items.length;
  }

  push(key: number, value: T): void {
    const a = this.items;
    a.push({ key, value });
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (a[p]!.key <= a[i]!.key) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }

  peek(): { key: number; value: T } | undefined {
    return this.items[0];
  }

  pop(): { key: number; value: T } | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      a[0] = last;
      this.down(0);
    }
    return top;
  }

  /** Keeps only the items `keep` accepts (drops stale ones) in O(n). */
  filter(keep: (value: T) => boolean): void {
    this.items = this.items.filter((x) => keep(x.value));
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private down(i: number): void {
    const a = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && a[l]!.key < a[m]!.key) m = l;
      if (r < a.length && a[r]!.key < a[m]!.key) m = r;
      if (m === i) return;
      [a[m], a[i]] = [a[i]!, a[m]!];
      i = m;
    }
  }
}

export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(value: T): void {
    this.items.push(value);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head++];
    // Give the consumed front back once it is half the array.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
}
