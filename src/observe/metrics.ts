// Prometheus metrics (SPEC §7), served on the admin port with /healthz and /readyz.
import { traceAccess, type AccessSettings } from './admin-access.js';
import http from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly sessions = new Counter({ name: 'gateway_sessions_total', help: 'SMTP sessions accepted, by listener', labelNames: ['listener'], registers: [this.registry] });
  readonly activeSessions = new Gauge({ name: 'gateway_sessions_active', help: 'SMTP sessions open now', registers: [this.registry] });
  readonly refusals = new Counter({ name: 'gateway_refusals_total', help: 'Refusals, by inbound connector, rule and reply code', labelNames: ['connector', 'rule', 'code'], registers: [this.registry] });
  readonly audits = new Counter({ name: 'gateway_audit_would_refuse_total', help: 'Refusals a connector in audit mode would have made', labelNames: ['connector', 'rule'], registers: [this.registry] });
  readonly accepted = new Counter({ name: 'gateway_messages_accepted_total', help: 'Messages spooled and acknowledged, by inbound connector', labelNames: ['connector'], registers: [this.registry] });
  readonly deliveries = new Counter({ name: 'gateway_deliveries_total', help: 'Delivery results per recipient, by outbound connector and result', labelNames: ['connector', 'result'], registers: [this.registry] });
  readonly deferrals = new Counter({ name: 'gateway_deferrals_total', help: 'Deferred recipients, by outbound connector and enhanced status code', labelNames: ['connector', 'code'], registers: [this.registry] });
  readonly tlsPolicyFailures = new Counter({ name: 'gateway_tls_policy_failures_total', help: 'TLS negotiations that failed a DANE (tlsa) or MTA-STS (sts) policy, by RFC 8460 result type', labelNames: ['policy', 'result'], registers: [this.registry] });
  readonly mxSecurity = new Counter({ name: 'gateway_mx_deliveries_total', help: 'MX delivery results per recipient, by what secured them (dane, dane-encrypt, dane-none, tlsSettings) and result', labelNames: ['policy', 'result'], registers: [this.registry] });
  readonly tlsHandshakes = new Counter({ name: 'gateway_tls_handshakes_total', help: 'Inbound TLS handshakes, by protocol version', labelNames: ['version'], registers: [this.registry] });
  readonly engineUp = new Gauge({ name: 'gateway_cluster_engine_up', help: 'Whether a shared engine (SPEC §12) answers: redis (limits), postgresql (trace); 0 = this node falls back to its own', labelNames: ['engine'], registers: [this.registry] });
  readonly queueSize = new Gauge({ name: 'gateway_queue_messages', help: 'Messages in the queue', registers: [this.registry] });
  readonly queueOldest = new Gauge({ name: 'gateway_queue_oldest_age_seconds', help: 'Age of the oldest message in the queue', registers: [this.registry] });
  readonly deadDestinations = new Gauge({ name: 'gateway_destinations_dead', help: 'Destinations whose every next hop failed, tried again by a probe each retry interval', registers: [this.registry] });
  readonly parked = new Gauge({ name: 'gateway_queue_parked_messages', help: 'Messages waiting for a dead destination to come back', registers: [this.registry] });
  readonly authResults = new Counter({ name: 'gateway_auth_results_total', help: 'Sender authentication results of mail from outside, by method (spf, dkim, arc, dmarc) and result', labelNames: ['method', 'result'], registers: [this.registry] });
  readonly dmarcRefusals = new Counter({ name: 'gateway_dmarc_refusals_total', help: 'Messages refused (550 5.7.509) or quarantined for DMARC, by header From domain and action', labelNames: ['domain', 'action'], registers: [this.registry] });
  readonly verifications = new Counter({ name: 'gateway_recipient_verifications_total', help: 'Recipient verification callouts (cached answers included), by result', labelNames: ['result'], registers: [this.registry] });
  readonly rules = new Counter({ name: 'gateway_transport_rule_matches_total', help: 'Mail flow rules that matched a message, by rule, mode and action', labelNames: ['rule', 'mode', 'action'], registers: [this.registry] });
  readonly buildInfo = new Gauge({ name: 'gateway_build_info', help: 'The running version of connector-gateway and of Node.js (always 1)', labelNames: ['version', 'node'], registers: [this.registry] });
  readonly reloads = new Counter({ name: 'gateway_policy_reloads_total', help: 'Policy reloads, by result', labelNames: ['result'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}

export interface AdminState {
  ready: () => boolean;
  /** GET /trace?sender=…&recipient=…: the message trace's search (SPEC §10), as JSON. */
  trace?: (query: URLSearchParams) => unknown | Promise<unknown>;
  /** Who may read /trace (admin-access.ts). */
  access?: AccessSettings;
  /** Called before each scrape, to refresh gauges. */
  refresh?: () => void;
  /** The worker processes' metrics, summed with this process's (build info: this process's). */
  others?: () => Promise<Array<Array<MetricObjectWithValues<MetricValue<string>>>>>;
}

/** This process's metrics and the workers', as one exposition: counters and gauges summed. */
async function exposition(metrics: Metrics, others: AdminState['others']): Promise<string> {
  if (!others) return metrics.registry.metrics();
  return AggregatorRegistry.aggregate([await metrics.registry.getMetricsAsJSON(), ...(await others())]).metrics();
}

export async function startAdmin(address: string, port: number, metrics: Metrics, state: AdminState): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    // Nothing a request does may take the daemon down with it.
    handle(req, res).catch((e: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`error: ${e.message}\n`);
    });
  });
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const [url, search] = (req.url ?? '/').split('?') as [string, string | undefined];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (url === '/metrics') {
      state.refresh?.();
      const text = await exposition(metrics, state.others);
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(text);
    } else if (url === '/trace' && state.trace) {
      const a = traceAccess({ host: req.headers.host, authorization: req.headers.authorization }, state.access ?? { hostnames: [], token: null });
      if (!a.ok) {
        res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers }).end(JSON.stringify({ error: a.error }));
        return;
      }
      let body: string;
      let status = 200;
      try {
        body = JSON.stringify(await state.trace(new URLSearchParams(search ?? '')));
      } catch (e) {
        [status, body] = [400, JSON.stringify({ error: (e as Error).message })];
      }
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    } else if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url === '/readyz') {
      const ok = state.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
    } else {
      res.writeHead(404).end();
    }
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  return server;
}
