// The base layer (imports nothing of ours): a concurrency limiter. At most `limit` holders per
// key at once; the others wait in arrival order, and a released slot passes to the next waiter.

export class Limiter {
  private used = new Map<string, number>();
  private waiting = new Map<string, Array<() => void>>();
  constructor(private readonly limit: number) {}

  async acquire(key = ''): Promise<void> {
    const n = this.used.get(key) ?? 0;
    if (n < this.limit) {
      this.used.set(key, n + 1);
      return;
    }
    await new Promise<void>((resolve) => {
      const q = this.waiting.get(key) ?? [];
      q.push(resolve);
      this.waiting.set(key, q);
    });
  }

  release(key = ''): void {
    const q = this.waiting.get(key);
    const next = q?.shift();
    if (q && !q.length) this.waiting.delete(key);
    if (next) return next(); // the slot passes on
    const n = (this.used.get(key) ?? 1) - 1;
    if (n <= 0) this.used.delete(key);
    else this.used.set(key, n);
  }

  /** Runs fn holding a slot of key. */
  async run<T>(fn: () => Promise<T>, key = ''): Promise<T> {
    await this.acquire(key);
    try {
      return await fn();
    } finally {
      this.release(key);
    }
  }
}
