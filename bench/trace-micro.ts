// The message trace at scale (issue 15): 1,000,000 traced messages, then searches by sender,
// recipient, Message-ID and status over a time window (target < 200 ms each).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { TraceStore } from '../src/trace/store.js';

export interface TraceFigures {
  messages: number;
  loadSeconds: number;
  searchMs: Record<string, number>;
}

export function traceMicroBenchmark(n = 1_000_000): TraceFigures {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-bench-trace-'));
  try {
    const store = new TraceStore(path.join(dir, 'trace.sqlite'));
    const t0 = performance.now();
    const start = Date.parse('2026-11-01T00:00:00Z');
    for (let i = 0; i < n; i++) {
      const time = new Date(start + i * 2000).toISOString(); // 2 s apart: 23 days
      store.push(JSON.stringify({ level: 'info', time, event: 'queued', qid: `Q${i}`, ip: '127.0.0.2', sender: `user${i % 5000}@sender${i % 97}.example`, recipients: [`rcpt${i % 20000}@contoso.com`], size: 10240, connector: 'Partner', tls: 'TLSv1.3', messageId: `m${i}@sender.example` }));
      store.push(JSON.stringify({ level: 'info', time, event: i % 50 ? 'delivered' : 'deferred', qid: `Q${i}`, recipient: `rcpt${i % 20000}@contoso.com`, connector: 'To OnPrem', code: i % 50 ? '2.0.0' : '4.4.316', result: 'x' }));
      if (i % 10_000 === 9_999) store.flush();
    }
    store.flush();
    const loadSeconds = (performance.now() - t0) / 1000;
    const time = (q: Parameters<TraceStore['search']>[0]): number => {
      const t = performance.now();
      const found = store.search(q);
      const ms = performance.now() - t;
      if (!found.length) throw new Error(`trace benchmark: no result for ${JSON.stringify(q)}`);
      return ms;
    };
    const searchMs = {
      sender: time({ sender: 'user4242@sender71.example' }),
      recipient: time({ recipient: 'rcpt12345@contoso.com' }),
      messageId: time({ messageId: `m${n - 7}@sender.example` }),
      'status in a day': time({ status: 'deferred', since: start + n * 1000, until: start + n * 1000 + 86_400_000 }),
      'last 100': time({}),
    };
    store.close();
    return { messages: n, loadSeconds, searchMs };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
