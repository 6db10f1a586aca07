// Offline validation of deploy/kubernetes: every document against the Kubernetes OpenAPI
// schemas (kubernetes-models), the cross-references between them, and the policy ConfigMap
// through the gateway's own loader.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { loadPolicyText, formatDiagnostics } from '../../src/config/load.js';

const DIR = path.resolve(import.meta.dirname, '../../deploy/kubernetes');
const MODELS: Record<string, new (o: never) => { validate: () => void }> = {
  ConfigMap: ConfigMap as never,
  Secret: Secret as never,
  Service: Service as never,
  StatefulSet: StatefulSet as never,
  PodDisruptionBudget: PodDisruptionBudget as never,
};

type Doc = { kind: string; metadata: { name: string }; [k: string]: unknown };
const docs: Doc[] = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .flatMap((f) => parseAllDocuments(fs.readFileSync(path.join(DIR, f), 'utf8')).map((d) => d.toJS() as Doc));
const byKind = (k: string) => docs.filter((d) => d.kind === k);

describe('deploy/kubernetes', () => {
  it('every manifest is valid against the Kubernetes schemas', () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'PodDisruptionBudget', 'Secret', 'Secret', 'Service', 'Service', 'Service', 'Service', 'Service', 'StatefulSet']);
    for (const d of docs) {
      const Model = MODELS[d.kind];
      expect(Model, d.kind).toBeDefined();
      expect(() => new Model!(d as never).validate(), `${d.kind}/${d.metadata.name}`).not.toThrow();
    }
  });
  it('kustomization lists every manifest file', () => {
    const k = parseAllDocuments(fs.readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as { resources: string[] };
    expect(k.resources.sort()).toEqual(fs.readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort());
  });
  it('the StatefulSet: per-pod queue volume, probes on the admin port, scrape annotations, non-root', () => {
    const s = byKind('StatefulSet')[0] as unknown as { spec: any };
    const pod = s.spec.template;
    const c = pod.spec.containers[0];
    expect(s.spec.replicas).toBeGreaterThan(1);
    expect(s.spec.volumeClaimTemplates[0].metadata.name).toBe('queue');
    expect(c.volumeMounts.find((m: any) => m.name === 'queue').mountPath).toBe('/var/lib/connector-gateway');
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(pod.metadata.annotations['prometheus.io/scrape']).toBe('true');
    expect(pod.spec.securityContext.runAsNonRoot).toBe(true);
    // /trace is behind a bearer token from a Secret (issue 20, item 7)
    expect(c.env.find((e: any) => e.name === 'GATEWAY_ADMIN_TOKEN').valueFrom.secretKeyRef).toMatchObject({ name: 'connector-gateway-admin', key: 'token' });
    expect(docs.some((d: any) => d.kind === 'Secret' && d.metadata.name === 'connector-gateway-admin')).toBe(true);
    expect(s.spec.selector.matchLabels).toEqual(pod.metadata.labels);
    for (const v of pod.spec.volumes) expect(v.configMap?.items ?? v.secret?.items, 'whole-directory mounts update on change').toBeUndefined();
  });
  it('Services and the PDB select the pods; the LB forwards 25 to the smtp port with PROXY', () => {
    const pod = (byKind('StatefulSet')[0] as any).spec.template;
    const ports = pod.spec.containers[0].ports.map((p: any) => p.name);
    for (const svc of (byKind('Service') as any[]).filter((s) => s.spec.type !== 'ExternalName')) {
      expect(svc.spec.selector).toEqual(pod.metadata.labels);
      for (const p of svc.spec.ports) expect(ports).toContain(p.targetPort);
    }
    const lb = (byKind('Service') as any[]).find((s) => s.spec.type === 'LoadBalancer');
    expect(lb.spec.ports[0]).toMatchObject({ port: 25, targetPort: 'smtp' });
    expect(Object.keys(lb.metadata.annotations).some((k) => /proxy-protocol/.test(k))).toBe(true);
    expect((byKind('PodDisruptionBudget')[0] as any).spec.selector.matchLabels).toEqual(pod.metadata.labels);
  });
  it('the policy ConfigMap is a valid policy that matches the pod (ports, paths, PROXY)', () => {
    const cm = byKind('ConfigMap')[0] as unknown as { data: Record<string, string> };
    const r = loadPolicyText(cm.data['gateway.yaml']!, 'configmap:gateway.yaml', { checkFiles: false });
    expect(formatDiagnostics(r)).toEqual([]);
    const p = r.policy!;
    const c = (byKind('StatefulSet')[0] as any).spec.template.spec.containers[0];
    expect(p.gateway.listeners[0]!.port).toBe(c.ports.find((x: any) => x.name === 'smtp').containerPort);
    expect(p.gateway.admin!.port).toBe(c.ports.find((x: any) => x.name === 'admin').containerPort);
    expect(p.gateway.listeners[0]!.proxyProtocol).not.toBe(false);
    expect(p.gateway.queue.directory.startsWith('/var/lib/connector-gateway/')).toBe(true);
    expect(p.gateway.tls.certificate).toBe('/etc/connector-gateway/certs/tls.crt');
    expect(c.env.find((e: any) => e.name === 'GATEWAY_CONFIG').value).toBe('/etc/connector-gateway/policy/gateway.yaml');
  });
  it('several replicas as one: the engines named in the policy exist as Services, and a retired pod drains to the ready others', () => {
    const cm = byKind('ConfigMap')[0] as unknown as { data: Record<string, string> };
    const p = loadPolicyText(cm.data['gateway.yaml']!, 'configmap:gateway.yaml', { checkFiles: false }).policy!;
    const services = new Map((byKind('Service') as any[]).map((s) => [s.metadata.name, s]));
    expect(services.get(new URL(p.gateway.cluster!.redis!).hostname)?.spec.type).toBe('ExternalName');
    expect(services.get(new URL(p.gateway.cluster!.traceDatabase!).hostname)?.spec.type).toBe('ExternalName');
    const c = (byKind('StatefulSet')[0] as any).spec.template.spec.containers[0];
    const cmd: string[] = c.lifecycle.preStop.exec.command;
    expect(cmd.slice(2, 4)).toEqual(['drain', '--to']);
    const [host, port] = cmd[4]!.split(':');
    const peers = services.get(host!);
    expect(peers.spec.type ?? 'ClusterIP').toBe('ClusterIP'); // routes to ready pods only: never back to the one draining
    const target = peers.spec.ports.find((x: any) => x.port === Number(port)).targetPort;
    const listener = p.gateway.listeners.find((l) => l.port === c.ports.find((x: any) => x.name === target).containerPort)!;
    expect(listener.proxyProtocol).toBe(false); // a replica speaks plain SMTP to another
    expect((byKind('StatefulSet')[0] as any).spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(300);
  });
  it("the container image's example policy is valid", () => {
    const text = fs.readFileSync(path.resolve(import.meta.dirname, '../../deploy/container/gateway.yaml'), 'utf8');
    expect(formatDiagnostics(loadPolicyText(text, 'deploy/container/gateway.yaml', { checkFiles: false }))).toEqual([]);
  });
  it('GatewayDown selects the pods the manifests scrape by annotation (their app.kubernetes.io/name label), not only a job name (issue 21)', () => {
    const rules = parseYaml(fs.readFileSync(path.resolve(DIR, '../monitoring/prometheus-rules.yaml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    const down = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === 'GatewayDown')!;
    const s = docs.find((d: any) => d.kind === 'StatefulSet') as any;
    const name = s.spec.template.metadata.labels['app.kubernetes.io/name'];
    expect(s.spec.template.metadata.annotations['prometheus.io/scrape']).toBe('true');
    expect(down.expr).toContain(`up{app_kubernetes_io_name="${name}"}`);
  });
});

