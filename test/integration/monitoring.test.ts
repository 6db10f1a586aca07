// The Grafana dashboard and the Prometheus rules in deploy/monitoring/ query only metrics that a
// running gateway exports: a renamed or removed metric fails here, not on an operator's screen.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { makePki } from '../helpers/pki.js';
import { ROOT, startGateway, testGateway, tmpDir, writePolicy, type RunningGateway } from '../helpers/gateway.js';

let gw: RunningGateway;
let exported: Set<string>;
const dashboard = JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy/monitoring/grafana-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
const rules = parse(fs.readFileSync(path.join(ROOT, 'deploy/monitoring/prometheus-rules.yaml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string; labels: { severity: string }; annotations: { summary: string } }> }> };
const metricsIn = (expr: string) => [...expr.matchAll(/\b(gateway_[a-z_]+)\b/g)].map((m) => m[1]!);

beforeAll(async () => {
  const dir = tmpDir('monitoring');
  const pki = makePki(path.join(dir, 'pki'));
  gw = await startGateway(writePolicy(dir, { gateway: testGateway(dir, pki, { admin: { address: '127.0.0.1', port: 0 } }) }));
  const port = gw.events('admin-listening')[0]!.port as number;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
});
afterAll(async () => gw?.stop());

describe('deploy/monitoring', () => {
  it('every metric the dashboard queries is exported', () => {
    const used = dashboard.panels.flatMap((p) => p.targets.flatMap((t) => metricsIn(t.expr)));
    expect(used.length).toBeGreaterThan(10);
    expect([...new Set(used)].filter((m) => !exported.has(m))).toEqual([]);
  });
  it('every metric the alerting rules use is exported, and each rule is complete', () => {
    const all = rules.groups.flatMap((g) => g.rules);
    expect(all.length).toBeGreaterThanOrEqual(6);
    for (const r of all) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^Gateway/);
      expect(['critical', 'warning', 'info']).toContain(r.labels.severity);
      expect(r.annotations.summary).toBeTruthy();
    }
    const used = all.flatMap((r) => metricsIn(r.expr));
    expect([...new Set(used)].filter((m) => !exported.has(m))).toEqual([]);
  });
  it('the operators\' questions have a panel: queue, deferrals by code, TLS failures by policy, refusals by rule, throttling', () => {
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const m of ['gateway_queue_messages', 'gateway_queue_oldest_age_seconds', 'gateway_deferrals_total', 'gateway_tls_policy_failures_total', 'gateway_refusals_total', 'gateway_transport_rule_matches_total']) expect(exprs).toContain(m);
    expect(exprs).toContain('rule="throttle"');
  });
});
